"""Stage (a): the diffusion behavior model mu(a|s) — VP-SDE noise prediction with the LN-ResNet, AdamW.

    algo = behavior.make(cfg, obs_dim, action_dim)       # an Algorithm; nothing is jitted here
    state = algo.init(key)
    state, metrics = algo.update(state, batch, key)      # batch: jaxdiff.algorithm.Transition (obs, action used)
    actions = algo.act(state, obs, key)                  # samples from mu(.|s) by DPM-Solver (15 steps, order 3)

The fixed Fourier W of the time embedding lives in `constants`: it is saved and restored with the state and never
optimised. Dropout is on in `update` and off everywhere else (`eps`, sampling, and whenever the policy stage
queries the model). The swept learning rate is `state.hparams["behavior_lr"]`.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff.algorithm import Algorithm, Transition, set_learning_rate
from jaxdiff.diffusion import vpsde
from jaxdiff.nets import LNResNetNoiseNet
from jaxdiff.srpo.config import SRPOConfig


@flax.struct.dataclass
class BehaviorState:
    """Train state of the behavior model: arrays only (sizes and static settings are bound in `make`)."""

    params: Any  # trained weights
    constants: Any  # fixed Fourier W ('constants' collection), never optimised
    opt_state: Any  # inject_hyperparams(adamw) state; its learning_rate is overwritten from hparams every step
    step: jax.Array
    hparams: dict  # {"behavior_lr": float32}

    @property
    def variables(self) -> dict:
        """{'params', 'constants'}: what the network's apply takes."""
        return {"params": self.params, "constants": self.constants}


def network(cfg: SRPOConfig, action_dim: int) -> LNResNetNoiseNet:
    """The eps-prediction LN-ResNet of the config."""
    return LNResNetNoiseNet(
        action_dim, width=cfg.behavior_width, n_blocks=cfg.behavior_blocks, dropout=cfg.behavior_dropout,
        fourier_scale=cfg.fourier_scale, matmul_dtype=cfg.behavior_matmul_dtype,
    )


def optimizer(cfg: SRPOConfig) -> optax.GradientTransformation:
    """AdamW with PyTorch's default decay 0.01 on every parameter, no schedule, no clipping."""
    return optax.inject_hyperparams(optax.adamw)(learning_rate=cfg.behavior_lr, weight_decay=cfg.behavior_weight_decay)


def eps(variables: dict, cfg: SRPOConfig, action_dim: int, a_t: jax.Array, t: jax.Array, obs: jax.Array) -> jax.Array:
    """Deterministic (dropout off) noise prediction eps(a_t, t, s); `variables` = {'params', 'constants'}."""
    return network(cfg, action_dim).apply(variables, a_t, t, obs, train=False)


def sampler(cfg: SRPOConfig, action_dim: int, steps: int = 15, order: int = 3) -> Callable:
    """sample(state, obs, key) -> actions ~ mu(.|s) by DPM-Solver (`steps` network evaluations), dropout off."""

    def sample(state: BehaviorState, obs: jax.Array, key: jax.Array) -> jax.Array:
        variables = state.variables

        def eps_fn(x_t, t):
            return eps(variables, cfg, action_dim, x_t, t, obs)

        return vpsde.dpm_solver_sample(key, eps_fn, (obs.shape[0], action_dim), steps=steps, order=order)

    return sample


def make(cfg: SRPOConfig, obs_dim: int, action_dim: int) -> Algorithm:
    """The behavior stage as an Algorithm (name "srpo_behavior"); act / explore sample the model."""
    net = network(cfg, action_dim)
    tx = optimizer(cfg)

    def init(key: jax.Array) -> BehaviorState:
        variables = net.init(
            {"params": key}, jnp.zeros((1, action_dim)), jnp.zeros((1,)), jnp.zeros((1, obs_dim)), train=False
        )
        params = variables["params"]
        return BehaviorState(params=params, constants=variables["constants"], opt_state=tx.init(params),
                             step=jnp.zeros((), jnp.int32), hparams={"behavior_lr": jnp.float32(cfg.behavior_lr)})

    def loss(params: Any, state: BehaviorState, batch: Transition, key: jax.Array) -> jax.Array:
        """E ||eps(alpha_t a + sigma_t z, t, s) - z||^2 with t ~ U(1e-3, 1), dropout on."""
        k_loss, k_drop = jax.random.split(key)

        def eps_fn(x_t, t):
            return net.apply({"params": params, "constants": state.constants}, x_t, t, batch.obs, train=True,
                             rngs={"dropout": k_drop})

        return vpsde.eps_loss(k_loss, eps_fn, batch.action)

    def update(state: BehaviorState, batch: Transition, key: jax.Array) -> tuple[BehaviorState, dict]:
        """One AdamW step on a batch with fields `obs` (B, obs_dim) and `action` (B, action_dim)."""
        value, grads = jax.value_and_grad(loss)(state.params, state, batch, key)
        opt_state = set_learning_rate(state.opt_state, state.hparams["behavior_lr"])
        updates, opt_state = tx.update(grads, opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new, {"loss": value, "grad_norm": optax.tree.norm(grads)}

    sample = sampler(cfg, action_dim)
    return Algorithm(name="srpo_behavior", config=cfg, obs_dim=obs_dim, action_dim=action_dim, init=init,
                     update=update, act=sample, explore=sample, batch_rows=cfg.behavior_batch)
