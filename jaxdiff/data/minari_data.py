"""Minari datasets -> flat transition arrays, with D4RL-style short names, SRPO's reward transforms and checks.

Rules (SRPO spec):
  * A transition whose next observation is missing is dropped. Minari stores T+1 observations per episode, so
    normally nothing is dropped; an episode stored with only T observations loses its last transition.
  * done = termination only; time-outs (truncations) bootstrap.
  * Rewards: antmaze r - 1; everything else (locomotion) r * 1000 / (R_max - R_min), where R are the
    undiscounted returns of the whole episodes in the dataset.
  * No state or action normalisation. Actions are mapped from the dataset's action box to [-1, 1] (the
    policy's tanh range); for every MuJoCo / antmaze task the box is already [-1, 1], so this is the identity.
  * Dict observations (antmaze: achieved_goal, desired_goal, observation) are flattened in the space's key
    order, the order gymnasium's FlattenObservation uses for the evaluation env.

Short names (D4RL style) and the Minari ids they load:
  <env>-medium / -expert / -simple      mujoco/<env>/<quality>-v0   env in halfcheetah, hopper, walker2d, ant
  <env>-medium-expert                   mujoco/<env>/medium-v0 + mujoco/<env>/expert-v0, concatenated (this is
                                        how D4RL built medium-expert; the policies differ from D4RL's)
  antmaze-<maze>                        D4RL/antmaze/<maze>-v1, maze in umaze, umaze-diverse, medium-play,
                                        medium-diverse, large-play, large-diverse
  Not on Minari: <env>-medium-replay, <env>-random, <env>-full-replay -> the error names the local command
  (experiments/collect_dataset.py --env=Hopper-v5 --quality=medium-replay -> jaxdiff/hopper/medium-replay-v0).
Any Minari id with a '/' is accepted as is (e.g. jaxdiff/hopper/medium-v0 from experiments/collect_dataset.py).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import warnings
from typing import Any, Sequence

import numpy as np

from jaxdiff.data.replay import Transition

LOCOMOTION_ENVS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "ant": "Ant-v5"}
MINARI_QUALITIES = ("medium", "expert", "simple")
ANTMAZES = ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
NOT_ON_MINARI = ("medium-replay", "random", "full-replay")


def _short_names() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for env in LOCOMOTION_ENVS:
        for q in MINARI_QUALITIES:
            out[f"{env}-{q}"] = (f"mujoco/{env}/{q}-v0",)
        out[f"{env}-medium-expert"] = (f"mujoco/{env}/medium-v0", f"mujoco/{env}/expert-v0")
    for maze in ANTMAZES:
        out[f"antmaze-{maze}"] = (f"D4RL/antmaze/{maze}-v1",)
    return out


SHORT_NAMES: dict[str, tuple[str, ...]] = _short_names()


@dataclasses.dataclass
class OfflineDataset:
    """A dataset ready for SRPO: flat float32 numpy transitions plus what evaluation needs."""

    name: str  # what the user asked for
    task: str | None  # preset key, e.g. 'hopper-medium', 'antmaze-umaze', 'bandit-8gaussians'
    dataset_ids: tuple[str, ...]
    data: Transition  # numpy arrays, leading axis = transitions
    obs_dim: int
    action_dim: int
    kind: str  # 'locomotion' | 'antmaze' | 'bandit'
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    reward_info: dict = dataclasses.field(default_factory=dict)
    stats: dict = dataclasses.field(default_factory=dict)
    eval_env_spec: Any = None  # gymnasium EnvSpec for evaluation (None for bandits)
    bandit: Any = None  # jaxdiff.data.bandits.Bandit for toy problems

    def describe(self) -> dict:
        return {"name": self.name, "task": self.task, "dataset_ids": list(self.dataset_ids), "kind": self.kind,
                "obs_dim": self.obs_dim, "action_dim": self.action_dim, "ref_min_score": self.ref_min_score,
                "ref_max_score": self.ref_max_score, "reward": self.reward_info, **self.stats}


def resolve_name(env: str) -> tuple[str | None, tuple[str, ...]]:
    """(task key for presets, Minari ids) for a short name or a Minari id; ValueError naming the choices."""
    env = env.strip()
    if "/" in env:
        from minari.dataset.minari_dataset import parse_dataset_id

        try:
            parse_dataset_id(env)
        except (ValueError, TypeError):
            raise ValueError(f"malformed Minari dataset id {env!r}: use namespace/name-vN, e.g. mujoco/hopper/medium-v0") from None
        parts = env.split("/")
        task = None
        if len(parts) >= 3:
            quality = re.sub(r"-v\d+$", "", parts[-1])
            task = f"{parts[-2]}-{quality}"
        return task, (env,)
    short = re.sub(r"-v\d+$", "", env)
    if short in SHORT_NAMES:
        return short, SHORT_NAMES[short]
    for suffix in NOT_ON_MINARI:
        if short.endswith("-" + suffix) and short[: -len(suffix) - 1] in LOCOMOTION_ENVS:
            base = short[: -len(suffix) - 1]
            raise ValueError(
                f"{short!r} (D4RL) has no Minari equivalent (Minari's mujoco datasets are medium, expert and simple). "
                f"Collect it locally with `python experiments/collect_dataset.py --env={LOCOMOTION_ENVS[base]} "
                f"--quality={suffix}` and pass --env=jaxdiff/{base}/{suffix}-v0")
    raise ValueError(
        f"unknown --env {env!r}: use a Minari id (namespace/name-vN, e.g. mujoco/hopper/medium-v0), a short name "
        f"({', '.join(sorted(SHORT_NAMES)[:6])}, ... see jaxdiff.data.minari_data.SHORT_NAMES) or a toy bandit "
        f"(bandit-8gaussians, ...)")


def _missing_message(dataset_id: str) -> str:
    from minari.storage.datasets_root_dir import get_dataset_path

    root = os.environ.get("MINARI_DATASETS_PATH", os.path.join("~", ".minari", "datasets"))
    msg = (f"Minari dataset {dataset_id!r} not found under {root} (set MINARI_DATASETS_PATH to change it; looked in "
           f"{get_dataset_path(dataset_id)}). Download it with `minari download {dataset_id}` (needs internet)")
    parts = dataset_id.split("/")
    if len(parts) == 3 and parts[1] in LOCOMOTION_ENVS:
        quality = re.sub(r"-v\d+$", "", parts[2])
        msg += (f", or build one locally with `python experiments/collect_dataset.py --env={LOCOMOTION_ENVS[parts[1]]} "
                f"--quality={quality}` and pass --env=jaxdiff/{parts[1]}/{quality}-v0")
    return msg + "."


def _open(dataset_id: str):
    import minari

    try:
        return minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError:
        raise FileNotFoundError(_missing_message(dataset_id)) from None
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(f"cannot read Minari dataset {dataset_id!r}: {e}") from None


def _flatten_obs(obs: Any, space: Any) -> np.ndarray:
    """Episode observations (array or dict of arrays, leading time axis) -> (T, flat_dim) float64."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        if not isinstance(obs, dict):
            raise ValueError(f"observations should be a dict for space {space}, got {type(obs).__name__}")
        return np.concatenate([_flatten_obs(obs[k], s) for k, s in space.spaces.items()], axis=-1)
    arr = np.asarray(obs, np.float64)
    return arr.reshape(arr.shape[0], -1)


def _flat_dim(space: Any) -> int:
    import gymnasium as gym

    return int(gym.spaces.flatdim(space))


def _check_finite(name: str, dataset_id: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad.reshape(arr.shape[0], -1).any(axis=1))[0, 0])
        raise ValueError(f"dataset {dataset_id!r} has {int(bad.sum())} NaN/inf values in {name} (first at transition "
                         f"{first}); clean or regenerate the dataset")


def _env_spec(ds: Any):
    return getattr(ds, "_eval_env_spec", None) or ds.env_spec


def _check_against_env(ds: Any, dataset_id: str, obs_dim: int, action_dim: int) -> None:
    spec = _env_spec(ds)
    if spec is None:
        return
    import gymnasium as gym

    try:
        env = gym.make(spec)
    except Exception as e:  # noqa: BLE001 - missing optional env packages (gymnasium-robotics), ...
        warnings.warn(f"cannot make the env {spec.id!r} of dataset {dataset_id!r} to check shapes ({e}); evaluation "
                      f"will need it")
        return
    env_obs, env_act = _flat_dim(env.observation_space), _flat_dim(env.action_space)
    env.close()
    if (env_obs, env_act) != (obs_dim, action_dim):
        raise ValueError(f"dataset {dataset_id!r} has obs/action dims ({obs_dim}, {action_dim}) but its env "
                         f"{spec.id!r} has ({env_obs}, {env_act}); the dataset does not belong to this env - "
                         f"regenerate it or pick the matching env")


def _episodes(ds: Any, dataset_id: str, obs_space: Any, act_dim: int):
    """Yield per-episode (obs, next_obs, actions, rewards, terminations, full_return, dropped)."""
    for ep in ds.iterate_episodes():
        T = len(ep.rewards)
        obs = _flatten_obs(ep.observations, obs_space)
        act = np.asarray(ep.actions, np.float64).reshape(T, -1)
        if act.shape[1] != act_dim:
            raise ValueError(f"dataset {dataset_id!r} episode {ep.id}: actions have dim {act.shape[1]}, the action "
                             f"space says {act_dim}")
        rew = np.asarray(ep.rewards, np.float64).reshape(T)
        term = np.asarray(ep.terminations, bool).reshape(T)
        if len(obs) == T + 1:
            n = T
        elif len(obs) == T:  # no next observation for the last step: drop it
            n = T - 1
        else:
            raise ValueError(f"dataset {dataset_id!r} episode {ep.id}: {len(obs)} observations for {T} steps")
        yield obs[:n], obs[1:n + 1], act[:n], rew[:n], term[:n], float(rew.sum()), T - n


def load_minari(env: str, ref_min_score: float | None = None, ref_max_score: float | None = None,
                check_env: bool = True) -> OfflineDataset:
    """Load a Minari dataset (or a short name's datasets, concatenated) from local storage into an OfflineDataset."""
    task, ids = resolve_name(env)
    kind = "antmaze" if (task or "").startswith("antmaze") or any("antmaze" in i.lower() for i in ids) else "locomotion"
    chunks: list[tuple] = []
    returns: list[float] = []
    dropped = episodes = 0
    obs_dim = action_dim = None
    low = high = None
    spec = None
    meta_ref = (None, None)
    for dataset_id in ids:
        ds = _open(dataset_id)
        obs_space, act_space = ds.observation_space, ds.action_space
        import gymnasium as gym

        if not isinstance(act_space, gym.spaces.Box):
            raise ValueError(f"dataset {dataset_id!r}: SRPO needs a continuous (Box) action space, got {act_space}")
        if not (np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high))):
            raise ValueError(f"dataset {dataset_id!r}: the action box must be bounded for a tanh policy, got {act_space}")
        o_dim, a_dim = _flat_dim(obs_space), _flat_dim(act_space)
        if obs_dim is None:
            obs_dim, action_dim = o_dim, a_dim
            low, high = act_space.low.reshape(-1).astype(np.float64), act_space.high.reshape(-1).astype(np.float64)
            spec = _env_spec(ds)
        elif (o_dim, a_dim) != (obs_dim, action_dim):
            raise ValueError(f"datasets {ids} have different shapes and cannot be concatenated")
        if check_env:
            _check_against_env(ds, dataset_id, o_dim, a_dim)
        md = ds.storage.metadata
        if meta_ref == (None, None) and md.get("ref_min_score") is not None and md.get("ref_max_score") is not None:
            meta_ref = (float(md["ref_min_score"]), float(md["ref_max_score"]))
        for o, o2, a, r, d, ret, drop in _episodes(ds, dataset_id, obs_space, a_dim):
            if o.shape[1] != o_dim:
                raise ValueError(f"dataset {dataset_id!r}: observations have dim {o.shape[1]}, its observation space "
                                 f"says {o_dim}; regenerate the dataset")
            chunks.append((o, a, r, o2, d))
            returns.append(ret)
            dropped += drop
            episodes += 1
    if not chunks or sum(len(c[2]) for c in chunks) == 0:
        raise ValueError(f"dataset(s) {ids} contain no usable transitions")
    obs, act, rew, nobs, done = (np.concatenate([c[i] for c in chunks]) for i in range(5))
    label = "+".join(ids)
    for name, arr in (("observations", obs), ("next observations", nobs), ("actions", act), ("rewards", rew)):
        _check_finite(name, label, arr)
    act = 2.0 * (act - low) / (high - low) - 1.0  # identity for [-1, 1] boxes
    if kind == "antmaze":
        rew_t = rew - 1.0
        reward_info = {"transform": "r - 1"}
    else:
        r_min, r_max = float(np.min(returns)), float(np.max(returns))
        if r_max - r_min <= 1e-8:
            warnings.warn(f"all episodes of {label} have the same return {r_max}; rewards are left unscaled")
            scale = 1.0
        else:
            scale = 1000.0 / (r_max - r_min)
        rew_t = rew * scale
        reward_info = {"transform": "r * 1000 / (R_max - R_min)", "R_min": r_min, "R_max": r_max, "scale": scale}
    ref_min = ref_min_score if ref_min_score is not None else meta_ref[0]
    ref_max = ref_max_score if ref_max_score is not None else meta_ref[1]
    if (ref_min is None) != (ref_max is None):
        raise ValueError("give both --ref_min_score and --ref_max_score, or neither")
    if ref_min is not None and ref_max is not None and ref_max == ref_min:
        raise ValueError(f"ref_max_score == ref_min_score == {ref_min}: normalised scores would divide by zero")
    f32 = lambda x: np.ascontiguousarray(x, np.float32)  # noqa: E731
    data = Transition(obs=f32(obs), action=f32(act), reward=f32(rew_t), next_obs=f32(nobs), done=f32(done))
    return OfflineDataset(
        name=env, task=task, dataset_ids=tuple(ids), data=data, obs_dim=int(obs_dim), action_dim=int(action_dim),
        kind=kind, ref_min_score=ref_min, ref_max_score=ref_max, reward_info=reward_info,
        stats={"episodes": episodes, "transitions": int(len(rew)), "dropped": int(dropped),
               "terminations": int(done.sum())},
        eval_env_spec=spec,
    )


def _make_flat_env(spec_json: str, **kwargs):
    import gymnasium as gym
    from gymnasium.envs.registration import EnvSpec

    env = gym.make(EnvSpec.from_json(spec_json), **kwargs)
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = gym.wrappers.FlattenObservation(env)
    return env


def eval_env_id(dataset: OfflineDataset) -> str:
    """A gymnasium id for `dataset`'s evaluation env (its exact EnvSpec, Dict observations flattened), registered
    on first use so that `jaxdiff.envs.evaluate.evaluate_policy(env_id, ...)` can build vector copies of it."""
    import functools

    import gymnasium as gym

    spec = dataset.eval_env_spec
    if spec is None:
        raise ValueError(f"dataset {dataset.name!r} records no environment, so it cannot be evaluated; recreate it "
                         f"with an env (minari DataCollector) or pass --eval_episodes=0")
    try:
        spec_json = spec.to_json()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"the env spec of {dataset.name!r} is not serialisable ({e}); cannot evaluate") from None
    digest = hashlib.sha1(spec_json.encode()).hexdigest()[:10]
    env_id = f"jaxdiff_eval/{re.sub(r'[^A-Za-z0-9_]', '_', spec.name)}_{digest}-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=functools.partial(_make_flat_env, spec_json))
    try:
        gym.make(env_id).close()
    except Exception as e:  # noqa: BLE001
        hint = " (antmaze needs `pip install gymnasium-robotics`)" if "AntMaze" in spec.id else ""
        raise ValueError(f"cannot make evaluation env {spec.id!r}{hint}: {e}") from None
    return env_id


def list_short_names() -> Sequence[str]:
    return sorted(SHORT_NAMES)
