"""QVPO: diffusion policy trained with the Q-weighted variational loss plus a diffusion entropy term.

Everything is a pure function of explicit state and explicit PRNG keys; nothing is jitted here. `make_parts(config,
obs_dim, action_dim)` binds the static sizes and returns a `QVPO` bundle; `make_agent` returns the generic
`OnlineAgent` view of it that `jaxdiff.train.online` runs. Actions are normalised to [-1, 1] throughout.

Per update (spec/qvpo.md): critic step on the first half of the batch (clipped double Q, target action = best of
k_t samples of the TARGET policy ranked by the target critic), then actor step on the second, fresh half (n_d
samples per state from the current policy scored by the just-updated critic, best kept, weight qadv/qcut, plus
n_uniform uniform actions per state weighted omega_ent * w), then Polyak updates of both targets.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.algorithm import Algorithm
from jaxdiff.data.replay import Transition
from jaxdiff.diffusion import ddpm
from jaxdiff.qvpo.config import QVPOConfig

Params = Any


@flax.struct.dataclass
class QVPOHParams:
    """Numeric hyperparameters as float32 leaves, so a sweep is a vmap over them (like seeds)."""

    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array
    cut: jax.Array
    entropy_alpha: jax.Array
    entropy_min: jax.Array
    entropy_horizon: jax.Array
    entropy_offset: jax.Array

    @classmethod
    def from_config(cls, c: QVPOConfig) -> "QVPOHParams":
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(f(c.actor_lr), f(c.critic_lr), f(c.gamma), f(c.tau), f(c.cut), f(c.entropy_alpha),
                   f(c.entropy_min), f(c.entropy_horizon), f(c.entropy_offset))


@flax.struct.dataclass
class QVPOState:
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


def chain_eps_fn(net: nets.MishMLPNoiseNet, params: Params, obs: jax.Array, action_dim: int):
    """eps_fn(x, t) for a sampling chain, where every row shares the step t and obs is fixed for all T steps.

    Same function as `net.apply(params, x, t, obs)` (tests/test_qvpo_unit.py checks it), computed from the same
    parameters with two savings that only a chain allows: the time embedding is computed once per step (one row,
    broadcast), and the obs part of the first layer, obs @ W_obs + b, once per chain instead of once per step.
    The second matters for large observations (Humanoid: 348 of the first layer's 397 inputs).
    """
    p = params["params"]
    first = p["MLP_0"]["Dense_0"]
    w_x = first["kernel"][:action_dim]
    w_t = first["kernel"][action_dim : action_dim + net.t_dim]
    obs_proj = obs @ first["kernel"][action_dim + net.t_dim :] + first["bias"]
    f = net.activation

    def dense(layer, h):
        return h @ layer["kernel"] + layer["bias"]

    def eps_fn(x: jax.Array, t: jax.Array) -> jax.Array:
        temb = nets.sinusoidal_embedding(t[:1], net.t_dim)  # (1, t_dim): the step is shared by all rows
        temb = dense(p["Dense_0"], f(dense(p["Dense_1"], temb)))
        h = f(x @ w_x + (temb @ w_t + obs_proj))
        for i in range(1, net.n_hidden):
            h = f(dense(p["MLP_0"][f"Dense_{i}"], h))
        return dense(p["MLP_0"][f"Dense_{net.n_hidden}"], h)

    return eps_fn


def polyak(target: Params, online: Params, tau: jax.Array) -> Params:
    return jax.tree.map(lambda t, o: t + tau * (o - t), target, online)


def _optimizer(config: QVPOConfig) -> optax.GradientTransformation:
    # Adam with the learning rate applied outside (from hparams) so lr can be a traced, vmapped leaf.
    # clip -> scale_by_adam -> * (-lr) is exactly optax.chain(clip_by_global_norm, adam(lr, eps=1e-5)).
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), optax.scale_by_adam(eps=config.adam_eps))


# ----------------------------------------------------------------------------------------------------------------
# The bundle
# ----------------------------------------------------------------------------------------------------------------


class QVPO(NamedTuple):
    """Pure QVPO functions with static sizes bound. See `make`."""

    config: QVPOConfig
    obs_dim: int
    action_dim: int
    init: Callable[[jax.Array], QVPOState]
    update: Callable[[QVPOState, Transition, jax.Array], tuple[QVPOState, dict]]
    explore: Callable[[QVPOState, jax.Array, jax.Array], jax.Array]  # best of k_b
    act: Callable[[QVPOState, jax.Array, jax.Array], jax.Array]  # best of k_eval
    sample: Callable[[Params, jax.Array, jax.Array], jax.Array]  # raw policy samples: (actor params, obs, key)
    q_min: Callable[[Params, jax.Array, jax.Array], jax.Array]  # (critic params, obs, actions) -> min(Q1, Q2)
    critic_targets: Callable  # (state, batch, key) -> y (B,)
    critic_loss: Callable  # (critic params, batch, y) -> (loss, aux)
    actor_batch: Callable  # (state, critic params, obs, key) -> (x0, obs_rows, row_weights, denominator, aux)
    actor_loss: Callable  # (actor params, x0, obs_rows, row_weights, denominator, key) -> loss

    @property
    def agent(self) -> Algorithm:
        return Algorithm("qvpo", self.config, self.obs_dim, self.action_dim, init=self.init, update=self.update,
                         act=self.act, explore=self.explore, batch_rows=2 * self.config.batch_size)


def make_parts(config: QVPOConfig, obs_dim: int, action_dim: int) -> QVPO:
    """Every QVPO piece with the sizes bound: the Algorithm verbs plus sample, q_min and the critic / actor losses."""
    c = config
    act_fn = nets.mish_fast if c.fast_mish else nets.mish
    actor_net = nets.MishMLPNoiseNet(action_dim, hidden=c.actor_hidden, n_hidden=c.actor_layers, activation=act_fn,
                                     param_init=c.param_init)
    critic_net = nets.TwinQ(hidden=c.critic_hidden, activation=act_fn, param_init=c.param_init)
    sched = ddpm.make_schedule(c.diffusion_steps, c.beta_schedule)
    tx = _optimizer(c)

    def sample(actor_params: Params, obs: jax.Array, key: jax.Array) -> jax.Array:
        """One policy sample per row of obs (full noise, x0 clipped, output clipped to [-1, 1])."""
        eps_fn = chain_eps_fn(actor_net, actor_params, obs, action_dim)
        return ddpm.ancestral_sample(key, sched, eps_fn, (obs.shape[0], action_dim), clip=1.0)

    def q_min(critic_params: Params, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return jnp.min(critic_net.apply(critic_params, obs, actions), axis=0)

    def _best(actor_params, critic_params, obs, key, k):
        return best_of_k(
            key, lambda kk, o: sample(actor_params, o, kk), lambda o, a: q_min(critic_params, o, a), obs, k
        )

    def init(key: jax.Array) -> QVPOState:
        k_a, k_c = jax.random.split(key)
        a0, s0 = jnp.zeros((1, action_dim)), jnp.zeros((1, obs_dim))
        actor = actor_net.init(k_a, a0, jnp.zeros((1,), jnp.int32), s0)
        critic = critic_net.init(k_c, s0, a0)
        copy = lambda p: jax.tree.map(lambda x: x.copy(), p)  # noqa: E731  distinct buffers (donation-safe)
        return QVPOState(
            actor=actor,
            actor_target=copy(actor),
            critic=critic,
            critic_target=copy(critic),
            actor_opt=tx.init(actor),
            critic_opt=tx.init(critic),
            step=jnp.zeros((), jnp.int32),
            hparams=QVPOHParams.from_config(c),
        )

    def critic_targets(state: QVPOState, batch: Transition, key: jax.Array) -> jax.Array:
        """y = r + gamma (1 - done) min_j Qbar_j(s', a'); a' = best of k_t target-policy samples by target Q."""
        _, q_next, _, _ = _best(state.actor_target, state.critic_target, batch.next_obs, key, c.k_t)
        return batch.reward + state.hparams.gamma * (1.0 - batch.done) * q_next

    def critic_loss(critic_params: Params, batch: Transition, y: jax.Array):
        q = critic_net.apply(critic_params, batch.obs, batch.action)  # (2, B)
        loss = jnp.mean((q[0] - y) ** 2) + jnp.mean((q[1] - y) ** 2)
        return loss, {"q_data": jnp.mean(q), "q_target": jnp.mean(y)}

    def actor_batch(state: QVPOState, critic_params: Params, obs: jax.Array, key: jax.Array):
        """Rows of the Q-weighted variational loss: (x0, obs_rows, row_weights, denominator, aux)."""
        hp = state.hparams
        k_samp, k_unif = jax.random.split(key)
        B = obs.shape[0]
        # 1-2. n_d samples per state from the current policy, scored by the (just updated) online critic
        _, _, acts, q = _best(state.actor, critic_params, obs, k_samp, c.n_d)
        v = jnp.mean(q, axis=1, keepdims=True)
        a_top, q_top = top_k_samples(acts, q, c.chosen)  # (B, k, a), (B, k)
        # 3. weight
        w = transform_weights(c.weight_transform, q_top, v, hp.cut)
        x0 = a_top.reshape(-1, action_dim)
        rows_obs = jnp.repeat(obs, c.chosen, axis=0)
        row_w = w.reshape(-1)
        omega = entropy_coef(state.step, hp)
        denom = jnp.float32(B * c.chosen)
        if c.n_uniform > 0 and c.weight_transform != "none":
            # 4. entropy term: uniform actions weighted omega * w(s); left out when alpha == 0 (as official) and in
            # the unweighted mode (official: run without --weighted, the loss has no weights and no uniform rows)
            u_obs, u_act, u_w = entropy_rows(k_unif, obs, w, omega, c.n_uniform, action_dim)
            x0 = jnp.concatenate([x0, u_act], axis=0)
            rows_obs = jnp.concatenate([rows_obs, u_obs], axis=0)
            row_w = jnp.concatenate([row_w, u_w], axis=0)
            denom = jnp.where(hp.entropy_alpha > 0, jnp.float32(x0.shape[0]), denom)
        aux = {
            "q_best": jnp.mean(q_top),
            "v_hat": jnp.mean(v),
            "weight_mean": jnp.mean(w),
            "weight_pos_frac": jnp.mean((w > 0).astype(jnp.float32)),
            "entropy_coef": omega,
            "policy_action_std": jnp.mean(jnp.std(acts, axis=1)),
        }
        return x0, rows_obs, row_w, denom, aux

    def actor_loss(actor_params: Params, x0, rows_obs, row_w, denom, key):
        """5. L = sum over rows and dims of w_row (eps_theta(x_t, t, s) - eps)^2 / (rows x dims)."""
        eps_fn = lambda x, t: actor_net.apply(actor_params, x, t, rows_obs)  # noqa: E731
        return ddpm.eps_loss(key, sched, eps_fn, x0, row_w) * (x0.shape[0] / denom)

    def update(state: QVPOState, batch: Transition, key: jax.Array) -> tuple[QVPOState, dict]:
        hp = state.hparams
        B = c.batch_size
        if batch.reward.shape[0] != 2 * B:
            raise ValueError(f"QVPO update expects {2 * B} replay rows (critic half + fresh actor half), "
                             f"got {batch.reward.shape[0]}")
        critic_batch = jax.tree.map(lambda x: x[:B], batch)
        actor_obs = batch.obs[B:]
        k_t, k_s, k_l = jax.random.split(key, 3)

        y = critic_targets(state, critic_batch, k_t)
        (c_loss, c_aux), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic, critic_batch, y)
        c_upd, critic_opt = tx.update(c_grads, state.critic_opt, state.critic)
        critic = optax.apply_updates(state.critic, jax.tree.map(lambda u: -hp.critic_lr * u, c_upd))

        x0, rows_obs, row_w, denom, a_aux = actor_batch(state, critic, actor_obs, k_s)
        a_loss, a_grads = jax.value_and_grad(actor_loss)(state.actor, x0, rows_obs, row_w, denom, k_l)
        a_upd, actor_opt = tx.update(a_grads, state.actor_opt, state.actor)
        actor = optax.apply_updates(state.actor, jax.tree.map(lambda u: -hp.actor_lr * u, a_upd))

        new_state = state.replace(
            actor=actor,
            actor_target=polyak(state.actor_target, actor, hp.tau),
            critic=critic,
            critic_target=polyak(state.critic_target, critic, hp.tau),
            actor_opt=actor_opt,
            critic_opt=critic_opt,
            step=state.step + 1,
        )
        metrics = {
            "critic_loss": c_loss,
            "actor_loss": a_loss,
            "critic_grad_norm": optax.tree.norm(c_grads),
            "actor_grad_norm": optax.tree.norm(a_grads),
            **c_aux,
            **a_aux,
        }
        return new_state, metrics

    def explore(state: QVPOState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return _best(state.actor, state.critic, obs, key, c.k_b)[0]

    def act(state: QVPOState, obs: jax.Array, key: jax.Array) -> jax.Array:
        return _best(state.actor, state.critic, obs, key, c.k_eval)[0]

    return QVPO(c, obs_dim, action_dim, init, update, explore, act, sample, q_min, critic_targets, critic_loss,
                actor_batch, actor_loss)


def make(config: QVPOConfig, obs_dim: int, action_dim: int) -> Algorithm:
    """QVPO as an `Algorithm` (init / update / act / explore, batch_rows = 2 x batch_size)."""
    return make_parts(config, obs_dim, action_dim).agent


make_agent = make  # old name, kept until the drivers move to `make` (issue 10)


def load_policy(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                **where: float):
    """Rebuild a trained QVPO policy from a run directory written by jaxdiff.train.online or online_multi.

    Returns (act, state, bundle): act(obs (B, obs_dim), key) -> actions in [-1, 1] (best of k_eval, jitted), the
    restored QVPOState, and the QVPO bundle (for explore / sample / q_min). Actions still need mapping to the env's
    range (jaxdiff.envs.evaluate.scale_action). A multi-run directory holds many runs: pick one with seed=s (plus
    the swept values when a sweep shares the seed, e.g. entropy_alpha=0.0) or run=k; its swept hyperparameters
    are in state.hparams.
    """
    from jaxdiff.train import online

    meta = online.load_checkpoint_meta(workdir, step)
    config = QVPOConfig.from_dict(meta["agent_config"])
    bundle = make_parts(config, int(meta["obs_dim"]), int(meta["action_dim"]))
    state, _ = online.load_agent_state(workdir, bundle.agent, step, run=run, seed=seed, **where)
    act = jax.jit(lambda obs, key: bundle.act(state, obs, key))
    return act, state, bundle
