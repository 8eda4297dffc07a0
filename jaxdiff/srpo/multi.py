"""Many SRPO runs in one process: seeds x swept hyperparameters, vmapped, sharded over devices, one workdir.

    points = sweep.grid(num_seeds=4, base_seed=0, beta=[0.05, 0.1, 0.2])   # 12 runs
    summary = run_many(RunConfig(env="hopper-medium", workdir="runs/x"), cfg, points)
    act = pipeline.load_policy("runs/x", seed=2, beta=0.1)                 # or run=k

Each stage trains only its distinct runs (`stacked.stage_points`): with beta swept, one behavior model and one
critic per seed, broadcast to the beta grid for the policy stage. A stage's states are stacked on a leading run
axis, padded to a multiple of the device count and sharded over a 1-D 'runs' mesh (`sweep.make_mesh/shard_runs`);
one jitted, vmapped chunk (`stacked.multi_chunk`) trains them all. With shard_batch=True the behavior stage
instead keeps its runs replicated and splits every minibatch over the devices (data parallel; jit inserts the
gradient all-reduce) — for one large behavior model on several accelerators.

The host loop, checkpoint/resume plan and evaluation records are pipeline.py's, shared with the single run.
Workdir layout as a single run's, plus:
  checkpoints/<stage>/<step>  one orbax checkpoint of the stage's stacked runs; its JSON has "points"
  metrics.jsonl               one record per stage run and chunk: "stage", "step", "run" (index into that stage's
                              points, see config.json "stage_points") and the run's seed / swept values
  summary.json                "runs" (per run: point, stage run indices, final metrics, evaluation) and "groups"
                              (per sweep point: sweep.aggregate of final/best return and normalised score)
  curves_<stage>.png          mean over seeds with a +-1 std band, one line per sweep point (multirun.plot_groups)
  bandit.png                  (toys) every run's final action on the reward map, coloured by sweep point
Multi-host: call jax.distributed.initialize() on every host before this; see BUILD_NOTES.md.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxdiff.data.minari_data import OfflineDataset, eval_env_id
from jaxdiff.srpo import pipeline, policy, stacked
from jaxdiff.srpo.config import STAGE_FIELDS, SRPOConfig, preset_for
from jaxdiff.srpo.pipeline import STAGES, RunConfig
from jaxdiff.train import multirun, sweep
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import MetricsWriter, read_metrics, write_json

log = logging.getLogger("jaxdiff.srpo")
BATCH_AXIS = "batch"
_INIT = jax.jit(stacked.init_stage, static_argnums=(0, 2, 3, 4))
_ACT = jax.jit(jax.vmap(policy.act))


def default_workdir(env: str, points: list[dict]) -> str:
    seeds = sorted({p["seed"] for p in points})
    tag = f"{seeds[0]}x{len(seeds)}" + "".join(f"_{n}" for n in stacked.swept_names(points))
    return os.path.join("runs", f"srpo_{re.sub(r'[^A-Za-z0-9_.-]+', '_', env)}_{tag}")


# ------------------------------------------------------------------------------------------------ placement
class Placement:
    """Runs padded to a multiple of the device count and sharded on axis 0 of a 1-D mesh over `devices`."""

    def __init__(self, devices=None):
        self.mesh = sweep.make_mesh(devices)
        self.runs = NamedSharding(self.mesh, PartitionSpec(sweep.RUN_AXIS))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        # the same devices as a 'batch' axis, for data-parallel behavior training
        self.batch = NamedSharding(jax.sharding.Mesh(self.mesh.devices, (BATCH_AXIS,)), PartitionSpec(BATCH_AXIS))

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    def put(self, tree: Any, n: int) -> Any:
        return sweep.shard_runs(sweep.pad_tree(tree, sweep.pad_runs(n, self.mesh)), self.mesh)

    def replicate(self, tree: Any) -> Any:
        return jax.device_put(tree, self.replicated)


def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) sharded array as one numpy array on this host."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def unpad(tree: Any, n: int) -> Any:
    return jax.tree.map(lambda x: x[:n] if x.shape[0] != n else x, tree)


@functools.lru_cache(maxsize=None)
def _chunk_fn(stage: str, out_sharding: NamedSharding, batch_sharding: NamedSharding | None):
    """One jitted, vmapped chunk per (stage, layout), reused across chunks, stages' reruns and run_many calls."""
    fn = functools.partial(stacked.multi_chunk, stage, batch_sharding=batch_sharding)
    return jax.jit(fn, static_argnames="num_steps", out_shardings=out_sharding)


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate_runs(states: policy.PolicyState, n: int, dataset: OfflineDataset, episodes: int, seed: int,
                  place: Placement) -> list[dict]:
    """pipeline.evaluate for each of the n runs of stacked (padded, sharded) policy states, in one pass.

    Gym: all runs' episodes step in one vector env, rows [k E, (k+1) E) belonging to run k, each run on the
    seeds a single run uses (seed + i), so run k's record equals the single run's.
    """
    n_pad = sweep.pad_runs(n, place.mesh)
    if dataset.kind == "bandit":
        obs = jax.device_put(jnp.zeros((n_pad, 1, dataset.obs_dim)), place.runs)
        actions = to_host(_ACT(states, obs))[:n, 0]
        return [pipeline.bandit_record(a, dataset) for a in actions]
    from jaxdiff.envs.evaluate import evaluate_policy

    obs_dim, E = dataset.obs_dim, episodes

    def act_fn(obs, step):
        o = np.asarray(obs, np.float32).reshape(n, E, obs_dim)
        o = np.concatenate([o, np.repeat(o[-1:], n_pad - n, axis=0)]) if n_pad > n else o
        return to_host(_ACT(states, jax.device_put(o, place.runs)))[:n].reshape(n * E, -1)

    res = evaluate_policy(eval_env_id(dataset), act_fn, num_episodes=n * E, seeds=[seed + j for _ in range(n)
                                                                                    for j in range(E)])
    ret, lens = res["returns"].reshape(n, E), res["lengths"].reshape(n, E)
    return [pipeline.returns_record(ret[k], lens[k], dataset) for k in range(n)]


# ------------------------------------------------------------------------------------------------ checks
def _same_points(a: list[dict] | None, b: list[dict]) -> bool:
    return a is not None and len(a) == len(b) and all(
        set(x) == set(y) and all(np.isclose(x[k], y[k]) for k in x) for x, y in zip(a, b))


def _checker(cfg: SRPOConfig, stage_pts: dict[str, list[dict]], swept: list[str]):
    def check(saved: dict, stage: str, where: str) -> None:
        if saved.get("points") is None:
            raise ValueError(f"{where} holds a single-run checkpoint (seed {saved.get('run', {}).get('seed')}); "
                             f"continue it without --num_seeds / sweeps, or choose a new --workdir")
        if not _same_points(saved["points"], stage_pts[stage]):
            raise ValueError(f"{where} holds the {stage} runs {saved['points']}, but this run needs "
                             f"{stage_pts[stage]}; use the same --seed, --num_seeds and sweep flags, --overwrite, "
                             f"or a new --workdir")
        fields = [f for f in STAGE_FIELDS[stage] if f not in swept]
        pipeline.check_compatible(saved, cfg, stage, where, fields)

    return check


# ------------------------------------------------------------------------------------------------ stage training
def _train_stage(stage: str, state: Any, pts: list[dict], data: Any, cfg: SRPOConfig, run: RunConfig,
                 place: Placement, shard_batch: bool, ck: Checkpointer, writer: MetricsWriter, ckpt_config: dict,
                 eval_fn=None):
    n = len(pts)
    _, train_keys = stacked.stage_keys_of(pts, stage)
    if shard_batch and stage == "behavior":  # data parallel: runs replicated, each minibatch split over devices
        state, keys, out, batch = place.replicate(state), place.replicate(train_keys), place.replicated, place.batch
    else:
        state, keys, out, batch = place.put(state, n), place.put(train_keys, n), place.runs, None
    fn = _chunk_fn(stage, out, batch)

    def chunk(st, step, num):
        st, metrics = fn(st, data, keys, jnp.int32(step), num_steps=num)
        return st, {k: to_host(v)[:n] for k, v in metrics.items()}

    def to_records(step, num, dt, last, ev):
        recs = []
        for r, p in enumerate(pts):
            rec = {"stage": stage, "step": step, "run": r, **p, **{k: float(v[r]) for k, v in last.items()},
                   "steps_per_s": num / dt}
            if ev is not None:
                rec.update(eval_return=ev[r]["mean_return"], eval_score=ev[r]["normalized_score"])
            recs.append(rec)
        return recs

    start = int(to_host(state.step)[0])
    state, last, timing, last_eval = pipeline.stage_loop(
        stage, state, start, getattr(cfg, f"{stage}_steps"), run, chunk, to_records, writer, ck,
        lambda step, st: ck.save(step, unpad(st, n), ckpt_config), eval_fn)
    timing.update(runs=n, run_steps_per_s=timing.get("steps_per_s", 0.0) * n)
    return unpad(state, n), timing, last_eval


# ------------------------------------------------------------------------------------------------ run
def run_many(run_cfg: RunConfig, cfg: SRPOConfig | None, points: list[dict], dataset: OfflineDataset | None = None,
             *, devices=None, shard_batch: bool = False) -> dict:
    """Train (or resume) one SRPO run per point; returns the summary also written to summary.json.

    points: `sweep.grid(num_seeds, base_seed, beta=[...], ...)`; names from stacked.SWEEPABLE. run_cfg.seed is
    not used (each point has its seed); cfg holds everything else (its values of swept names are ignored).
    devices: the devices to shard runs over (default all, jax.devices()). shard_batch: split the behavior
    stage's minibatches over the devices instead of its runs.
    The returned dict also has "states" ({stage: stacked final states}), which is not written to JSON.
    """
    run_cfg.validate()
    if dataset is None:
        dataset = pipeline.load_dataset(run_cfg.env, run_cfg.ref_min_score, run_cfg.ref_max_score)
    if cfg is None:
        cfg = pipeline.configure(run_cfg.env)
    stacked.check_points(points, cfg)
    points = [{k: (int(v) if k == "seed" else float(v)) for k, v in p.items()} for p in points]
    swept = stacked.swept_names(points)
    workdir = run_cfg.workdir or default_workdir(run_cfg.env, points)
    run_cfg = dataclasses.replace(run_cfg, workdir=workdir)
    place = Placement(devices)
    if shard_batch and cfg.behavior_batch % place.num_devices:
        raise ValueError(f"--shard_batch splits the behavior batch over {place.num_devices} devices: "
                         f"--behavior_batch={cfg.behavior_batch} must be a multiple of that")
    _, preset_note = preset_for(dataset.task)
    os.makedirs(workdir, exist_ok=True)
    needed = pipeline.needed_stages(run_cfg.stage)
    split = {s: stacked.stage_points(points, s) for s in STAGES}
    stage_pts = {s: split[s][0] for s in STAGES}
    plan = pipeline.plan_stages(workdir, run_cfg, cfg, _checker(cfg, stage_pts, swept))

    layout = {"num_runs": len(points), "seeds": sorted({p["seed"] for p in points}),
              "sweep": {n: sorted({p[n] for p in points}) for n in swept}, "devices": place.num_devices,
              "shard_batch": shard_batch,
              "stage_runs": {s: len(stage_pts[s]) for s in needed},
              "padded_runs": {s: sweep.pad_runs(len(stage_pts[s]), place.mesh) for s in needed}}
    write_json(os.path.join(workdir, "config.json"),
               {"srpo": cfg.to_dict(), "run": dataclasses.asdict(run_cfg), "dataset": dataset.describe(),
                "preset": preset_note, "points": points, "stage_points": stage_pts, **layout})
    summary_path = os.path.join(workdir, "summary.json")
    timing: dict = {}
    if os.path.exists(summary_path):  # timings of stages that are reused, not retrained, are kept
        with open(summary_path) as f:
            timing = json.load(f).get("timing", {})
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    for stage, (mode, latest) in plan.items():
        if mode != "reuse":
            pipeline.prune_metrics(metrics_path, stage, latest or 0)
            if mode == "fresh":
                timing.pop(stage, None)

    writer = MetricsWriter(metrics_path, pipeline.tensorboard_dir(run_cfg))
    data = place.replicate(dataset.data)
    states: dict[str, Any] = {}
    final_eval = None

    def eval_fn(st):
        return evaluate_runs(st, len(points), dataset, run_cfg.eval_episodes, run_cfg.eval_seed, place)

    for stage in needed:
        mode, latest = plan[stage]
        pts = stage_pts[stage]
        init_keys, _ = stacked.stage_keys_of(pts, stage)
        if stage == "policy":
            target = _INIT(stage, init_keys, dataset.obs_dim, dataset.action_dim, cfg,
                           stacked.gather(states["behavior"], split["behavior"][1]),
                           stacked.gather(states["critic"], split["critic"][1]))
        else:
            target = _INIT(stage, init_keys, dataset.obs_dim, dataset.action_dim, cfg)
        target = stacked.set_hparams(stage, target, stacked.point_values(pts))
        ck = Checkpointer(pipeline.ckpt_dir(workdir, stage))
        if mode in ("resume", "reuse"):
            got, target = ck.restore(target, None if mode == "resume" else latest)  # as pipeline.run
            if got != latest:
                pipeline.prune_metrics(metrics_path, stage, got)
            log.info("%s: restored %d runs at step %d from %s", stage, len(pts), got, ck.directory)
        if mode == "reuse" or int(to_host(target.step)[0]) >= getattr(cfg, f"{stage}_steps"):
            states[stage] = target
            ck.close()
            continue
        ckpt_config = {**pipeline.checkpoint_config(cfg, run_cfg, dataset, stage), "points": pts,
                       "run_points": points}
        state, timing[stage], last_eval = _train_stage(
            stage, target, pts, data, cfg, run_cfg, place, shard_batch, ck, writer, ckpt_config,
            eval_fn if (stage == "policy" and run_cfg.eval_episodes > 0) else None)
        ck.close()
        states[stage] = state
        final_eval = last_eval if stage == "policy" else final_eval
    writer.close()

    if "policy" in states and run_cfg.eval_episodes > 0 and final_eval is None:
        final_eval = eval_fn(place.put(states["policy"], len(points)))
    records = read_metrics(metrics_path)
    summary = {"env": run_cfg.env, "workdir": workdir, "dataset": dataset.describe(), "config": cfg.to_dict(),
               "preset": preset_note, "points": points, **layout, "timing": timing,
               "stages": {s: {"steps": getattr(cfg, f"{s}_steps"), "runs": len(stage_pts[s])} for s in needed},
               **summarize(records, points, split, needed, final_eval)}
    if dataset.ref_min_score is None:
        summary["notes"] = [f"dataset {dataset.name} has no ref_min_score/ref_max_score, so no normalised score; "
                            f"pass --ref_min_score and --ref_max_score to get one"]
    if run_cfg.plots:
        for stage in needed:
            recs = [r for r in records if r.get("stage") == stage]
            multirun.plot_groups(recs, stage_pts[stage], "step", list(pipeline.CURVES[stage]),
                                 os.path.join(workdir, f"curves_{stage}.png"),
                                 title=f"SRPO {stage} - {run_cfg.env} ({len(stage_pts[stage])} runs)")
        if dataset.kind == "bandit" and final_eval is not None:
            from jaxdiff.srpo.plots import bandit_runs_figure

            bandit_runs_figure([e["action"] for e in final_eval], points, dataset, os.path.join(workdir, "bandit.png"))
    write_json(summary_path, summary)
    summary["states"] = states  # stacked final states, for tests and notebooks; not in summary.json
    return summary


# ------------------------------------------------------------------------------------------------ summary
_NOT_METRICS = {"stage", "step", "run", "seed", "steps_per_s", "eval_return", "eval_score", *stacked.SWEEPABLE}


def summarize(records: list[dict], points: list[dict], split: dict, stages, final_eval: list[dict] | None) -> dict:
    """{"runs": [...], "groups": [...]} in jaxdiff.train.multirun's format, with SRPO's per-stage final metrics
    and normalised scores added (per run, and sweep.aggregate per sweep point)."""
    last: dict[tuple[str, int], dict] = {}
    for r in records:
        if "run" in r and "stage" in r:
            last[(r["stage"], r["run"])] = {k: v for k, v in r.items() if k not in _NOT_METRICS}
    extra = []
    for k in range(len(points)):
        e: dict = {"stage_runs": {s: split[s][1][k] for s in stages},
                   "final_metrics": {s: last.get((s, split[s][1][k]), {}) for s in stages}}
        evals = [r for r in records if r.get("stage") == "policy" and r.get("run") == k and "eval_return" in r]
        if evals:
            best = max(evals, key=lambda r: r["eval_return"])
            e.update(best_eval_return=best["eval_return"], best_eval_score=best["eval_score"],
                     best_eval_step=best["step"], eval_curve=[[r["step"], r["eval_return"]] for r in evals])
        if final_eval is not None:
            ev = final_eval[k]
            e.update(final_eval_return=ev["mean_return"], final_eval_score=ev["normalized_score"], eval=ev)
        extra.append(e)
    out = multirun.summarize([], points, extra)
    for g in out["groups"]:
        for key in ("final_eval_score", "best_eval_score"):
            vals = [out["runs"][i].get(key) for i in g["runs"]]
            if vals and all(v is not None for v in vals):
                g[key] = sweep.aggregate(vals)
    return out


# ------------------------------------------------------------------------------------------------ loading
def restore_run(ck: Checkpointer, saved: dict, step: int | None = None, *, run: int | None = None,
                seed: int | None = None, **where: float) -> policy.PolicyState:
    """Run k alone from a stacked policy checkpoint (used by pipeline.load_policy_state), its cfg showing the
    run's swept values."""
    pts = saved["points"]
    k = multirun.select_run(pts, run=run, seed=seed, **where)
    cfg = SRPOConfig.from_dict(saved["srpo"])
    obs_dim, action_dim = saved["dataset"]["obs_dim"], saved["dataset"]["action_dim"]
    target = jax.eval_shape(lambda: stacked.init_all(pts, obs_dim, action_dim, cfg)["policy"])
    _, states = ck.restore(target, step)
    one = sweep.run_slice(states, k)
    return one.replace(cfg=cfg.replace(**{n: v for n, v in pts[k].items() if n != "seed"}))
