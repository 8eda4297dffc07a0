"""Functional replay buffer living on the device: `init / add / sample` over a frozen dataclass.

Everything is a pure function of the state, so the buffer can sit inside a jitted, scanned or vmapped
training step. Capacity is static; `add` writes a single transition (vmap over seeds for many envs).
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Transition:
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    done: jax.Array  # termination only: 1.0 where the next state is terminal (no bootstrap)


@flax.struct.dataclass
class ReplayState:
    data: Transition  # every leaf has leading axis `capacity`
    pointer: jax.Array  # next write index
    size: jax.Array  # number of valid rows

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[0]


def init(capacity: int, obs_dim: int, action_dim: int) -> ReplayState:
    z = lambda *shape: jnp.zeros((capacity, *shape), jnp.float32)  # noqa: E731
    data = Transition(z(obs_dim), z(action_dim), z(), z(obs_dim), z())
    return ReplayState(data=data, pointer=jnp.int32(0), size=jnp.int32(0))


def add(state: ReplayState, tr: Transition) -> ReplayState:
    """Write one transition at the pointer (ring buffer)."""
    i = state.pointer
    data = jax.tree.map(lambda buf, x: buf.at[i].set(jnp.asarray(x, buf.dtype)), state.data, tr)
    cap = state.capacity
    return ReplayState(data=data, pointer=(i + 1) % cap, size=jnp.minimum(state.size + 1, cap))


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Transition:
    """Uniform sample (with replacement) of batch_size rows among the valid ones. Needs size > 0."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda buf: buf[idx], state.data)
