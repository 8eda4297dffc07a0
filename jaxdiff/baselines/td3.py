"""TD3 (Fujimoto et al. 2018) as pure functions.

Defaults from the paper / author code: actor and twin critics 256-256 ReLU, Adam 3e-4, gamma 0.99, Polyak 0.005,
policy (and target) update every 2 critic steps, target-policy noise N(0, 0.2) clipped to 0.5, exploration noise
N(0, 0.1), batch 256. Actions are normalised to [-1, 1].
"""
from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.algorithm import Algorithm
from jaxdiff.data.replay import Transition


def _copy(tree):
    """Targets start as copies, not aliases: the runner donates the whole state, and XLA refuses to donate
    one buffer twice."""
    return jax.tree.map(jnp.copy, tree)


@dataclasses.dataclass(frozen=True)
class TD3Config:
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@flax.struct.dataclass
class TD3State:
    actor_params: dict
    actor_target: dict
    critic_params: dict
    critic_target: dict
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    hparams: dict  # gamma, tau, policy_noise, noise_clip, exploration_noise: float32 leaves (vmappable)
    step: jax.Array


def make(config: TD3Config, obs_dim: int, action_dim: int) -> Algorithm:
    actor = nets.DiracPolicy(action_dim, tuple(config.hidden))
    critic = nets.TwinQ(hidden=tuple(config.hidden))
    actor_tx, critic_tx = optax.adam(config.actor_lr), optax.adam(config.critic_lr)

    def init(key):
        k_a, k_c = jax.random.split(key)
        o, a = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
        actor_params = actor.init(k_a, o)["params"]
        critic_params = critic.init(k_c, o, a)["params"]
        hp = {k: jnp.float32(getattr(config, k)) for k in
              ("gamma", "tau", "policy_noise", "noise_clip", "exploration_noise")}
        return TD3State(actor_params=actor_params, actor_target=_copy(actor_params), critic_params=critic_params,
                        critic_target=_copy(critic_params), actor_opt=actor_tx.init(actor_params),
                        critic_opt=critic_tx.init(critic_params), hparams=hp, step=jnp.zeros((), jnp.int32))

    def act(state, obs, key):
        del key
        return actor.apply({"params": state.actor_params}, obs)

    def explore(state, obs, key):
        a = act(state, obs, None)
        return jnp.clip(a + state.hparams["exploration_noise"] * jax.random.normal(key, a.shape), -1.0, 1.0)

    def update(state, batch: Transition, key):
        hp = state.hparams
        noise = jnp.clip(hp["policy_noise"] * jax.random.normal(key, batch.action.shape),
                         -hp["noise_clip"], hp["noise_clip"])
        next_a = jnp.clip(actor.apply({"params": state.actor_target}, batch.next_obs) + noise, -1.0, 1.0)
        next_q = critic.apply({"params": state.critic_target}, batch.next_obs, next_a).min(0)
        y = jax.lax.stop_gradient(batch.reward + hp["gamma"] * (1.0 - batch.done) * next_q)

        def critic_loss(p):
            q = critic.apply({"params": p}, batch.obs, batch.action)
            return jnp.mean(jnp.sum((q - y[None]) ** 2, axis=0)), q.mean()

        (c_loss, q_mean), g = jax.value_and_grad(critic_loss, has_aux=True)(state.critic_params)
        upd, critic_opt = critic_tx.update(g, state.critic_opt, state.critic_params)
        critic_params = optax.apply_updates(state.critic_params, upd)

        def delayed(_):
            def actor_loss(p):
                a = actor.apply({"params": p}, batch.obs)
                return -jnp.mean(critic.apply({"params": critic_params}, batch.obs, a)[0])

            a_loss, g = jax.value_and_grad(actor_loss)(state.actor_params)
            upd, actor_opt = actor_tx.update(g, state.actor_opt, state.actor_params)
            actor_params = optax.apply_updates(state.actor_params, upd)
            return (actor_params, actor_opt, optax.incremental_update(actor_params, state.actor_target, hp["tau"]),
                    optax.incremental_update(critic_params, state.critic_target, hp["tau"]), a_loss)

        def skip(_):
            return (state.actor_params, state.actor_opt, state.actor_target, state.critic_target,
                    jnp.zeros((), jnp.float32))

        actor_params, actor_opt, actor_target, critic_target, a_loss = jax.lax.cond(
            state.step % config.policy_delay == 0, delayed, skip, None)
        new = state.replace(actor_params=actor_params, actor_target=actor_target, critic_params=critic_params,
                            critic_target=critic_target, actor_opt=actor_opt, critic_opt=critic_opt,
                            step=state.step + 1)
        return new, {"critic_loss": c_loss, "actor_loss": a_loss, "q_mean": q_mean}

    return Algorithm("td3", config, obs_dim, action_dim, init=init, update=update, act=act, explore=explore,
                     batch_rows=config.batch_size)


make_agent = make  # old name, kept until the drivers move to `make` (issue 10)
