"""QVPO's small pure pieces (tested one by one) and its state: weight transforms, the entropy schedule and rows,
best-of-K, the sampling chain's eps_fn, Polyak averaging and the optimizer. `jaxdiff.qvpo.agent` assembles them.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.diffusion import ddpm
from jaxdiff.qvpo.config import QVPOConfig, QVPOHParams

Params = Any


@flax.struct.dataclass
class QVPOState:
    """Everything one QVPO run carries between updates: networks, targets, optimizer states, the update count
    and the swept hyperparameters. Arrays only (no static fields), so jit / vmap / donate need nothing static."""

    actor: Params
    actor_target: Params
    critic: Params
    critic_target: Params
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    step: jax.Array  # number of updates done (int32)
    hparams: QVPOHParams


# ----------------------------------------------------------------------------------------------------------------
# Small pure pieces (tested one by one)
# ----------------------------------------------------------------------------------------------------------------


def transform_weights(kind: str, q_best: jax.Array, v: jax.Array, cut: jax.Array | float = 1.0) -> jax.Array:
    """Q-weight of the kept samples. q_best (B, k), v (B, 1) or broadcastable.

    qadv: max(Q(a*) - V_hat, 0) (default); qcut: max(Q(a*), c); none: 1 (the official code's unweighted mode).
    """
    if kind == "qadv":
        return jnp.maximum(q_best - v, 0.0)
    if kind == "qcut":
        return jnp.maximum(q_best, cut)
    if kind == "none":
        return jnp.ones_like(q_best)
    raise ValueError(f"unknown weight transform {kind!r}")


def entropy_coef(update_step: jax.Array, hp: QVPOHParams) -> jax.Array:
    """omega_ent of update k (0-based), exactly as the official code schedules it.

    The official loop sets omega = min(alpha, max(alpha_min, alpha * (1 - env_step / horizon))) AFTER each update,
    from the env step of that update, so update 0 uses exactly alpha and update k >= 1 uses the formula at env step
    offset + k - 1 (offset = env step of the first update: the launcher sets it to warmup_steps). The outer min
    makes alpha = 0 switch the term off entirely, as in the official code.
    """
    k = jnp.asarray(update_step, jnp.float32)
    env_step = hp.entropy_offset + k - 1.0
    decayed = hp.entropy_alpha * (1.0 - env_step / hp.entropy_horizon)
    scheduled = jnp.minimum(hp.entropy_alpha, jnp.maximum(hp.entropy_min, decayed))
    return jnp.where(k < 1.0, hp.entropy_alpha, scheduled)


def entropy_rows(
    key: jax.Array, obs: jax.Array, weights: jax.Array, omega: jax.Array, n_uniform: int, action_dim: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The entropy term's rows: n_uniform actions ~ U[-1, 1]^a per kept (state, sample), each weighted omega * w.

    obs (B, s), weights (B, k). Returns (obs_rows (B*k*n_uniform, s), actions (..., a), row_weights (...,)).
    """
    B, k = weights.shape
    u = jax.random.uniform(key, (B, k, n_uniform, action_dim), minval=-1.0, maxval=1.0)
    w = jnp.broadcast_to(omega * weights[:, :, None], (B, k, n_uniform))
    o = jnp.broadcast_to(obs[:, None, None, :], (B, k, n_uniform, obs.shape[-1]))
    return o.reshape(-1, obs.shape[-1]), u.reshape(-1, action_dim), w.reshape(-1)


def best_of_k(
    key: jax.Array,
    sample_fn: Callable[[jax.Array, jax.Array], jax.Array],
    score_fn: Callable[[jax.Array, jax.Array], jax.Array],
    obs: jax.Array,
    k: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Draw k actions per state and keep the best.

    sample_fn(key, obs_rows (B*k, s)) -> (B*k, a); score_fn(obs_rows, actions) -> (B*k,). Rows are laid out state
    major (row b*k + j is sample j of state b). Returns (best (B, a), best_score (B,), actions (B, k, a),
    scores (B, k)).
    """
    B = obs.shape[0]
    obs_rows = jnp.repeat(obs, k, axis=0)
    acts = sample_fn(key, obs_rows)
    scores = score_fn(obs_rows, acts).reshape(B, k)
    acts = acts.reshape(B, k, -1)
    best, idx = ddpm.best_of_n(acts, scores)
    return best, jnp.take_along_axis(scores, idx[:, None], axis=1)[:, 0], acts, scores


def top_k_samples(acts: jax.Array, scores: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Keep the k highest-scoring samples per state: acts (B, N, a), scores (B, N) -> ((B, k, a), (B, k))."""
    if k == 1:
        best, idx = ddpm.best_of_n(acts, scores)
        return best[:, None, :], jnp.take_along_axis(scores, idx[:, None], axis=1)
    top, idx = jax.lax.top_k(scores, k)
    return jnp.take_along_axis(acts, idx[:, :, None], axis=1), top


def chain_eps_fn(net: nets.MishMLPNoiseNet, params: Params, obs: jax.Array, action_dim: int,
                 matmul_dtype: str = "float32"):
    """eps_fn(x, t) for a sampling chain, where every row shares the step t and obs is fixed for all T steps.

    Same function as `net.apply(params, x, t, obs)` (tests/test_qvpo_unit.py checks it), computed from the same
    parameters with two savings that only a chain allows: the time embedding is computed once per step (one row,
    broadcast), and the obs part of the first layer, obs @ W_obs + b, once per chain instead of once per step.
    The second matters for large observations (Humanoid: 348 of the first layer's 397 inputs).
    matmul_dtype="bfloat16" runs the per-step matmuls with bf16 inputs and float32 accumulation (nets.matmul).
    """
    mm = lambda a, b: nets.matmul(a, b, matmul_dtype)  # noqa: E731
    p = params["params"]
    first = p["MLP_0"]["Dense_0"]
    w_x = first["kernel"][:action_dim]
    w_t = first["kernel"][action_dim : action_dim + net.t_dim]
    obs_proj = obs @ first["kernel"][action_dim + net.t_dim :] + first["bias"]
    f = net.activation

    def dense(layer, h):
        return mm(h, layer["kernel"]) + layer["bias"]

    def eps_fn(x: jax.Array, t: jax.Array) -> jax.Array:
        temb = nets.sinusoidal_embedding(t[:1], net.t_dim)  # (1, t_dim): the step is shared by all rows
        temb = dense(p["Dense_0"], f(dense(p["Dense_1"], temb)))
        h = f(mm(x, w_x) + (mm(temb, w_t) + obs_proj))
        for i in range(1, net.n_hidden):
            h = f(dense(p["MLP_0"][f"Dense_{i}"], h))
        return dense(p["MLP_0"][f"Dense_{net.n_hidden}"], h)

    return eps_fn


def polyak(target: Params, online: Params, tau: jax.Array) -> Params:
    """target + tau (online - target), leaf by leaf."""
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)


def optimizer(config: QVPOConfig, learning_rate: float) -> optax.GradientTransformation:
    """clip_by_global_norm -> scale_by_adam -> * (-lr), with the learning rate injected (optax.inject_hyperparams)
    so it is a leaf of the optimizer state: the update copies `state.hparams.<actor|critic>_lr` into it with
    `jaxdiff.algorithm.set_learning_rate` before each step. Same chain as optax.chain(clip_by_global_norm,
    adam(lr, eps=adam_eps)); bit for bit the same as the earlier hand-applied `-lr * u` (tests/test_qvpo_unit.py).
    Only the learning rate is injected: grad_clip and adam_eps stay Python floats of the chain, exactly as before.
    """

    def chain(learning_rate):
        return optax.chain(optax.clip_by_global_norm(config.grad_clip), optax.scale_by_adam(eps=config.adam_eps),
                           optax.scale_by_learning_rate(learning_rate))

    return optax.inject_hyperparams(chain)(learning_rate=learning_rate)
