"""Policy-extraction baselines on the same data and networks as SRPO's stage (c): BC and IQL's AWR.

    bc = baselines.make_bc(cfg, obs_dim, action_dim)
    awr = baselines.make_awr(cfg, obs_dim, action_dim, temperature=3.0)
    state = awr.init(key, behavior_state, critic_state)   # the same PolicyState as SRPO's (same initial params)

Both train the same deterministic tanh policy (`PolicyState`, same optimiser and cosine schedule) so that the
comparison isolates the extraction objective:
  BC:  mean ||pi(s) - a||^2
  AWR: mean min(exp(temperature * (Q(s, a) - V(s))), 100) ||pi(s) - a||^2    (IQL's extraction, deterministic)
with Q = min of the critic's target heads and V the critic's value net, both frozen copies in the state. IQL uses
temperature 3.0 on locomotion and 10.0 on antmaze; it is `state.hparams["temperature"]`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff.algorithm import Algorithm, Transition
from jaxdiff.srpo import critic as critic_lib
from jaxdiff.srpo import policy as policy_lib
from jaxdiff.srpo.config import SRPOConfig

MAX_WEIGHT = 100.0


def advantage_weights(cfg: SRPOConfig, q_params: Any, v_params: Any, obs: jax.Array, action: jax.Array,
                      temperature: jax.Array) -> jax.Array:
    """min(exp(temperature (min_i Q_i(s, a) - V(s))), 100) with the critic's target heads and value net."""
    q_net, v_net = critic_lib.networks(cfg)
    q = jnp.min(q_net.apply(q_params, obs, action), axis=0)
    v = v_net.apply(v_params, obs)
    return jnp.minimum(jnp.exp(temperature * (q - v)), MAX_WEIGHT)


def _regression(cfg: SRPOConfig, action_dim: int, name: str, obs_dim: int, hparams: dict, weights_fn) -> Algorithm:
    net = policy_lib.network(cfg, action_dim)

    def update(state: policy_lib.PolicyState, batch: Transition, key: jax.Array):
        """One weighted-regression step; `key` unused (uniform update signature)."""
        del key
        weights = weights_fn(state, batch)

        def loss_fn(params):
            err = jnp.sum((net.apply(params, batch.obs) - batch.action) ** 2, axis=-1)
            return jnp.mean(weights * err), jnp.mean(err)

        (loss, mse), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        new = policy_lib.apply_gradients(cfg, state, grads)
        return new, {"loss": loss, "action_mse": mse, "weight_mean": jnp.mean(weights)}

    def act(state: policy_lib.PolicyState, obs: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Deterministic action pi(s) in [-1, 1]; `key` is ignored."""
        del key
        return net.apply(state.params, obs)

    init = policy_lib.make_init(cfg, obs_dim, action_dim, hparams, keep_v=name == "awr")
    return Algorithm(name=name, config=cfg, obs_dim=obs_dim, action_dim=action_dim, init=init, update=update,
                     act=act, explore=act, batch_rows=cfg.policy_batch)


def make_bc(cfg: SRPOConfig, obs_dim: int, action_dim: int) -> Algorithm:
    """Deterministic behavior cloning (name "bc"): init(key, behavior_state, critic_state) as SRPO's policy."""
    return _regression(cfg, action_dim, "bc", obs_dim, {"policy_lr": cfg.policy_lr},
                       lambda state, batch: jnp.ones_like(batch.reward))


def make_awr(cfg: SRPOConfig, obs_dim: int, action_dim: int, temperature: float = 3.0) -> Algorithm:
    """IQL's advantage-weighted regression with the frozen critic (name "awr"); temperature is an hparams leaf."""

    def weights(state, batch):
        w = advantage_weights(cfg, state.q_params, state.v_params, batch.obs, batch.action,
                              state.hparams["temperature"])
        return jax.lax.stop_gradient(w)

    return _regression(cfg, action_dim, "awr", obs_dim, {"policy_lr": cfg.policy_lr, "temperature": temperature},
                       weights)
