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


# ----------------------------------------------------------------------------------------------- act() input
def obs_batch(obs, obs_dim: int) -> tuple[np.ndarray, bool]:
    """(obs as a float32 (batch, obs_dim) array, whether one observation (obs_dim,) was given).

    Accepts numpy arrays, jax arrays, lists and tuples; anything else, or another shape, is a ValueError naming the
    expected shapes. Checked on the host before the jitted policy sees it: flax would otherwise report a wrong size
    as a parameter-shape error about an initializer, and broadcast extra leading dimensions silently."""
    try:
        arr = np.asarray(obs, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"act expects observations as an array of shape ({obs_dim},) or (batch, {obs_dim}); got "
                         f"{type(obs).__name__} that is not a numeric array") from None
    if arr.ndim == 1 and arr.shape[0] == obs_dim:
        return arr[None], True
    if arr.ndim == 2 and arr.shape[1] == obs_dim:
        return arr, False
    raise ValueError(f"act expects observations of shape ({obs_dim},) or (batch, {obs_dim}); got shape "
                     f"{tuple(arr.shape)}")


def checked_act(act: Callable, obs_dim: int) -> Callable:
    """act(obs, *args) that accepts one observation or a batch (see obs_batch) and returns actions of the same
    rank: (action_dim,) for one observation, (batch, action_dim) for a batch."""

    def act_checked(obs, *args):
        batch, single = obs_batch(obs, obs_dim)
        out = act(batch, *args)
        return out[0] if single else out

    act_checked.obs_dim = obs_dim
    return act_checked
