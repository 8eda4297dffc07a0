"""Chunks of K updates as one pure function (a lax.scan), with batches drawn on the device inside it.

    state, metrics = chunk(algo, state, data, key, num_steps)      # jit with algo / num_steps static, or vmap
    (b, c), (mb, mc) = joint_chunk((algos.behavior, algos.critic), (b, c), data, (kb, kc), num_steps)  # one scan

`data` is a `jaxdiff.algorithm.Transition` of arrays with a leading transition axis living on the device.
Nothing is jitted here.

Data parallelism: `batch_sharding` (e.g. NamedSharding(mesh, PartitionSpec("batch"))) constrains each drawn
minibatch to be split over devices along its batch axis. Under jit, GSPMD then runs the forward/backward pass
on each device's slice and all-reduces the gradients; the result equals the unsharded update up to summation
order. Worth it for the behavior model's batch of 2048 on several accelerators; the data stays replicated.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax

from jaxdiff.algorithm import Algorithm, Transition
from jaxdiff.train.loop import scan_updates

UpdateFn = Callable[[Any, Transition, jax.Array], tuple[Any, dict]]


def sample_batch(data: Transition, key: jax.Array, batch_size: int) -> Transition:
    """Uniform minibatch (with replacement) of `batch_size` transitions, by jax.random.randint."""
    idx = jax.random.randint(key, (batch_size,), 0, data.reward.shape[0])
    return jax.tree.map(lambda x: x[idx], data)


def batch_step(update: UpdateFn, data: Transition, batch_size: int,
               batch_sharding: jax.sharding.Sharding | None = None) -> Callable[[Any, jax.Array], tuple[Any, dict]]:
    """The body of a chunk: (state, key) -> update(state, a minibatch of `batch_size` rows of data, key)."""
    def step(st, k):
        k_batch, k_update = jax.random.split(k)
        batch = sample_batch(data, k_batch, batch_size)
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return update(st, batch, k_update)

    return step


def train_chunk(update: UpdateFn, state: Any, data: Transition, key: jax.Array, num_steps: int,
                batch_size: int, batch_sharding: jax.sharding.Sharding | None = None,
                limit: jax.Array | int | None = None) -> tuple[Any, dict]:
    """`num_steps` x (sample a batch, update) in one lax.scan; metrics are averaged over the chunk. limit: only
    the first `limit` updates are applied (see jaxdiff.train.loop.scan_updates)."""
    return scan_updates(batch_step(update, data, batch_size, batch_sharding), state, key, num_steps, limit)


def chunk(algo: Algorithm, state: Any, data: Transition, key: jax.Array, num_steps: int,
          batch_sharding: jax.sharding.Sharding | None = None, limit: jax.Array | int | None = None
          ) -> tuple[Any, dict]:
    """`num_steps` updates of an Algorithm on minibatches of algo.batch_rows rows drawn from `data` (only the first
    `limit` when given: a short last chunk without a second compile)."""
    return train_chunk(algo.update, state, data, key, num_steps, algo.batch_rows, batch_sharding, limit)


def joint_chunk(algos: Sequence[Algorithm], states: Sequence[Any], data: Transition, keys: Sequence[jax.Array],
                num_steps: int, limit: jax.Array | int | None = None) -> tuple[tuple, tuple]:
    """The chunks of independent Algorithms in ONE lax.scan: update i of every member in the same loop iteration.
    Equal to `tuple(chunk(a, s, data, k, num_steps, limit=limit) for ...)` (same keys, same minibatches; the
    results are bit-identical on CPU, tested), returned as (states, metrics) tuples in the order given.

    Why: SRPO's behavior model (batch 2048, compute-bound) and IQL critic (batch 256, latency-bound) do not
    depend on each other. Run one after the other, the critic's small kernels get the accelerator to themselves
    and leave most of it idle; in one loop the compiler can schedule them together, and there is one dispatch
    per chunk instead of two."""
    steps = [batch_step(a.update, data, a.batch_rows) for a in algos]

    def update(sts, ks):
        outs = [f(s, k) for f, s, k in zip(steps, sts, ks)]
        return tuple(o[0] for o in outs), tuple(o[1] for o in outs)

    return scan_updates(update, tuple(states), tuple(keys), num_steps, limit)
