"""One save / load for the state of any jaxdiff algorithm (SRPO's stages, QVPO, SAC, TD3).

    jaxdiff.save("runs/mine", algo, state)                 # a state trained in your own jit / vmap / scan code
    act = jaxdiff.load_policy("runs/mine")                 # act(obs, key=None) -> actions in [-1, 1]
    algo, state, meta = jaxdiff.load_state("runs/mine")    # the Algorithm rebuilt from its saved config, and the state

A directory holds orbax steps of the state (jaxdiff.train.checkpoint: a completion mark per step, damaged steps
skipped) and, beside each, JSON naming the algorithm, its config, obs/action sizes and, for stacked runs, the run
points (seed and swept values per run). Every training driver writes its final agent / policy state this way under
<workdir>/policy, so `load_policy(workdir)` works on a training run's workdir as on a directory you saved yourself.
The algorithm is rebuilt from `REGISTRY` by name, so loading needs no code from the run that saved it.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.act_jit import jit_act
from jaxdiff.algorithm import Algorithm
from jaxdiff.train.checkpoint import Checkpointer

FORMAT = "jaxdiff.state/1"
POLICY_SUBDIR = "policy"
# name -> build(config dict, obs_dim, action_dim) -> (Algorithm, template(key) -> a state of the right structure)
Builder = Callable[[dict, int, int], tuple[Algorithm, Callable[[jax.Array], Any]]]


def _online(module_name: str, config_cls_name: str) -> Builder:
    def build(config: dict, obs_dim: int, action_dim: int):
        import importlib

        mod = importlib.import_module(module_name)
        algo = mod.make(_from_dict(getattr(mod, config_cls_name), config), obs_dim, action_dim)
        return algo, algo.init

    return build


def _srpo(stage: str) -> Builder:
    def build(config: dict, obs_dim: int, action_dim: int):
        from jaxdiff import srpo

        algos = srpo.make(srpo.SRPOConfig.from_dict(config), obs_dim, action_dim)
        algo = getattr(algos, stage)
        if stage == "policy":  # its state carries the frozen behavior model and critic
            return algo, lambda k: algo.init(k, algos.behavior.init(k), algos.critic.init(k))
        return algo, algo.init

    return build


REGISTRY: dict[str, Builder] = {
    "qvpo": _online("jaxdiff.qvpo", "QVPOConfig"),
    "sac": _online("jaxdiff.baselines.sac", "SACConfig"),
    "td3": _online("jaxdiff.baselines.td3", "TD3Config"),
    "srpo_behavior": _srpo("behavior"),
    "srpo_critic": _srpo("critic"),
    "srpo_policy": _srpo("policy"),
}


def _from_dict(cls: type, d: dict) -> Any:
    """cls(**d) keeping only cls's fields, with lists turned back into tuples (JSON has no tuples)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def save(directory: str, algo: Algorithm, state: Any, *, points: list[dict] | None = None, step: int = 0,
         extra: dict | None = None) -> str:
    """Write `state` of `algo` as step `step` of `directory`; returns the directory.

    points: for a state of stacked runs (leading axis = runs), one dict per run with its "seed" and swept values,
    so load_state / load_policy can pick a run by seed=... or run=k. extra: more JSON kept beside the state.
    """
    if algo.name not in REGISTRY:
        raise ValueError(f"cannot save an algorithm named {algo.name!r}: load_state rebuilds algorithms by name from "
                         f"jaxdiff.saving.REGISTRY ({', '.join(sorted(REGISTRY))}); add an entry for it first")
    meta = {"format": FORMAT, "algorithm": algo.name, "config": algo.config.to_dict(), "obs_dim": int(algo.obs_dim),
            "action_dim": int(algo.action_dim), "points": points, **(extra or {})}
    if points is not None:
        _check_stacked(state, points)
    ckpt = Checkpointer(os.path.abspath(directory))
    try:
        ckpt.save(int(step), state, meta)
    finally:
        ckpt.close()
    return directory


def _saved_dir(directory: str) -> str:
    """`directory` itself if it holds saved states, else its `policy` subdirectory (a training workdir)."""
    for d in (directory, os.path.join(directory, POLICY_SUBDIR)):
        ckpt = Checkpointer(os.path.abspath(d), max_to_keep=None) if os.path.isdir(d) else None
        try:
            if ckpt is not None and ckpt.latest_step() is not None and ckpt.restore_config().get("format") == FORMAT:
                return d
        finally:
            if ckpt is not None:
                ckpt.close()
    raise FileNotFoundError(f"no saved jaxdiff state in {directory} or {os.path.join(directory, POLICY_SUBDIR)} "
                            f"(write one with jaxdiff.save, or train with a launcher first)")


def load_state(directory: str, *, step: int | None = None, run: int | None = None, seed: int | None = None,
               **where: float) -> tuple[Algorithm, Any, dict]:
    """(algo, state, meta) from a directory written by `save` (or a training workdir: its `policy` subdirectory).

    A directory of stacked runs holds one state per run point: pick one with run=k (index) or seed=s plus the swept
    values when several runs share that seed (e.g. beta=0.1); meta then has "run" and "point".
    """
    from jaxdiff.train.multirun import select_run

    d = _saved_dir(directory)
    ckpt = Checkpointer(os.path.abspath(d), max_to_keep=None)
    try:
        step = ckpt.latest_step() if step is None else step
        meta = ckpt.restore_config(step)
        algo, template = REGISTRY[meta["algorithm"]](meta["config"], int(meta["obs_dim"]), int(meta["action_dim"]))
        structure = jax.eval_shape(template, jax.random.PRNGKey(0))  # shapes only: no op-by-op init of big nets
        points = meta.get("points")
        if points is not None:  # stacked runs: the same structure with a leading run axis
            structure = jax.tree.map(lambda x: jax.ShapeDtypeStruct((len(points), *x.shape), x.dtype), structure)
        step, state = ckpt.restore(structure, step)
    finally:
        ckpt.close()
    if points is not None:
        one = len(points) == 1 and run is None and seed is None and not where  # a run of one needs no selector
        k = 0 if one else select_run(points, run=run, seed=seed, **where)
        state = jax.tree.map(lambda x: x[k], state)
        meta = {**meta, "run": k, "point": points[k]}
    elif run not in (None, 0) or where or seed is not None:
        raise ValueError(f"{d} holds a single state (no run points); got run={run}, seed={seed}"
                         + (f", {where}" if where else ""))
    return algo, jax.tree.map(jnp.asarray, state), {**meta, "step": step}


def load_policy(directory: str, *, step: int | None = None, run: int | None = None, seed: int | None = None,
                **where: float) -> Callable[..., jax.Array]:
    """act(obs, key=None) -> actions in [-1, 1] of a saved state (jitted; the same call for every algorithm).

    obs: one observation (obs_dim,) -> (action_dim,), or a batch (B, obs_dim) -> (B, action_dim). key: for the
    algorithms that sample (QVPO's best-of-K); None uses PRNGKey(0), so pass fresh keys to get fresh samples.
    Map actions to an env's box with jaxdiff.envs.evaluate.scale_action. In a process that only acts on a CPU, call
    jax.config.update("jax_cpu_enable_async_dispatch", False) before any JAX work: 2-3x faster at batch 1 (README).
    """
    from jaxdiff.envs.evaluate import obs_batch

    algo, state, _ = load_state(directory, step=step, run=run, seed=seed, **where)
    # closed over the state: the jitted call takes only obs and key (each argument leaf costs host time per call)
    # jit_act: on CPU, each dense layer's matmul + bias + activation in one fused call (same actions, faster)
    batched = jit_act(lambda obs, key: algo.act(state, obs, key))
    single = jit_act(lambda obs, key: algo.act(state, obs[None], key)[0])  # one obs: no slicing dispatch after
    default_key = jax.random.PRNGKey(0)

    def act(obs: Any, key: jax.Array | None = None) -> jax.Array:
        arr, one = obs_batch(obs, algo.obs_dim)  # float32 numpy; a wrong shape is a ValueError naming the shapes
        key = default_key if key is None else key
        return single(arr[0], key) if one else batched(arr, key)

    act.obs_dim = algo.obs_dim
    return act


def _check_stacked(state: Any, points: list[dict]) -> None:
    """Raise if a stacked state's leading axis does not match the number of run points."""
    n = {np.shape(x)[0] for x in jax.tree.leaves(state) if np.ndim(x) > 0}
    if n != {len(points)}:
        raise ValueError(f"state leading axes {sorted(n)} do not match {len(points)} run points")
