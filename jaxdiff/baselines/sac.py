"""Soft Actor-Critic (Haarnoja et al. 2018, with automatic temperature) as pure functions.

Defaults follow the common reference settings (jaxrl / CleanRL): twin Q 256-256 ReLU, tanh-Gaussian actor 256-256
with log-std clipped to [-5, 2], Adam 3e-4 everywhere, gamma 0.99, Polyak 0.005, target entropy -|A|,
initial temperature 1.0, batch 256.

    algo = sac.make(SACConfig(), obs_dim, action_dim)   # jaxdiff.algorithm.Algorithm
    SACConfig.sweepable()                               # actor_lr, critic_lr, alpha_lr, gamma, tau
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.algorithm import Algorithm, copy_tree, set_learning_rate
from jaxdiff.data.replay import Transition
from jaxdiff.train import hparams as hparams_lib

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclasses.dataclass(frozen=True)
class SACConfig(hparams_lib.ConfigRecord):
    """SAC settings. batch_size, hidden, init_alpha and target_entropy are bound at make / init; the rest become
    the float32 leaves of `SACState.hparams` (see `sweepable`).

    target_entropy stays a Python constant of the update: as a traced leaf, XLA compiles the temperature step
    differently and the jitted log_alpha moves by 1 ulp (measured), which would break the regression fixtures."""

    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None = -action_dim

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))  # a JSON list reads back equal

    @classmethod
    def sweepable(cls) -> tuple[str, ...]:
        """Names that can take one value per run in one vmapped process: the fields of `SACHParams`."""
        return hparams_lib.field_names(SACHParams)


@flax.struct.dataclass
class SACHParams:
    """SAC's numeric hyperparameters as float32 leaves; the update reads each one from here (the learning rates
    through optax.inject_hyperparams)."""

    actor_lr: jax.Array
    critic_lr: jax.Array
    alpha_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array

    @classmethod
    def from_config(cls, c: SACConfig) -> "SACHParams":
        """The config's values of these names, as float32 scalars."""
        return hparams_lib.from_config(cls, c)


class TanhGaussianActor(nn.Module):
    """obs -> (mean, log_std) of the pre-tanh Gaussian; log_std clipped to [LOG_STD_MIN, LOG_STD_MAX]."""

    action_dim: int
    hidden: tuple[int, ...] = (256, 256)

    @nn.compact
    def __call__(self, obs):
        h = obs
        for w in self.hidden:
            h = nn.relu(nets.Dense(w)(h))
        mean = nets.Dense(self.action_dim)(h)
        log_std = jnp.clip(nets.Dense(self.action_dim)(h), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


def sample_tanh_gaussian(mean, log_std, key):
    """Reparameterised tanh-Gaussian sample and its log-probability (with the tanh change of variables)."""
    std = jnp.exp(log_std)
    u = mean + std * jax.random.normal(key, mean.shape)
    logp_u = jnp.sum(-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable.
    logdet = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
    return jnp.tanh(u), logp_u - logdet


@flax.struct.dataclass
class SACState:
    """One SAC run's arrays: networks, target critic, temperature, optimizer states, hparams, update count."""

    actor_params: dict
    critic_params: dict
    critic_target: dict
    log_alpha: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    hparams: SACHParams
    step: jax.Array


def adam(learning_rate: float) -> optax.GradientTransformation:
    """optax.adam(learning_rate) with only the learning rate injected (a leaf of the optimizer state, set from
    hparams by `set_learning_rate`); b1, b2, eps stay Python floats, so the arithmetic is bit for bit adam's."""
    return optax.inject_hyperparams(optax.adam, static_args=("b1", "b2", "eps", "eps_root"))(learning_rate)


def make(config: SACConfig, obs_dim: int, action_dim: int) -> Algorithm:
    """SAC as an `Algorithm`: explore samples the tanh-Gaussian, act is tanh(mean); batch_rows = batch_size."""
    actor = TanhGaussianActor(action_dim, tuple(config.hidden))
    critic = nets.TwinQ(hidden=tuple(config.hidden))
    actor_tx, critic_tx, alpha_tx = adam(config.actor_lr), adam(config.critic_lr), adam(config.alpha_lr)
    target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy

    def init(key):
        k_a, k_c = jax.random.split(key)
        o, a = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
        actor_params = actor.init(k_a, o)["params"]
        critic_params = critic.init(k_c, o, a)["params"]
        log_alpha = jnp.log(jnp.float32(config.init_alpha))
        return SACState(
            actor_params=actor_params, critic_params=critic_params, critic_target=copy_tree(critic_params),
            log_alpha=log_alpha, actor_opt=actor_tx.init(actor_params), critic_opt=critic_tx.init(critic_params),
            alpha_opt=alpha_tx.init(log_alpha),
            hparams=SACHParams.from_config(config),
            step=jnp.zeros((), jnp.int32),
        )

    def explore(state, obs, key):
        mean, log_std = actor.apply({"params": state.actor_params}, obs)
        return sample_tanh_gaussian(mean, log_std, key)[0]

    def act(state, obs, key):
        del key
        return jnp.tanh(actor.apply({"params": state.actor_params}, obs)[0])

    def update(state, batch: Transition, key):
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        hp = state.hparams
        gamma, tau = hp.gamma, hp.tau

        mean, log_std = actor.apply({"params": state.actor_params}, batch.next_obs)
        next_a, next_logp = sample_tanh_gaussian(mean, log_std, k_next)
        next_q = critic.apply({"params": state.critic_target}, batch.next_obs, next_a).min(0) - alpha * next_logp
        y = jax.lax.stop_gradient(batch.reward + gamma * (1.0 - batch.done) * next_q)

        def critic_loss(p):
            q = critic.apply({"params": p}, batch.obs, batch.action)
            return jnp.mean(jnp.sum((q - y[None]) ** 2, axis=0)), q.mean()

        (c_loss, q_mean), g = jax.value_and_grad(critic_loss, has_aux=True)(state.critic_params)
        upd, critic_opt = critic_tx.update(g, set_learning_rate(state.critic_opt, hp.critic_lr), state.critic_params)
        critic_params = optax.apply_updates(state.critic_params, upd)

        def actor_loss(p):
            m, ls = actor.apply({"params": p}, batch.obs)
            a, logp = sample_tanh_gaussian(m, ls, k_pi)
            q = critic.apply({"params": critic_params}, batch.obs, a).min(0)
            return jnp.mean(alpha * logp - q), logp

        (a_loss, logp), g = jax.value_and_grad(actor_loss, has_aux=True)(state.actor_params)
        upd, actor_opt = actor_tx.update(g, set_learning_rate(state.actor_opt, hp.actor_lr), state.actor_params)
        actor_params = optax.apply_updates(state.actor_params, upd)

        entropy = -jax.lax.stop_gradient(logp).mean()
        alpha_grad = jax.grad(lambda la: jnp.exp(la) * (entropy - target_entropy))(state.log_alpha)
        upd, alpha_opt = alpha_tx.update(alpha_grad, set_learning_rate(state.alpha_opt, hp.alpha_lr), state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, upd)

        critic_target = optax.incremental_update(critic_params, state.critic_target, tau)
        new = state.replace(actor_params=actor_params, critic_params=critic_params, critic_target=critic_target,
                            log_alpha=log_alpha, actor_opt=actor_opt, critic_opt=critic_opt, alpha_opt=alpha_opt,
                            step=state.step + 1)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss, "q_mean": q_mean, "alpha": alpha,
                     "entropy": entropy}

    return Algorithm("sac", config, obs_dim, action_dim, init=init, update=update, act=act, explore=explore,
                     batch_rows=config.batch_size)

