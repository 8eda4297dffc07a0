"""Datasets of an --env value, and the evaluation records of deterministic policies (bandit or gymnasium).

Evaluation scores n runs at once: `evaluate_runs(act, n, dataset, episodes, seed)` with a host function
act(obs (n, B, obs_dim)) -> actions (n, B, action_dim). Gym: all runs' episodes step in one vector env, rows
[k E, (k+1) E) belonging to run k, each run on the episode seeds a single run uses (seed + i).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from jaxdiff.data import bandits
from jaxdiff.data.minari_data import OfflineDataset, eval_env_id, load_minari, resolve_name
from jaxdiff.srpo.config import SRPOConfig, make_config


def is_bandit(env: str) -> bool:
    """Whether --env names a built-in toy bandit."""
    return env.startswith("bandit-")


def task_for(env: str) -> str | None:
    """Preset key of an --env value (no data is read)."""
    if is_bandit(env):
        return f"bandit-{bandits.get(env).name}"
    return resolve_name(env)[0]


def load_dataset(env: str, ref_min_score: float | None = None, ref_max_score: float | None = None) -> OfflineDataset:
    """A toy bandit (bandit-<name>) or a Minari dataset / short name, as an OfflineDataset."""
    if is_bandit(env):
        ds = bandits.make_dataset(env)
        if (ref_min_score is None) != (ref_max_score is None):
            raise ValueError("give both --ref_min_score and --ref_max_score, or neither")
        if ref_min_score is not None:
            ds.ref_min_score, ds.ref_max_score = float(ref_min_score), float(ref_max_score)
        return ds
    return load_minari(env, ref_min_score, ref_max_score)


def configure(env: str, **overrides) -> SRPOConfig:
    """SRPOConfig for an --env: defaults <- its task preset <- overrides (None = keep)."""
    return make_config(task_for(env), **overrides)


def evaluate_runs(act: Callable[[np.ndarray], np.ndarray], n: int, dataset: OfflineDataset, episodes: int,
                  seed: int) -> list[dict]:
    """One evaluation record per run: the known reward for bandits, vectorised gymnasium rollouts otherwise."""
    if dataset.kind == "bandit":
        actions = act(np.zeros((n, 1, dataset.obs_dim), np.float32))[:, 0]
        return [bandit_record(a, dataset) for a in actions]
    from jaxdiff.envs.evaluate import evaluate_policy

    obs_dim, E = dataset.obs_dim, episodes

    def act_fn(obs, step):
        return act(np.asarray(obs, np.float32).reshape(n, E, obs_dim)).reshape(n * E, -1)

    res = evaluate_policy(eval_env_id(dataset), act_fn, num_episodes=n * E,
                          seeds=[seed + j for _ in range(n) for j in range(E)])
    ret, lens = res["returns"].reshape(n, E), res["lengths"].reshape(n, E)
    return [returns_record(ret[k], lens[k], dataset) for k in range(n)]


def bandit_record(a: np.ndarray, dataset: OfflineDataset) -> dict:
    """Evaluation record of a bandit action (the reward is known, so one 'episode')."""
    r = float(dataset.bandit.reward(a[None])[0])
    mass = float(bandits.support_mass(a, dataset.data.action[:20_000])[0])
    out = {"mean_return": r, "std_return": 0.0, "episodes": 1, "returns": [r], "action": np.asarray(a).tolist(),
           "support_mass": mass, "in_support": mass >= bandits.SUPPORT_THRESHOLD}
    if not out["in_support"]:
        out["note"] = (f"the final action lies outside the data's support (only {mass:.2%} of dataset actions within "
                       f"0.1); the score extrapolates the reward beyond the data")
    return _add_scores(out, dataset)


def returns_record(returns: np.ndarray, lengths: np.ndarray, dataset: OfflineDataset) -> dict:
    """Evaluation record of a batch of episode returns and lengths."""
    out = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "episodes": len(returns),
           "returns": np.asarray(returns).tolist(), "lengths": np.asarray(lengths).tolist()}
    return _add_scores(out, dataset)


def _add_scores(out: dict, dataset: OfflineDataset) -> dict:
    out["normalized_score"] = normalized_score(out["mean_return"], dataset)
    if out["normalized_score"] is not None:
        out["normalized_scores"] = [normalized_score(r, dataset) for r in out["returns"]]
        out["normalized_score_std"] = float(np.std(out["normalized_scores"]))
    return out


def normalized_score(ret: float, dataset: OfflineDataset) -> float | None:
    """100 (return - ref_min) / (ref_max - ref_min), or None when the dataset has no reference scores."""
    if dataset.ref_min_score is None or dataset.ref_max_score is None:
        return None
    return 100.0 * (ret - dataset.ref_min_score) / (dataset.ref_max_score - dataset.ref_min_score)
