"""Vectorised evaluation of a policy on a gymnasium environment (host loop; the policy call is jitted).

Each of the `num_episodes` copies of the env runs exactly one episode with seed `seed + i`, so the evaluation
episodes are fixed by `seed` alone and independent of the training seed.
"""
from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np


def scale_action(a: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map a normalised action in [-1, 1] to the box [low, high]."""
    return low + (np.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


def unscale_action(a: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action in [low, high] to [-1, 1]."""
    return 2.0 * (a - low) / (high - low) - 1.0


def make_env(env_id: str, **kwargs) -> gym.Env:
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as e:  # unknown id, missing mujoco, ...
        raise ValueError(f"cannot make gymnasium env {env_id!r}: {e}") from None


def evaluate_policy(
    env_id: str,
    act_fn: Callable[[np.ndarray, int], np.ndarray],
    num_episodes: int = 10,
    seed: int = 10_000,
    max_episode_steps: int | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Run `num_episodes` episodes in parallel; act_fn(obs_batch, step) -> actions in [-1, 1].

    seeds: one reset seed per episode (default seed + i). Multi-run evaluation passes the same eval seeds once per
    run, so every run is scored on the episodes a single run would be.
    Returns {"returns": (num_episodes,) array, "lengths": ..., "mean": float, "std": float}.
    """
    if seeds is not None and len(seeds) != num_episodes:
        raise ValueError(f"{len(seeds)} seeds for {num_episodes} episodes")
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id, **kwargs) for _ in range(num_episodes)])
    low, high = envs.single_action_space.low, envs.single_action_space.high
    obs, _ = envs.reset(seed=list(seeds) if seeds is not None else [seed + i for i in range(num_episodes)])
    returns = np.zeros(num_episodes)
    lengths = np.zeros(num_episodes, dtype=np.int64)
    alive = np.ones(num_episodes, dtype=bool)
    step = 0
    while alive.any():
        a = np.asarray(act_fn(np.asarray(obs, np.float32), step))
        obs, r, term, trunc, _ = envs.step(scale_action(a, low, high))
        returns += r * alive
        lengths += alive
        alive &= ~(term | trunc)
        step += 1
    envs.close()
    return {"returns": returns, "lengths": lengths, "mean": float(returns.mean()), "std": float(returns.std())}
