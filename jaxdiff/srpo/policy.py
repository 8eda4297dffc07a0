"""Stage (c): SRPO policy extraction — a deterministic policy regularised by the frozen behavior score.

max_pi E_s[Q(s, pi(s)) - (1/beta) KL(pi || mu)], implemented as the official code does:
  loss = mean_batch[ w(t) <eps_hat, a> - beta <g, a> ],  a = pi(s),
  eps_hat = sg(eps(alpha_t a + sigma_t z, t, s)) with t = t_min + (t_max - t_min) U, behavior dropout off,
  g = sg(grad_a mean(Q1', Q2')(s, a)) at the detached action (target heads), RMS-normalised for antmaze.
The frozen behavior variables and target-Q params travel inside the `PolicyState` (never updated), so the
state is self-contained: it checkpoints, vmaps over seeds, and `act` needs nothing else. `beta` is a leaf.
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff.diffusion import vpsde
from jaxdiff.nets import DiracPolicy
from jaxdiff.srpo import behavior as behavior_lib
from jaxdiff.srpo import critic as critic_lib
from jaxdiff.srpo.config import SRPOConfig


@flax.struct.dataclass
class PolicyState:
    params: Any
    opt_state: Any  # (inject_hyperparams(adam) state, cosine-schedule count); base learning_rate is a leaf
    beta: jax.Array
    step: jax.Array
    behavior: Any  # frozen {'params', 'constants'} of the behavior model
    q_params: Any  # frozen target twin-Q params of the critic
    cfg: SRPOConfig = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)


def network(cfg: SRPOConfig, action_dim: int) -> DiracPolicy:
    return DiracPolicy(action_dim, hidden=(cfg.policy_width,) * cfg.policy_layers)


def optimizer(cfg: SRPOConfig) -> optax.GradientTransformation:
    """Adam with the learning rate cosine-decayed to 0 over `policy_steps` (torch CosineAnnealingLR)."""
    decay = optax.cosine_decay_schedule(1.0, max(cfg.policy_steps, 1), alpha=0.0)
    return optax.chain(optax.inject_hyperparams(optax.adam)(learning_rate=cfg.policy_lr), optax.scale_by_schedule(decay))


def init(key: jax.Array, obs_dim: int, action_dim: int, cfg: SRPOConfig, behavior: behavior_lib.BehaviorState,
         critic: critic_lib.CriticState) -> PolicyState:
    params = network(cfg, action_dim).init(key, jnp.zeros((1, obs_dim)))
    return PolicyState(
        params=params, opt_state=optimizer(cfg).init(params), beta=jnp.float32(cfg.beta),
        step=jnp.zeros((), jnp.int32), behavior=behavior.variables, q_params=critic.q_target, cfg=cfg,
        action_dim=action_dim,
    )


def act(state: PolicyState, obs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Deterministic action pi(s) in [-1, 1]; `key` is ignored (uniform act signature)."""
    del key
    return network(state.cfg, state.action_dim).apply(state.params, obs)


def _weight(kind: str, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    if kind == "sigma2":
        return sigma**2
    if kind == "one":
        return jnp.ones_like(sigma)
    if kind == "alpha_over_sigma":
        return alpha / sigma
    raise ValueError(f"unknown weight {kind!r}")


def _q_and_guidance(state: PolicyState, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Target-Q heads (2, B) at the detached action and g = grad_a mean(Q1', Q2') (one forward, one vjp)."""
    qs, vjp = jax.vjp(lambda a: critic_lib.q_values(state.q_params, state.cfg, obs, a), jax.lax.stop_gradient(action))
    (g,) = vjp(jnp.full_like(qs, 1.0 / qs.shape[0]))
    if state.cfg.q_grad_norm:
        rms = jnp.sqrt(jnp.mean(g**2, axis=-1, keepdims=True))
        g = jnp.where(rms > 0, g / jnp.where(rms > 0, rms, 1.0), 0.0)
    return jax.lax.stop_gradient(qs), jax.lax.stop_gradient(g)


def q_guidance(state: PolicyState, obs: jax.Array, action: jax.Array) -> jax.Array:
    """g = grad_a mean(Q1', Q2')(s, a), divided by its RMS over action dims if cfg.q_grad_norm (no gradient)."""
    return _q_and_guidance(state, obs, action)[1]


def loss(params: Any, state: PolicyState, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    cfg = state.cfg
    k_t, k_z = jax.random.split(key)
    a = network(cfg, state.action_dim).apply(params, obs)
    a_sg = jax.lax.stop_gradient(a)
    t = cfg.t_min + (cfg.t_max - cfg.t_min) * jax.random.uniform(k_t, a.shape[:-1])
    alpha, sigma = vpsde.alpha_sigma(t)
    z = jax.random.normal(k_z, a.shape)
    a_t = alpha[..., None] * a_sg + sigma[..., None] * z
    eps_hat = behavior_lib.eps(state.behavior, cfg, state.action_dim, a_t, t, obs)
    if cfg.baseline:
        eps_hat = eps_hat - z
    eps_hat = jax.lax.stop_gradient(eps_hat)
    w = _weight(cfg.weight, alpha, sigma)
    qs, g = _q_and_guidance(state, obs, a_sg)
    kl_term = w * jnp.sum(eps_hat * a, axis=-1)
    q_term = jnp.sum(g * a, axis=-1)
    value = jnp.mean(kl_term - state.beta * q_term)
    q_pi = jnp.mean(jnp.min(qs, axis=0))
    return value, {"kl_term": jnp.mean(kl_term), "q_term": jnp.mean(q_term), "q_pi": q_pi,
                   "guidance_norm": jnp.mean(jnp.linalg.norm(g, axis=-1)), "action_abs": jnp.mean(jnp.abs(a_sg))}


def update(state: PolicyState, batch: Any, key: jax.Array) -> tuple[PolicyState, dict]:
    """One policy step on a batch with an `obs` field (B, obs_dim); behavior and critic stay frozen."""
    (value, aux), grads = jax.value_and_grad(loss, has_aux=True)(state.params, state, batch.obs, key)
    tx = optimizer(state.cfg)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    lr = state.opt_state[0].hyperparams["learning_rate"] * optax.cosine_decay_schedule(
        1.0, max(state.cfg.policy_steps, 1))(state.step)
    new = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new, {"loss": value, "lr": lr, **aux}
