"""SRPO's stages bundled, their keys, and run points (seeds x swept hyperparameters) mapped onto stage runs.

    algos = srpo.make(cfg, obs_dim, action_dim)      # SRPO(behavior, critic, policy, bc, awr): Algorithms
    states = init_states(algos, seed)                # one run's fresh states, keys as the driver derives them

A run is a point of `jaxdiff.train.sweep.grid`, e.g. {"seed": 1, "beta": 0.1}. Stages depend on different
hyperparameters — the behavior model on (seed, behavior_lr), the critic on (seed, critic_lr, tau, gamma), the
policy on all of them — so a stage trains only the distinct points of its own hyperparameters ("stage runs") and
the policy stage gathers each run's behavior model and critic by index. Sweeping beta over 3 values with 2 seeds
trains 2 behavior models, 2 critics and 6 policies, not 6 of each. Keys come from the seed alone and swept
values go into the `hparams` leaves the updates read, so run k equals the single run with its seed and values.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdiff.algorithm import Algorithm
from jaxdiff.srpo import baselines, behavior, critic, policy
from jaxdiff.srpo.config import STAGES, SRPOConfig
from jaxdiff.train.hparams import set_hparams
from jaxdiff.train.over_runs import over_runs

_STAGE_IDS = {"behavior": 0, "critic": 1, "policy": 2}
# The numeric hyperparameters that can take a list, and the stage whose state.hparams holds each.
SWEEPABLE = {"behavior_lr": "behavior", "critic_lr": "critic", "tau": "critic", "gamma": "critic",
             "beta": "policy", "policy_lr": "policy"}
_DEPENDS = {"behavior": ("behavior",), "critic": ("critic",), "policy": STAGES}  # stages whose values a stage uses


class SRPO(NamedTuple):
    """The Algorithms of SRPO's three stages and the two extraction baselines sharing the policy network."""

    behavior: Algorithm  # init(key)
    critic: Algorithm  # init(key)
    policy: Algorithm  # init(key, behavior_state, critic_state)
    bc: Algorithm  # init(key, behavior_state, critic_state)
    awr: Algorithm  # init(key, behavior_state, critic_state)

    def stage(self, name: str) -> Algorithm:
        """The Algorithm of a stage name ("behavior", "critic", "policy")."""
        return getattr(self, name)


def make(cfg: SRPOConfig, obs_dim: int, action_dim: int, awr_temperature: float = 3.0) -> SRPO:
    """Build every stage's Algorithm with the sizes bound (nothing is jitted)."""
    return SRPO(behavior=behavior.make(cfg, obs_dim, action_dim), critic=critic.make(cfg, obs_dim, action_dim),
                policy=policy.make(cfg, obs_dim, action_dim), bc=baselines.make_bc(cfg, obs_dim, action_dim),
                awr=baselines.make_awr(cfg, obs_dim, action_dim, awr_temperature))


def stage_keys(seed: int, stage: str) -> tuple[jax.Array, jax.Array]:
    """(init key, train key) of a stage; independent across stages, so (a) and (b) do not depend on each other."""
    k = jax.random.fold_in(jax.random.PRNGKey(seed), _STAGE_IDS[stage])
    return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)


def init_states(algos: SRPO, seed: int, upto: str = "policy") -> dict:
    """One run's fresh states of all stages up to `upto` (the policy built from the fresh behavior / critic)."""
    out = {s: algos.stage(s).init(stage_keys(seed, s)[0]) for s in ("behavior", "critic")}
    if upto == "policy":
        out["policy"] = algos.policy.init(stage_keys(seed, "policy")[0], out["behavior"], out["critic"])
    return out


# ------------------------------------------------------------------------------------------------ run points
def swept_names(points: list[dict]) -> list[str]:
    """The swept hyperparameter names of a list of run points (all but "seed")."""
    return [k for k in points[0] if k != "seed"]


def check_points(points: list[dict], cfg: SRPOConfig) -> list[dict]:
    """The points with int seeds and float values; clear ValueErrors for points that cannot train together."""
    if not points:
        raise ValueError("no runs given")
    names = list(points[0])
    if "seed" not in names or any(list(p) != names for p in points):
        raise ValueError(f"every run point needs a seed and the same swept names, got {points}")
    bad = [n for n in names if n != "seed" and n not in SWEEPABLE]
    if bad:
        raise ValueError(f"cannot sweep {', '.join(bad)} in one vmapped SRPO run: only {', '.join(SWEEPABLE)} are "
                         f"array leaves of the train states; sizes and other settings are compiled in, so give one "
                         f"value and launch one process per value")
    seen = set()
    for p in points:
        if int(p["seed"]) != p["seed"]:
            raise ValueError(f"seeds must be integers, got {p['seed']!r}")
        for n in names[1:]:
            if not math.isfinite(p[n]):
                raise ValueError(f"{n}={p[n]} is not a finite number")
        cfg.replace(**{n: p[n] for n in names[1:]})  # SRPOConfig's own checks (e.g. 0 < tau < 1)
        key = tuple(sorted(p.items()))
        if key in seen:
            raise ValueError(f"run {p} appears twice: give each swept value once")
        seen.add(key)
    return [{k: (int(v) if k == "seed" else float(v)) for k, v in p.items()} for p in points]


def stage_points(points: list[dict], stage: str) -> tuple[list[dict], list[int]]:
    """(the distinct points of the stage's own hyperparameters, index of each run's stage run).

    E.g. beta swept over 3 values with 2 seeds: the behavior stage has 2 runs ({"seed": s}) and index
    [0, 1, 0, 1, 0, 1]; the policy stage has all 6 runs and index [0, ..., 5].
    """
    keep = [n for n in points[0] if n == "seed" or SWEEPABLE.get(n) in _DEPENDS[stage]]
    out: list[dict] = []
    where: dict[tuple, int] = {}
    index = []
    for p in points:
        sub = {n: p[n] for n in keep}
        key = tuple(sub.items())
        if key not in where:
            where[key] = len(out)
            out.append(sub)
        index.append(where[key])
    return out, index


def stage_keys_of(points: list[dict], stage: str) -> tuple[jax.Array, jax.Array]:
    """Stacked (init keys, train keys) of a stage's runs: each run's keys from its seed, as a single run's."""
    ks = [stage_keys(int(p["seed"]), stage) for p in points]
    return jnp.stack([k[0] for k in ks]), jnp.stack([k[1] for k in ks])


def point_values(points: list[dict], stage: str) -> dict[str, jax.Array]:
    """{name: (runs,) float32} of the swept values a stage's state holds, for jaxdiff.train.hparams.set_hparams."""
    return {n: jnp.asarray([p[n] for p in points], jnp.float32) for n in swept_names(points)
            if SWEEPABLE.get(n) == stage}


def gather(tree: Any, index: list[int]) -> Any:
    """Runs `index` of a stacked tree (e.g. each policy run's behavior model)."""
    idx = jnp.asarray(index, jnp.int32)
    return jax.tree.map(lambda x: x[idx], tree)


# ------------------------------------------------------------------------------------------------ stacked inits
def init_runs(algos: SRPO, stage: str, points: list[dict], init_keys: jax.Array | None = None,
              behavior_states: Any = None, critic_states: Any = None) -> Any:
    """Fresh states of a stage's runs stacked on axis 0, swept values set in their hparams. One run is computed
    without vmap (over_runs), so it equals `algos.stage(stage).init(key)` bit for bit. init_keys: default
    stage_keys_of(points, stage)[0] (pass them as a jit argument, not a constant XLA might fold). The policy stage
    takes each run's frozen behavior model and critic, stacked on the same axis (picked with `gather`). Pure."""
    if init_keys is None:
        init_keys, _ = stage_keys_of(points, stage)
    init = over_runs(algos.stage(stage).init, len(points))
    states = init(init_keys, behavior_states, critic_states) if stage == "policy" else init(init_keys)
    return set_hparams(states, point_values(points, stage))


def init_all(algos: SRPO, points: list[dict]) -> dict:
    """Fresh stacked states of every stage for the run points, the policy built from the fresh behavior / critic.
    Run it under jax.eval_shape for restore targets (shapes only, no compute)."""
    out = {s: init_runs(algos, s, stage_points(points, s)[0]) for s in ("behavior", "critic")}
    pol = stage_points(points, "policy")[0]
    out["policy"] = init_runs(algos, "policy", pol, None, gather(out["behavior"], stage_points(pol, "behavior")[1]),
                              gather(out["critic"], stage_points(pol, "critic")[1]))
    return out
