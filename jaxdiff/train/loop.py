"""Jit-friendly training chunks: K updates in one lax.scan, metrics averaged inside the chunk.

Averaging inside the scan (rather than stacking K metric dicts) keeps memory flat however long the chunk is,
which is the out-of-memory problem users of scan-based RL code keep reporting.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

UpdateFn = Callable[[Any, jax.Array], tuple[Any, dict]]


def scan_updates(update: UpdateFn, state: Any, key: jax.Array, num_steps: int,
                 limit: jax.Array | int | None = None) -> tuple[Any, dict]:
    """Apply `update(state, key) -> (state, metrics)` num_steps times; return final state and mean metrics.

    key: a PRNG key, or a pytree of keys (e.g. one per member of a joint update, see
    jaxdiff.srpo.train.joint_chunk): update i gets `split(k, num_steps)[i]` of each.

    limit (optional, may be traced): apply only the first `limit` of the num_steps updates (the rest are skipped by
    a lax.cond) and average over those. With it, the last, shorter chunk of a stage reuses the program compiled
    for full chunks instead of compiling a second one; update i gets the same key either way (key splits are
    prefix-stable: split(key, K)[:n] == split(key, n)). Pure and not jitted: wrap it with jax.jit (num_steps
    static) or vmap it over seeds.
    """
    keys = jax.tree.map(lambda k: jax.random.split(k, num_steps), key)  # one stream per key of a key pytree
    _, metrics_shape = jax.eval_shape(update, state, jax.tree.map(lambda k: k[0], keys))
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics_shape)

    def body(carry, k):
        st, acc = carry
        st, m = update(st, k)
        return (st, jax.tree.map(jnp.add, acc, m)), None

    if limit is None:
        (state, total), _ = jax.lax.scan(body, (state, zeros), keys)
        return state, jax.tree.map(lambda x: x / num_steps, total)

    def masked(carry, ik):
        i, k = ik
        return jax.lax.cond(i < limit, lambda c: body(c, k)[0], lambda c: c, carry), None

    (state, total), _ = jax.lax.scan(masked, (state, zeros), (jnp.arange(num_steps), keys))
    count = jnp.clip(jnp.asarray(limit), 1, num_steps)
    # full chunks divide by the Python constant exactly as without `limit` (XLA rounds x / constant and
    # x / traced value differently in the last bit); only the short last chunk divides by its count
    return state, jax.tree.map(lambda x: jnp.where(count >= num_steps, x / num_steps, x / count.astype(x.dtype)),
                               total)
