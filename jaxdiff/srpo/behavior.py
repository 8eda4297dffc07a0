"""Stage (a): the diffusion behavior model mu(a|s) — VP-SDE noise prediction with the LN-ResNet, AdamW.

Pure functions over an explicit `BehaviorState`; nothing is jitted here. The fixed Fourier W of the time
embedding lives in `constants`: it is saved and restored with the state and never optimised. Dropout is on in
`update` and off everywhere else (`eps`, `sample`, and whenever the policy stage queries the model).
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff.diffusion import vpsde
from jaxdiff.nets import LNResNetNoiseNet
from jaxdiff.srpo.config import SRPOConfig


@flax.struct.dataclass
class BehaviorState:
    params: Any  # trained weights
    constants: Any  # fixed Fourier W ('constants' collection), never optimised
    opt_state: Any  # inject_hyperparams(adamw) state: learning_rate / weight_decay are array leaves here
    step: jax.Array
    cfg: SRPOConfig = flax.struct.field(pytree_node=False)
    action_dim: int = flax.struct.field(pytree_node=False)

    @property
    def variables(self) -> dict:
        return {"params": self.params, "constants": self.constants}


def network(cfg: SRPOConfig, action_dim: int) -> LNResNetNoiseNet:
    return LNResNetNoiseNet(
        action_dim, width=cfg.behavior_width, n_blocks=cfg.behavior_blocks, dropout=cfg.behavior_dropout,
        fourier_scale=cfg.fourier_scale,
    )


def optimizer(cfg: SRPOConfig) -> optax.GradientTransformation:
    """AdamW with PyTorch's default decay 0.01 on every parameter, no schedule, no clipping."""
    return optax.inject_hyperparams(optax.adamw)(learning_rate=cfg.behavior_lr, weight_decay=cfg.behavior_weight_decay)


def init(key: jax.Array, obs_dim: int, action_dim: int, cfg: SRPOConfig) -> BehaviorState:
    net = network(cfg, action_dim)
    variables = net.init(
        {"params": key}, jnp.zeros((1, action_dim)), jnp.zeros((1,)), jnp.zeros((1, obs_dim)), train=False
    )
    params = variables["params"]
    return BehaviorState(
        params=params, constants=variables["constants"], opt_state=optimizer(cfg).init(params),
        step=jnp.zeros((), jnp.int32), cfg=cfg, action_dim=action_dim,
    )


def eps(variables: dict, cfg: SRPOConfig, action_dim: int, a_t: jax.Array, t: jax.Array, obs: jax.Array) -> jax.Array:
    """Deterministic (dropout off) noise prediction eps(a_t, t, s); `variables` = {'params', 'constants'}."""
    return network(cfg, action_dim).apply(variables, a_t, t, obs, train=False)


def loss(params: Any, state: BehaviorState, batch: Any, key: jax.Array) -> jax.Array:
    """E ||eps(alpha_t a + sigma_t z, t, s) - z||^2 with t ~ U(1e-3, 1), dropout on."""
    k_loss, k_drop = jax.random.split(key)
    net = network(state.cfg, state.action_dim)

    def eps_fn(x_t, t):
        return net.apply(
            {"params": params, "constants": state.constants}, x_t, t, batch.obs, train=True, rngs={"dropout": k_drop}
        )

    return vpsde.eps_loss(k_loss, eps_fn, batch.action)


def update(state: BehaviorState, batch: Any, key: jax.Array) -> tuple[BehaviorState, dict]:
    """One AdamW step on a batch with fields `obs` (B, obs_dim) and `action` (B, action_dim)."""
    value, grads = jax.value_and_grad(loss)(state.params, state, batch, key)
    updates, opt_state = optimizer(state.cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new, {"loss": value, "grad_norm": optax.tree.norm(grads)}


def sample(state: BehaviorState, obs: jax.Array, key: jax.Array, steps: int = 15, order: int = 3) -> jax.Array:
    """Actions ~ mu(.|s) for a batch of states by DPM-Solver (`steps` network evaluations), dropout off."""
    variables = state.variables

    def eps_fn(x_t, t):
        return eps(variables, state.cfg, state.action_dim, x_t, t, obs)

    return vpsde.dpm_solver_sample(key, eps_fn, (obs.shape[0], state.action_dim), steps=steps, order=order)
