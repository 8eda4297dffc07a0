"""Chunks of K updates as one pure function (a lax.scan), with batches drawn on the device inside it.

    state, metrics = behavior_chunk(state, data, key, num_steps)      # jit with num_steps static, or vmap

`data` is a `jaxdiff.data.replay.Transition` of arrays with a leading transition axis living on the device.
Nothing is jitted here.

Data parallelism: `batch_sharding` (e.g. NamedSharding(mesh, PartitionSpec("batch"))) constrains each drawn
minibatch to be split over devices along its batch axis. Under jit, GSPMD then runs the forward/backward pass
on each device's slice and all-reduces the gradients; the result equals the unsharded update up to summation
order. Worth it for the behavior model's batch of 2048 on several accelerators; the data stays replicated.
"""
from __future__ import annotations

from typing import Any, Callable

import jax

from jaxdiff.data.replay import Transition
from jaxdiff.srpo import behavior, critic, policy
from jaxdiff.train.loop import scan_updates

UpdateFn = Callable[[Any, Transition, jax.Array], tuple[Any, dict]]


def sample_batch(data: Transition, key: jax.Array, batch_size: int) -> Transition:
    """Uniform minibatch (with replacement) of `batch_size` transitions, by jax.random.randint."""
    idx = jax.random.randint(key, (batch_size,), 0, data.reward.shape[0])
    return jax.tree.map(lambda x: x[idx], data)


def train_chunk(update: UpdateFn, state: Any, data: Transition, key: jax.Array, num_steps: int,
                batch_size: int, batch_sharding: jax.sharding.Sharding | None = None) -> tuple[Any, dict]:
    """`num_steps` x (sample a batch, update) in one lax.scan; metrics are averaged over the chunk."""
    def step(st, k):
        k_batch, k_update = jax.random.split(k)
        batch = sample_batch(data, k_batch, batch_size)
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return update(st, batch, k_update)

    return scan_updates(step, state, key, num_steps)


def behavior_chunk(state: behavior.BehaviorState, data: Transition, key: jax.Array, num_steps: int,
                   batch_sharding: jax.sharding.Sharding | None = None):
    return train_chunk(behavior.update, state, data, key, num_steps, state.cfg.behavior_batch, batch_sharding)


def critic_chunk(state: critic.CriticState, data: Transition, key: jax.Array, num_steps: int):
    return train_chunk(critic.update, state, data, key, num_steps, state.cfg.critic_batch)


def policy_chunk(state: policy.PolicyState, data: Transition, key: jax.Array, num_steps: int):
    return train_chunk(policy.update, state, data, key, num_steps, state.cfg.policy_batch)
