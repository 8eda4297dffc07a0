"""Many SRPO runs on a leading axis: which runs each stage trains, stacked inits, swept leaves, vmapped chunks.

A run is a point of `jaxdiff.train.sweep.grid`, e.g. {"seed": 1, "beta": 0.1}. Stages depend on different
hyperparameters — the behavior model on (seed, behavior_lr), the critic on (seed, critic_lr, tau, gamma), the
policy on all of them — so a stage trains only the distinct points of its own hyperparameters ("stage runs") and
the policy stage gathers each run's behavior model and critic by index. Sweeping beta over 3 values with 2 seeds
trains 2 behavior models, 2 critics and 6 policies, not 6 of each.

Run k is the single run with the same seed and hyperparameters: keys come from the seed alone, exactly as
`pipeline.stage_keys` derives them, and swept values are written into the array leaves the updates read
(`PolicyState.beta`, `CriticState.tau` / `gamma`, the optax `inject_hyperparams` learning rates), never into the
static config. Everything here is pure and unjitted; `jaxdiff.srpo.multi` is the host driver.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff.srpo import behavior, critic, policy, train
from jaxdiff.srpo.config import SRPOConfig
from jaxdiff.srpo.pipeline import STAGES, stage_keys

# The numeric hyperparameters that can take a list, and the stage whose state holds each.
SWEEPABLE = {"behavior_lr": "behavior", "critic_lr": "critic", "tau": "critic", "gamma": "critic",
             "beta": "policy", "policy_lr": "policy"}
_DEPENDS = {"behavior": ("behavior",), "critic": ("critic",), "policy": STAGES}  # stages whose values a stage uses
_CHUNKS = {"behavior": train.behavior_chunk, "critic": train.critic_chunk, "policy": train.policy_chunk}


# ------------------------------------------------------------------------------------------------ run points
def swept_names(points: list[dict]) -> list[str]:
    return [k for k in points[0] if k != "seed"]


def check_points(points: list[dict], cfg: SRPOConfig) -> None:
    """Clear ValueErrors for run points that cannot be trained together in one vmapped run."""
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


# ------------------------------------------------------------------------------------------------ swept leaves
def _chained(opt_state: Any) -> bool:
    """The policy's optimizer is chain(inject_hyperparams(adam), schedule): a plain tuple of two states (the
    inject_hyperparams state is itself a NamedTuple, so test for its `hyperparams` field, not for tuple)."""
    return not hasattr(opt_state, "hyperparams")


def _lr_leaf(opt_state: Any) -> Any:
    """The optax inject_hyperparams state inside an optimizer state."""
    return opt_state[0] if _chained(opt_state) else opt_state


def _with_lr(opt_state: Any, lr: jax.Array) -> Any:
    inner = _lr_leaf(opt_state)
    old = inner.hyperparams["learning_rate"]
    new = jnp.asarray(lr, old.dtype).reshape(old.shape)
    inner = inner._replace(hyperparams={**inner.hyperparams, "learning_rate": new})
    return (inner, *opt_state[1:]) if _chained(opt_state) else inner


def set_hparams(stage: str, state: Any, values: dict[str, Any]) -> Any:
    """A copy of a (stacked) stage state with the swept leaves set: values {name: scalar or (runs,) array}.

    Names that belong to other stages are ignored, so the same dict of run values serves every stage.
    """
    values = {n: v for n, v in values.items() if SWEEPABLE.get(n) == stage}
    for name, v in values.items():
        if name == "behavior_lr":
            state = state.replace(opt_state=_with_lr(state.opt_state, v))
        elif name == "critic_lr":  # one learning rate for Q and V, as in SRPOConfig
            state = state.replace(q_opt=_with_lr(state.q_opt, v), v_opt=_with_lr(state.v_opt, v))
        elif name == "policy_lr":
            state = state.replace(opt_state=_with_lr(state.opt_state, v))
        else:  # beta, tau, gamma: plain float32 leaves
            old = getattr(state, name)
            state = state.replace(**{name: jnp.asarray(v, old.dtype).reshape(old.shape)})
    return state


def get_hparams(stage: str, state: Any) -> dict[str, jax.Array]:
    """{name: leaf} of the swept leaves a stage state holds (stacked states give arrays over runs)."""
    out = {}
    for name, st in SWEEPABLE.items():
        if st != stage:
            continue
        if name.endswith("_lr"):
            opt = state.q_opt if name == "critic_lr" else state.opt_state
            out[name] = _lr_leaf(opt).hyperparams["learning_rate"]
        else:
            out[name] = getattr(state, name)
    return out


def point_values(points: list[dict]) -> dict[str, jax.Array]:
    return {n: jnp.asarray([p[n] for p in points], jnp.float32) for n in swept_names(points)}


# ------------------------------------------------------------------------------------------------ inits and chunks
def init_stage(stage: str, init_keys: jax.Array, obs_dim: int, action_dim: int, cfg: SRPOConfig,
               behavior_state: Any = None, critic_state: Any = None) -> Any:
    """Stacked fresh states of a stage, one per init key (`stage_keys_of`), before the swept leaves are set.

    The policy stage also needs, per run, its frozen behavior model and critic: pass them stacked on the same
    axis (picked with `gather`). Jit with (0, 2, 3, 4) static; then `set_hparams(stage, states, point_values(...))`.
    """
    if stage == "behavior":
        return jax.vmap(lambda k: behavior.init(k, obs_dim, action_dim, cfg))(init_keys)
    if stage == "critic":
        return jax.vmap(lambda k: critic.init(k, obs_dim, action_dim, cfg))(init_keys)
    return jax.vmap(lambda k, b, c: policy.init(k, obs_dim, action_dim, cfg, b, c))(init_keys, behavior_state,
                                                                                   critic_state)


def gather(tree: Any, index: list[int]) -> Any:
    """Runs `index` of a stacked tree (e.g. each policy run's behavior model)."""
    idx = jnp.asarray(index, jnp.int32)
    return jax.tree.map(lambda x: x[idx], tree)


def init_all(points: list[dict], obs_dim: int, action_dim: int, cfg: SRPOConfig) -> dict:
    """Fresh stacked states of every stage, swept leaves set, the policy built from the fresh behavior/critic.

    Run it under jax.eval_shape for restore targets (shapes only, no compute).
    """
    out = {}
    for stage in ("behavior", "critic"):
        pts = stage_points(points, stage)[0]
        out[stage] = set_hparams(stage, init_stage(stage, stage_keys_of(pts, stage)[0], obs_dim, action_dim, cfg),
                                 point_values(pts))
    pol, _ = stage_points(points, "policy")
    states = init_stage("policy", stage_keys_of(pol, "policy")[0], obs_dim, action_dim, cfg,
                        gather(out["behavior"], stage_points(pol, "behavior")[1]),
                        gather(out["critic"], stage_points(pol, "critic")[1]))
    out["policy"] = set_hparams("policy", states, point_values(pol))
    return out


def multi_chunk(stage: str, states: Any, data: Any, train_keys: jax.Array, step: jax.Array, num_steps: int,
                batch_sharding: jax.sharding.Sharding | None = None) -> tuple[Any, dict]:
    """The stage's chunk vmapped over runs: run r uses fold_in(train_keys[r], step), as a single run's chunk does.

    `step` may be traced (one compiled function for every chunk). batch_sharding (behavior only) splits each
    run's minibatch over devices; see train.train_chunk.
    """
    keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(train_keys)
    if batch_sharding is not None:
        if stage != "behavior":
            raise ValueError("batch sharding is implemented for the behavior stage only")
        return jax.vmap(lambda s, k: train.behavior_chunk(s, data, k, num_steps, batch_sharding))(states, keys)
    return jax.vmap(lambda s, k: _CHUNKS[stage](s, data, k, num_steps))(states, keys)
