"""Stage (b): the IQL critic — twin Q, V, expectile regression, Polyak-averaged target Q.

    algo = critic.make(cfg, obs_dim, action_dim)
    state = algo.init(key)                               # q_target is a copy of q_params: donation-safe
    state, metrics = algo.update(state, batch, key)      # batch: Transition (obs, action, reward, next_obs, done)

Per step (official order): targets without gradient (min of the target heads at (s, a), V(s') with the
current V) -> update V -> update Q -> Polyak. The expectile `tau`, discount `gamma` and `critic_lr` are float32
leaves of `state.hparams`, so they can be vmapped over like the seed. The Polyak rate stays a Python number:
optax.incremental_update computes 1 - rate, which rounds differently in float32.
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff.algorithm import Algorithm, Transition, copy_tree, set_learning_rate
from jaxdiff.nets import TwinQ, ValueNet
from jaxdiff.srpo.config import SRPOConfig


@flax.struct.dataclass
class CriticState:
    """Train state of the IQL critic: arrays only."""

    q_params: Any
    q_target: Any
    v_params: Any
    q_opt: Any  # inject_hyperparams(adam) states; learning_rate overwritten from hparams["critic_lr"] every step
    v_opt: Any
    step: jax.Array
    hparams: dict  # {"critic_lr", "tau" (expectile), "gamma"}: float32


def networks(cfg: SRPOConfig) -> tuple[TwinQ, ValueNet]:
    """(twin Q, V) networks of the config."""
    hidden = (cfg.critic_width,) * cfg.critic_layers
    return TwinQ(hidden=hidden), ValueNet(hidden=hidden)


def optimizer(cfg: SRPOConfig) -> optax.GradientTransformation:
    """Adam with an injected learning rate (one rate for Q and V)."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=cfg.critic_lr)


def expectile_loss(u: jax.Array, tau: jax.Array) -> jax.Array:
    """mean(|tau - 1(u < 0)| u^2)."""
    return jnp.mean(jnp.abs(tau - (u < 0).astype(u.dtype)) * u**2)


def q_values(q_params: Any, cfg: SRPOConfig, obs: jax.Array, action: jax.Array) -> jax.Array:
    """Both heads, shape (2, batch)."""
    return networks(cfg)[0].apply(q_params, obs, action)


def make(cfg: SRPOConfig, obs_dim: int, action_dim: int) -> Algorithm:
    """The critic stage as an Algorithm (name "srpo_critic"); act / explore are not defined for it."""
    q_net, v_net = networks(cfg)
    tx = optimizer(cfg)

    def init(key: jax.Array) -> CriticState:
        k_q, k_v = jax.random.split(key)
        obs, act = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
        q_params = q_net.init(k_q, obs, act)
        v_params = v_net.init(k_v, obs)
        hparams = {"critic_lr": jnp.float32(cfg.critic_lr), "tau": jnp.float32(cfg.tau), "gamma": jnp.float32(cfg.gamma)}
        return CriticState(q_params=q_params, q_target=copy_tree(q_params), v_params=v_params, q_opt=tx.init(q_params),
                           v_opt=tx.init(v_params), step=jnp.zeros((), jnp.int32), hparams=hparams)

    def update(state: CriticState, batch: Transition, key: jax.Array) -> tuple[CriticState, dict]:
        """One IQL step. `key` is unused (IQL is deterministic given the batch): uniform update signature."""
        del key
        hp = state.hparams
        target_q = jnp.min(q_net.apply(state.q_target, batch.obs, batch.action), axis=0)
        next_v = v_net.apply(state.v_params, batch.next_obs)
        target_q, next_v = jax.lax.stop_gradient(target_q), jax.lax.stop_gradient(next_v)

        def v_loss_fn(v_params):
            v = v_net.apply(v_params, batch.obs)
            return expectile_loss(target_q - v, hp["tau"]), v

        (v_loss, v), v_grads = jax.value_and_grad(v_loss_fn, has_aux=True)(state.v_params)
        v_updates, v_opt = tx.update(v_grads, set_learning_rate(state.v_opt, hp["critic_lr"]), state.v_params)
        v_params = optax.apply_updates(state.v_params, v_updates)

        target = batch.reward + hp["gamma"] * (1.0 - batch.done) * next_v

        def q_loss_fn(q_params):
            qs = q_net.apply(q_params, batch.obs, batch.action)  # (2, B)
            return jnp.mean((qs - target[None]) ** 2), qs  # mean over heads of each head's MSE

        (q_loss, qs), q_grads = jax.value_and_grad(q_loss_fn, has_aux=True)(state.q_params)
        q_updates, q_opt = tx.update(q_grads, set_learning_rate(state.q_opt, hp["critic_lr"]), state.q_params)
        q_params = optax.apply_updates(state.q_params, q_updates)
        q_target = optax.incremental_update(q_params, state.q_target, cfg.polyak)

        new = state.replace(q_params=q_params, q_target=q_target, v_params=v_params, q_opt=q_opt, v_opt=v_opt,
                            step=state.step + 1)
        metrics = {"v_loss": v_loss, "q_loss": q_loss, "v_mean": jnp.mean(v), "q_mean": jnp.mean(qs),
                   "target_q_mean": jnp.mean(target_q)}
        return new, metrics

    def no_act(state: CriticState, obs: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError("the SRPO critic stage has no policy: act with the policy stage")

    return Algorithm(name="srpo_critic", config=cfg, obs_dim=obs_dim, action_dim=action_dim, init=init,
                     update=update, act=no_act, explore=no_act, batch_rows=cfg.critic_batch)
