"""The on-device state of one online run and the pure per-env-step functions the gymnasium driver dispatches.

`RunnerState` = algorithm state + functional replay buffer + key + counters + summed metrics. Everything here is
one run, unbatched and pure; the drivers stack runs on axis 0 and map these functions over it with
`jaxdiff.train.over_runs.over_runs` (a single run is a batch of one, computed without vmap).

Per gym env step the driver dispatches two jitted, donated calls: `add_step` (the replay add, an in-place row
write) and `host_step` (update after warm-up, then the next action from `explore`). The add is kept out of the
update's dispatch on purpose: fused, XLA on CPU copied the reward / next_obs / done buffers every step (the sample
reads the row just written), 48 ms vs 5 ms per step with a 1e6-row HalfCheetah buffer, bit-identical results
(benchmarks/bench_replay_dispatch.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.algorithm import Algorithm
from jaxdiff.data import replay as replay_lib
from jaxdiff.data.replay import ReplayState, Transition


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Runner settings (algorithm-independent). Defaults follow the QVPO paper's protocol."""

    seed: int = 0  # the run's seed when no run points are given
    total_steps: int = 1_000_000
    warmup_steps: int = 10_000  # uniform-random actions, no updates, for the first warmup_steps env steps
    buffer_size: int = 1_000_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_seed: int = 10_000  # evaluation episodes use seeds eval_seed + i (fixed, independent of training)
    log_every: int = 1_000
    checkpoint_every: int = 50_000  # 0 = only at the end
    save_replay: bool = True  # replay buffer inside checkpoints (exact-data resume) or not (refill on resume)
    truncation_as_terminal: bool = False  # True = official QVPO behaviour (time-outs terminal)
    max_episode_steps: int | None = None  # override the env's time limit (None = env default)
    progress: bool | None = None  # tqdm bar: None = only on a terminal (else a progress line every ~30 s)
    tensorboard: bool = False  # also write the metrics as TensorBoard scalars to <workdir>/tensorboard

    def to_dict(self) -> dict:
        """The settings as a plain dict (stored beside checkpoints and in summary.json)."""
        return dataclasses.asdict(self)


@flax.struct.dataclass
class RunnerState:
    """One run's training state on the device (stacked on axis 0 by the drivers)."""

    agent: Any
    replay: ReplayState | None  # None in checkpoints saved with save_replay=False
    key: jax.Array  # raw uint32 PRNG key, split once per env step
    env_step: jax.Array  # int32 env steps done
    metrics_sum: dict  # algo.update metrics summed since the last log
    metrics_count: jax.Array  # number of updates summed into metrics_sum


def metric_zeros(algo: Algorithm, agent_state: Any, obs_dim: int, action_dim: int) -> dict:
    """Zeros shaped like algo.update's metrics (found by eval_shape, nothing runs)."""
    z = lambda *s: jnp.zeros(s, jnp.float32)  # noqa: E731
    n = algo.batch_rows
    batch = Transition(z(n, obs_dim), z(n, action_dim), z(n), z(n, obs_dim), z(n))
    _, shapes = jax.eval_shape(algo.update, agent_state, batch, jax.random.PRNGKey(0))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def init_runner(algo: Algorithm, key: jax.Array, obs_dim: int, action_dim: int, capacity: int) -> RunnerState:
    """A fresh run from its key: algo.init on the first half of split(key), the run key is the second half."""
    k_agent, k_run = jax.random.split(key)
    agent_state = algo.init(k_agent)
    return RunnerState(
        agent=agent_state,
        replay=replay_lib.init(capacity, obs_dim, action_dim),
        key=k_run,
        env_step=jnp.zeros((), jnp.int32),
        metrics_sum=metric_zeros(algo, agent_state, obs_dim, action_dim),
        metrics_count=jnp.zeros((), jnp.int32),
    )


def reset_metrics(rs: RunnerState) -> RunnerState:
    """Zero the summed metrics and their count (after a log record); works on stacked states too."""
    return rs.replace(metrics_sum=jax.tree.map(jnp.zeros_like, rs.metrics_sum),
                      metrics_count=jnp.zeros_like(rs.metrics_count))


def update_step(algo: Algorithm, rs: RunnerState, key: jax.Array) -> RunnerState:
    """Sample algo.batch_rows uniformly from the replay buffer, run one algo.update, accumulate metrics."""
    k_s, k_u = jax.random.split(key)
    batch = replay_lib.sample(rs.replay, k_s, algo.batch_rows)
    agent_state, m = algo.update(rs.agent, batch, k_u)
    return rs.replace(
        agent=agent_state,
        metrics_sum=jax.tree.map(lambda a, b: a + b.astype(a.dtype), rs.metrics_sum, m),
        metrics_count=rs.metrics_count + 1,
    )


def pack(obs, action, reward, next_obs, done, obs_next_act) -> np.ndarray:
    """The host's flat float32 row [obs, action, reward, next_obs, done, obs_to_act_on]: one transfer per step."""
    return np.concatenate(
        [np.ravel(obs), np.ravel(action), [reward], np.ravel(next_obs), [float(done)], np.ravel(obs_next_act)]
    ).astype(np.float32)


def unpack(packed: jax.Array, obs_dim: int, action_dim: int) -> tuple[Transition, jax.Array]:
    """Split a `pack`ed row into (Transition, the observation to act on next)."""
    o, a = obs_dim, action_dim
    tr = Transition(
        obs=packed[:o],
        action=packed[o : o + a],
        reward=packed[o + a],
        next_obs=packed[o + a + 1 : 2 * o + a + 1],
        done=packed[2 * o + a + 1],
    )
    return tr, packed[2 * o + a + 2 :]


def add_step(rs: RunnerState, packed: jax.Array, *, obs_dim: int, action_dim: int) -> RunnerState:
    """The replay add alone (jit with donate_argnums=0: an in-place row write)."""
    tr, _ = unpack(packed, obs_dim, action_dim)
    return rs.replace(replay=replay_lib.add(rs.replay, tr))


def host_step(
    algo: Algorithm, rs: RunnerState, packed: jax.Array, *, obs_dim: int, action_dim: int, do_update: bool,
    do_act: bool,
) -> tuple[RunnerState, jax.Array | None]:
    """The rest of one env step after `add_step`: split the key, count the step, [update], [explore on the next
    observation]. Returns (state, action in [-1, 1] or None)."""
    _, obs_next = unpack(packed, obs_dim, action_dim)
    key, k_upd, k_act = jax.random.split(rs.key, 3)
    rs = rs.replace(key=key, env_step=rs.env_step + 1)
    if do_update:
        rs = update_step(algo, rs, k_upd)
    action = algo.explore(rs.agent, obs_next[None], k_act)[0] if do_act else None
    return rs, action


def first_action(algo: Algorithm, rs: RunnerState, obs: jax.Array) -> tuple[RunnerState, jax.Array]:
    """The policy's action on an observation that has no step before it (start after warm-up, or resume)."""
    key, k_act = jax.random.split(rs.key)
    return rs.replace(key=key), algo.explore(rs.agent, obs[None], k_act)[0]
