"""Making D4RL-style Minari datasets here: policy rollouts, replay buffer -> episodes, and the Minari writer.

Host-side code (gymnasium envs, hdf5 files); the policy passed in is usually a jitted `Algorithm.explore`.
"""
from __future__ import annotations

import os
from typing import Callable

import gymnasium as gym
import numpy as np

from jaxdiff.envs.evaluate import make_env, scale_action, unscale_action

Episode = dict  # keys: observations (T+1, o), actions (T, a), rewards (T,), terminations (T,), truncations (T,)

QUALITIES = ("random", "medium", "expert", "medium-replay", "medium-expert")


def default_dataset_id(env_id: str, quality: str) -> str:
    """'Hopper-v5', 'medium' -> 'jaxdiff/hopper/medium-v0' (the D4RL-style naming srpo_offline.py accepts)."""
    name = env_id.split("-v")[0].lower()
    return f"jaxdiff/{name}/{quality}-v0"


def rollout_episodes(
    env_id: str,
    policy: Callable[[np.ndarray], np.ndarray] | None,
    num_steps: int,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[Episode]:
    """Collect whole episodes until `num_steps` transitions; policy(obs) -> action in [-1, 1] (None = uniform).

    The last episode is cut at the budget and marked truncated, as D4RL's fixed-size datasets are.
    Stored actions are in the env's own range (Minari stores what the env received).
    """
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    rng = np.random.default_rng(seed)
    episodes: list[Episode] = []
    steps, ep_index = 0, 0
    while steps < num_steps:
        obs, _ = env.reset(seed=seed + ep_index)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done and steps < num_steps:
            act = rng.uniform(-1.0, 1.0, low.shape) if policy is None else np.asarray(policy(obs), np.float64)
            env_act = scale_action(act, low, high).astype(env.action_space.dtype)
            obs, rew, term, trunc, _ = env.step(env_act)
            steps += 1
            if progress is not None:
                progress(1)
            cut = steps >= num_steps and not (term or trunc)
            o.append(obs)
            a.append(env_act)
            r.append(rew)
            te.append(bool(term))
            tr.append(bool(trunc or cut))
            done = term or trunc
        episodes.append(_episode(o, a, r, te, tr))
        ep_index += 1
    env.close()
    return episodes


def _episode(o, a, r, te, tr) -> Episode:
    return {
        "observations": np.asarray(o, np.float32),
        "actions": np.asarray(a, np.float32),
        "rewards": np.asarray(r, np.float64),
        "terminations": np.asarray(te, bool),
        "truncations": np.asarray(tr, bool),
    }


def episodes_from_transitions(
    obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, dones: np.ndarray,
    low: np.ndarray | None = None, high: np.ndarray | None = None,
) -> list[Episode]:
    """Split a sequential replay buffer (one env, no wrap-around) back into episodes.

    An episode ends where `done` (termination) is set or where the next row does not start at this row's next_obs
    (a time-limit truncation followed by a reset). Replay actions are normalised to [-1, 1]; give the env's
    action bounds to store them in the env's range.
    """
    n = len(rewards)
    if n == 0:
        return []
    cont = np.zeros(n, bool)
    cont[:-1] = np.all(np.isclose(next_obs[:-1], obs[1:], atol=1e-6), axis=-1) & (dones[:-1] < 0.5)
    if low is not None:
        actions = scale_action(actions, low, high)
    episodes, start = [], 0
    for i in range(n):
        if not cont[i]:
            sl = slice(start, i + 1)
            term = np.zeros(i + 1 - start, bool)
            trunc = np.zeros(i + 1 - start, bool)
            if dones[i] > 0.5:
                term[-1] = True
            else:
                trunc[-1] = True
            o = np.concatenate([obs[sl], next_obs[i : i + 1]], axis=0)
            episodes.append(_episode(o, actions[sl], rewards[sl], term, trunc))
            start = i + 1
    return episodes


def episode_returns(episodes: list[Episode]) -> np.ndarray:
    return np.asarray([float(np.sum(e["rewards"])) for e in episodes])


def write_minari_dataset(
    dataset_id: str,
    env_id: str,
    episodes: list[Episode],
    ref_min_score: float | None,
    ref_max_score: float | None,
    algorithm_name: str,
    description: str,
):
    """Write episodes as a local Minari dataset (hdf5) under MINARI_DATASETS_PATH; infos are not recorded.

    Raises FileExistsError naming the fix if the id is taken. Reference scores of None are not stored (a random
    dataset made before any agent was trained has no expert return).
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    if dataset_id in minari.list_local_datasets():
        raise FileExistsError(
            f"a Minari dataset {dataset_id!r} already exists under {minari_root()}. Delete it with "
            f"`minari delete {dataset_id}`, or pick another id with --dataset_id (e.g. bump the -v suffix)."
        )
    if not episodes:
        raise ValueError("no episodes to write")
    buffers = [
        EpisodeBuffer(id=i, observations=e["observations"], actions=e["actions"], rewards=e["rewards"],
                      terminations=e["terminations"], truncations=e["truncations"], infos={})
        for i, e in enumerate(episodes)
    ]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # minari nags about optional metadata (author, permalink)
        return minari.create_dataset_from_buffers(
            dataset_id, buffers, env=gym.spec(env_id), algorithm_name=algorithm_name, description=description,
            **({} if ref_min_score is None or ref_max_score is None
               else {"ref_min_score": float(ref_min_score), "ref_max_score": float(ref_max_score)}),
            author="jaxdiff collect_dataset.py", author_email="n/a", code_permalink="jaxdiff/experiments/collect_dataset.py",
        )


def minari_root() -> str:
    return os.environ.get("MINARI_DATASETS_PATH", os.path.join(os.path.expanduser("~"), ".minari", "datasets"))


__all__ = ["QUALITIES", "default_dataset_id", "rollout_episodes", "episodes_from_transitions", "episode_returns",
           "write_minari_dataset", "unscale_action"]
