"""Pure pieces of online training on a functional (pure-JAX) env: acting, env, replay and updates in one lax.scan.

`JaxEnv` is the env interface (e.g. `jaxdiff.envs.bandit.make_bandit()`), `JaxLoopState` one run's loop state,
`jax_chunk` num_steps env steps as one scan, `jax_evaluate` parallel evaluation episodes, `step_flags` the
host-side schedule of which steps act with the policy and which update. All unbatched; the driver
(`jaxdiff.train.online_jax.run_jax`) stacks runs on axis 0 and maps these over it with `over_runs`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.algorithm import Algorithm
from jaxdiff.data import replay as replay_lib
from jaxdiff.data.replay import Transition
from jaxdiff.train.online_state import RunnerState, init_runner, update_step


class JaxEnv(NamedTuple):
    """A functional env. reset(key) -> (env_state, obs); step(env_state, action, key) -> (env_state, next_obs,
    reward, terminated, truncated). Actions are in [-1, 1]. Episodes end by `max_episode_steps` at the latest."""

    obs_dim: int
    action_dim: int
    max_episode_steps: int
    reset: Callable[[jax.Array], tuple[Any, jax.Array]]
    step: Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array]]


@flax.struct.dataclass
class JaxLoopState:
    """One run on a JaxEnv: the runner state, the env's state and observation, and episode bookkeeping."""

    runner: RunnerState
    env_state: Any
    obs: jax.Array
    ep_return: jax.Array
    ep_len: jax.Array
    done_return_sum: jax.Array  # returns of episodes finished since the last log
    done_count: jax.Array


def jax_init(algo: Algorithm, env: JaxEnv, key: jax.Array, capacity: int) -> JaxLoopState:
    """A fresh run from its key: init_runner on the first half of split(key), env.reset on the second."""
    k_run, k_env = jax.random.split(key)
    rs = init_runner(algo, k_run, env.obs_dim, env.action_dim, capacity)
    # copies: reset may hand back arrays the env closes over, and the loop state gets donated
    env_state, obs = jax.tree.map(lambda x: jnp.array(x, copy=True), env.reset(k_env))
    f = lambda: jnp.zeros((), jnp.float32)  # noqa: E731
    return JaxLoopState(rs, env_state, obs, f(), jnp.zeros((), jnp.int32), f(), jnp.zeros((), jnp.int32))


def step_flags(step: int, num_steps: int, warmup_steps: int, replay_size: int,
               capacity: int) -> tuple[np.ndarray, int]:
    """(num_steps, 2) bool (policy_acts, do_update) for env steps step .. step + num_steps - 1, and the replay
    size after them. The policy acts from env step warmup_steps on; updates start once warm and the buffer holds
    max(warmup_steps, 1) rows (later than warm-up only after a resume without the replay buffer). All runs step
    together, so one set of flags serves them all."""
    update_after = max(warmup_steps, 1)
    flags = np.zeros((num_steps, 2), bool)
    for i, s in enumerate(range(step, step + num_steps)):
        replay_size = min(replay_size + 1, capacity)
        flags[i] = (s >= warmup_steps, s + 1 >= warmup_steps and replay_size >= update_after)
    return flags, replay_size


def jax_chunk(algo: Algorithm, env: JaxEnv, ls: JaxLoopState, flags: jax.Array, *,
              truncation_as_terminal: bool = False) -> JaxLoopState:
    """len(flags) env steps (act -> env.step -> replay add -> [update]) as one lax.scan. Pure; jit it.

    flags: `step_flags(...)[0]`, (num_steps, 2) bool (policy_acts, do_update) per step. Computed on the host and
    passed unbatched when runs are mapped, so the `lax.cond`s stay real branches: a cond on a per-run (batched)
    flag would become a select that runs both branches, an update on every warm-up step.
    """

    def body(ls: JaxLoopState, flag):
        rs = ls.runner
        key, k_act, k_env, k_reset, k_upd = jax.random.split(rs.key, 5)
        a = jax.lax.cond(
            flag[0],
            lambda: algo.explore(rs.agent, ls.obs[None], k_act)[0],
            lambda: jax.random.uniform(k_act, (env.action_dim,), minval=-1.0, maxval=1.0),
        )
        env_state, next_obs, r, term, trunc = env.step(ls.env_state, a, k_env)
        done = jnp.logical_or(term, jnp.logical_and(trunc, truncation_as_terminal))
        tr = Transition(ls.obs, a, r, next_obs, done.astype(jnp.float32))
        rs = rs.replace(replay=replay_lib.add(rs.replay, tr), key=key, env_step=rs.env_step + 1)
        rs = jax.lax.cond(flag[1], lambda r_: update_step(algo, r_, k_upd), lambda r_: r_, rs)
        end = jnp.logical_or(term, trunc)
        reset_state, reset_obs = env.reset(k_reset)
        sel = lambda x, y: jax.tree.map(lambda p, q: jnp.where(end, p, q), x, y)  # noqa: E731
        ep_return = ls.ep_return + r
        return JaxLoopState(
            runner=rs,
            env_state=sel(reset_state, env_state),
            obs=sel(reset_obs, next_obs),
            ep_return=jnp.where(end, 0.0, ep_return),
            ep_len=jnp.where(end, 0, ls.ep_len + 1),
            done_return_sum=ls.done_return_sum + jnp.where(end, ep_return, 0.0),
            done_count=ls.done_count + end.astype(jnp.int32),
        ), None

    ls, _ = jax.lax.scan(body, ls, flags)
    return ls


def jax_evaluate(algo: Algorithm, env: JaxEnv, agent_state: Any, key: jax.Array, num_episodes: int) -> jax.Array:
    """Returns of num_episodes episodes run in parallel with algo.act (scan of max_episode_steps). Pure; jit it."""
    k_reset, k_run = jax.random.split(key)
    env_state, obs = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))

    def body(carry, k):
        env_state, obs, ret, alive = carry
        k_act, k_env = jax.random.split(k)
        a = algo.act(agent_state, obs, k_act)
        env_state, obs, r, term, trunc = jax.vmap(env.step)(env_state, a, jax.random.split(k_env, num_episodes))
        ret = ret + r * alive
        alive = alive * (1.0 - jnp.logical_or(term, trunc).astype(jnp.float32))
        return (env_state, obs, ret, alive), None

    init = (env_state, obs, jnp.zeros(num_episodes), jnp.ones(num_episodes))
    (_, _, ret, _), _ = jax.lax.scan(body, init, jax.random.split(k_run, env.max_episode_steps))
    return ret
