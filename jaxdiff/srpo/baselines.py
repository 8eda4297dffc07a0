"""Policy-extraction baselines on the same data and networks as SRPO's stage (c): BC and IQL's AWR.

Both train the same deterministic tanh policy (`PolicyState`, same optimiser and cosine schedule) so that the
comparison isolates the extraction objective:
  BC:  mean ||pi(s) - a||^2
  AWR: mean min(exp(temperature * (Q(s, a) - V(s))), 100) ||pi(s) - a||^2    (IQL's extraction, deterministic)
with Q = min of the critic's target heads and V the critic's value net, both frozen. IQL uses temperature 3.0 on
locomotion and 10.0 on antmaze.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxdiff.nets import ValueNet
from jaxdiff.srpo import critic as critic_lib
from jaxdiff.srpo import policy as policy_lib

MAX_WEIGHT = 100.0


def advantage_weights(critic: critic_lib.CriticState, obs: jax.Array, action: jax.Array, temperature: float) -> jax.Array:
    q = jnp.min(critic_lib.q_values(critic.q_target, critic.cfg, obs, action), axis=0)
    hidden = (critic.cfg.critic_width,) * critic.cfg.critic_layers
    v = ValueNet(hidden=hidden).apply(critic.v_params, obs)
    return jnp.minimum(jnp.exp(temperature * (q - v)), MAX_WEIGHT)


def _regression_update(state: policy_lib.PolicyState, obs, action, weights) -> tuple[policy_lib.PolicyState, dict]:
    net = policy_lib.network(state.cfg, state.action_dim)
    tx = policy_lib.optimizer(state.cfg)

    def loss_fn(params):
        err = jnp.sum((net.apply(params, obs) - action) ** 2, axis=-1)
        return jnp.mean(weights * err), jnp.mean(err)

    (loss, mse), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new = state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state, step=state.step + 1)
    return new, {"loss": loss, "action_mse": mse, "weight_mean": jnp.mean(weights)}


def bc_update(state: policy_lib.PolicyState, batch: Any, key: jax.Array) -> tuple[policy_lib.PolicyState, dict]:
    """Deterministic behavior cloning step; `key` unused (uniform update signature)."""
    del key
    return _regression_update(state, batch.obs, batch.action, jnp.ones_like(batch.reward))


def make_awr_update(critic: critic_lib.CriticState, temperature: float = 3.0):
    """AWR step with a frozen IQL critic: update(state, batch, key) -> (state, metrics)."""

    def update(state: policy_lib.PolicyState, batch: Any, key: jax.Array):
        del key
        w = jax.lax.stop_gradient(advantage_weights(critic, batch.obs, batch.action, temperature))
        return _regression_update(state, batch.obs, batch.action, w)

    return update
