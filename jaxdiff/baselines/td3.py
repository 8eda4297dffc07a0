"""TD3 (Fujimoto et al. 2018) as pure functions.

Defaults from the paper / author code: actor and twin critics 256-256 ReLU, Adam 3e-4, gamma 0.99, Polyak 0.005,
policy (and target) update every 2 critic steps, target-policy noise N(0, 0.2) clipped to 0.5, exploration noise
N(0, 0.1), batch 256. Actions are normalised to [-1, 1].

    algo = td3.make(TD3Config(), obs_dim, action_dim)   # jaxdiff.algorithm.Algorithm
    TD3Config.sweepable()   # actor_lr, critic_lr, gamma, tau, policy_noise, noise_clip, exploration_noise
"""
from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.algorithm import Algorithm, copy_tree, set_learning_rate
from jaxdiff.baselines.sac import adam
from jaxdiff.data.replay import Transition
from jaxdiff.train import hparams as hparams_lib


@dataclasses.dataclass(frozen=True)
class TD3Config(hparams_lib.ConfigRecord):
    """TD3 settings. batch_size, hidden and policy_delay (an update count, used in a lax.cond) are bound at make;
    the rest become the float32 leaves of `TD3State.hparams` (see `sweepable`)."""

    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_delay: int = 2
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    exploration_noise: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))  # a JSON list reads back equal

    @classmethod
    def sweepable(cls) -> tuple[str, ...]:
        """Names that can take one value per run in one vmapped process: the fields of `TD3HParams`."""
        return hparams_lib.field_names(TD3HParams)


@flax.struct.dataclass
class TD3HParams:
    """TD3's numeric hyperparameters as float32 leaves; the update (and explore) read each one from here (the
    learning rates through optax.inject_hyperparams)."""

    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array
    policy_noise: jax.Array
    noise_clip: jax.Array
    exploration_noise: jax.Array

    @classmethod
    def from_config(cls, c: TD3Config) -> "TD3HParams":
        """The config's values of these names, as float32 scalars."""
        return hparams_lib.from_config(cls, c)


@flax.struct.dataclass
class TD3State:
    """One TD3 run's arrays: actor, critics, both targets, optimizer states, hparams, update count."""

    actor_params: dict
    actor_target: dict
    critic_params: dict
    critic_target: dict
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    hparams: TD3HParams
    step: jax.Array


def make(config: TD3Config, obs_dim: int, action_dim: int) -> Algorithm:
    """TD3 as an `Algorithm`: act is the deterministic actor, explore adds clipped Gaussian noise."""
    actor = nets.DiracPolicy(action_dim, tuple(config.hidden))
    critic = nets.TwinQ(hidden=tuple(config.hidden))
    actor_tx, critic_tx = adam(config.actor_lr), adam(config.critic_lr)

    def init(key):
        k_a, k_c = jax.random.split(key)
        o, a = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
        actor_params = actor.init(k_a, o)["params"]
        critic_params = critic.init(k_c, o, a)["params"]
        return TD3State(actor_params=actor_params, actor_target=copy_tree(actor_params), critic_params=critic_params,
                        critic_target=copy_tree(critic_params), actor_opt=actor_tx.init(actor_params),
                        critic_opt=critic_tx.init(critic_params), hparams=TD3HParams.from_config(config),
                        step=jnp.zeros((), jnp.int32))

    def act(state, obs, key):
        del key
        return actor.apply({"params": state.actor_params}, obs)

    def explore(state, obs, key):
        a = act(state, obs, None)
        return jnp.clip(a + state.hparams.exploration_noise * jax.random.normal(key, a.shape), -1.0, 1.0)

    def update(state, batch: Transition, key):
        hp = state.hparams
        noise = jnp.clip(hp.policy_noise * jax.random.normal(key, batch.action.shape), -hp.noise_clip, hp.noise_clip)
        next_a = jnp.clip(actor.apply({"params": state.actor_target}, batch.next_obs) + noise, -1.0, 1.0)
        next_q = critic.apply({"params": state.critic_target}, batch.next_obs, next_a).min(0)
        y = jax.lax.stop_gradient(batch.reward + hp.gamma * (1.0 - batch.done) * next_q)

        def critic_loss(p):
            q = critic.apply({"params": p}, batch.obs, batch.action)
            return jnp.mean(jnp.sum((q - y[None]) ** 2, axis=0)), q.mean()

        (c_loss, q_mean), g = jax.value_and_grad(critic_loss, has_aux=True)(state.critic_params)
        upd, critic_opt = critic_tx.update(g, set_learning_rate(state.critic_opt, hp.critic_lr), state.critic_params)
        # set outside the cond, so the skipped steps carry the current learning rate too
        actor_opt0 = set_learning_rate(state.actor_opt, hp.actor_lr)
        critic_params = optax.apply_updates(state.critic_params, upd)

        def delayed(_):
            def actor_loss(p):
                a = actor.apply({"params": p}, batch.obs)
                return -jnp.mean(critic.apply({"params": critic_params}, batch.obs, a)[0])

            a_loss, g = jax.value_and_grad(actor_loss)(state.actor_params)
            upd, actor_opt = actor_tx.update(g, actor_opt0, state.actor_params)
            actor_params = optax.apply_updates(state.actor_params, upd)
            return (actor_params, actor_opt, optax.incremental_update(actor_params, state.actor_target, hp.tau),
                    optax.incremental_update(critic_params, state.critic_target, hp.tau), a_loss)

        def skip(_):
            return (state.actor_params, actor_opt0, state.actor_target, state.critic_target,
                    jnp.zeros((), jnp.float32))

        actor_params, actor_opt, actor_target, critic_target, a_loss = jax.lax.cond(
            state.step % config.policy_delay == 0, delayed, skip, None)
        new = state.replace(actor_params=actor_params, actor_target=actor_target, critic_params=critic_params,
                            critic_target=critic_target, actor_opt=actor_opt, critic_opt=critic_opt,
                            step=state.step + 1)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss, "q_mean": q_mean}

    return Algorithm("td3", config, obs_dim, action_dim, init=init, update=update, act=act, explore=explore,
                     batch_rows=config.batch_size)

