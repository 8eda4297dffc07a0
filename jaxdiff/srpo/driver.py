"""The one SRPO driver: one run or many (seeds x swept hyperparameters) through the same code, one workdir.

    summary = run(RunConfig(env="hopper-medium", seed=0), cfg)                       # one run
    summary = run(RunConfig(env="hopper-medium", workdir="runs/x"), cfg, sweep.grid(4, 0, beta=[0.05, 0.1]))
    act = load_policy("runs/x", seed=2, beta=0.1)                                    # jaxdiff.srpo.load

Each stage trains only its distinct runs (`stages.stage_points`), stacked on a leading run axis. A stage with one
run is computed without vmap (`jaxdiff.train.over_runs`), so a single run reproduces the plain library functions
bit for bit; with several, the runs are padded to a multiple of the device count and sharded over a 1-D 'runs'
mesh. With shard_batch=True the behavior stage instead keeps its runs replicated and splits every minibatch over
the devices (data parallel; jit inserts the gradient all-reduce). Layout of the workdir: jaxdiff.srpo.plan.
Multi-host: call jax.distributed.initialize() on every host before this; see BUILD_NOTES.md.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdiff import saving
from jaxdiff.data.minari_data import OfflineDataset
from jaxdiff.srpo import plan as plan_lib
from jaxdiff.srpo import policy, stages, train
from jaxdiff.srpo.config import RunConfig, SRPOConfig, preset_for
from jaxdiff.srpo.data import configure, evaluate_runs, load_dataset
from jaxdiff.srpo.summary import summarize, write_plots
from jaxdiff.train import sweep
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import MetricsWriter, read_metrics, write_json
from jaxdiff.train.offline_loop import stage_loop
from jaxdiff.train.over_runs import over_runs

log = logging.getLogger("jaxdiff.srpo")


def default_workdir(env: str, points: list[dict]) -> str:
    """runs/srpo_<env>_<seed> for one run; runs/srpo_<env>_<first seed>x<num seeds>[_<swept names>] for many."""
    seeds = sorted({p["seed"] for p in points})
    tag = str(seeds[0]) if len(points) == 1 else (
        f"{seeds[0]}x{len(seeds)}" + "".join(f"_{n}" for n in stages.swept_names(points)))
    return os.path.join("runs", f"srpo_{re.sub(r'[^A-Za-z0-9_.-]+', '_', env)}_{tag}")


def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) sharded array as one numpy array on this host."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


class Placement:
    """Where a stage's runs live: one run replicated, several padded to a multiple of the device count and sharded
    on axis 0 of a 1-D mesh over `devices`."""

    def __init__(self, devices=None):
        self.mesh = sweep.make_mesh(devices)
        self.runs = NamedSharding(self.mesh, PartitionSpec(sweep.RUN_AXIS))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        # the same devices as a 'batch' axis, for data-parallel behavior training
        self.batch = NamedSharding(Mesh(self.mesh.devices, ("batch",)), PartitionSpec("batch"))

    @property
    def num_devices(self) -> int:
        """Devices of the mesh."""
        return int(self.mesh.devices.size)

    def padded(self, n: int) -> int:
        """Rows the run axis of n runs has on the devices (1 stays 1: a single run is not vmapped)."""
        return 1 if n == 1 else sweep.pad_runs(n, self.mesh)

    def sharding(self, n: int) -> NamedSharding:
        """The sharding of n runs' stacked states."""
        return self.replicated if n == 1 else self.runs

    def put(self, tree: Any, n: int) -> Any:
        """n runs' stacked tree padded and placed."""
        if n == 1:
            return self.replicate(tree)
        return sweep.shard_runs(sweep.pad_tree(tree, self.padded(n)), self.mesh)

    def replicate(self, tree: Any) -> Any:
        """A tree copied to every device."""
        return jax.device_put(tree, self.replicated)


def unpad(tree: Any, n: int) -> Any:
    """The first n runs of a padded stacked tree."""
    return jax.tree.map(lambda x: x[:n] if x.shape[0] != n else x, tree)


def _chunk_fn(algo, n: int, out_sharding, batch_sharding, masked: bool):
    """The jitted chunk of n (padded) runs: run r uses fold_in(train_keys[r], step). One compile per stage: every
    call scans num_steps (the log interval) updates. masked (a stage whose length is not a multiple of the
    interval): the scan applies only the first `limit` updates, so the short last chunk reuses the program instead
    of compiling its own; otherwise `limit` is unused and the scan is exactly the plain one (a lax.cond in the scan
    body changes XLA's fusion and the last bits of the results, so it is only there when it saves a compile). The
    states are donated (the policy's carries the frozen behavior model and critic: without donation every chunk
    held two copies)."""
    def one(state, key, data, step, num_steps, limit):
        return train.chunk(algo, state, data, jax.random.fold_in(key, step), num_steps, batch_sharding,
                           limit if masked else None)

    def fn(states, data, train_keys, step, limit, num_steps):
        return over_runs(lambda s, k: one(s, k, data, step, num_steps, limit), n)(states, train_keys)

    return jax.jit(fn, static_argnames="num_steps", out_shardings=out_sharding, donate_argnums=0)


def _act_fn(algos: stages.SRPO, states: Any, n: int, place: Placement):
    """Host act(obs (n, B, obs_dim)) -> (n, B, action_dim) of n runs' stacked policy states (jitted inside)."""
    n_pad = place.padded(n)
    act = jax.jit(over_runs(lambda s, o: algos.policy.act(s, o, None), n_pad))
    states = policy.acting_view(states)  # the params only: ~60 leaves fewer to pass on every call

    def host(obs: np.ndarray) -> np.ndarray:
        o = np.concatenate([obs, np.repeat(obs[-1:], n_pad - n, axis=0)]) if n_pad > n else obs
        return to_host(act(states, place.put(o, n) if n > 1 else o))[:n]

    return host


def _train_stage(algos, stage: str, state: Any, pts: list[dict], data: Any, cfg: SRPOConfig, run: RunConfig,
                 place: Placement, shard_batch: bool, ck: Checkpointer, writer: MetricsWriter, ckpt_config: dict,
                 eval_fn=None):
    n = len(pts)
    _, train_keys = stages.stage_keys_of(pts, stage)
    if shard_batch and stage == "behavior":  # data parallel: runs replicated, each minibatch split over devices
        state, keys, rows, out, batch = place.replicate(state), place.replicate(train_keys), n, place.replicated, \
            place.batch
    else:
        state, keys, rows, out, batch = place.put(state, n), place.put(train_keys, n), place.padded(n), \
            place.sharding(n), None

    total = plan_lib.total_steps(cfg, stage)
    start = int(to_host(state.step)[0])
    full = max(1, min(run.log_every, total))  # the one compiled chunk length
    # a short chunk comes only when the stage length (or a resume point) is off the interval grid
    fn = _chunk_fn(algos.stage(stage), rows, out, batch, masked=(total % full != 0) or (start % full != 0))

    def chunk(st, step, num):
        st, metrics = fn(st, data, keys, np.int32(step), np.int32(num), num_steps=full)
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

    policy_dir = os.path.join(run.workdir, saving.POLICY_SUBDIR)
    if stage == "policy" and start == 0 and os.path.isdir(policy_dir):  # a fresh policy: drop the old one's steps
        shutil.rmtree(policy_dir)

    def save(step, st):
        ck.save(step, unpad(st, n), ckpt_config)
        if stage == "policy":  # also in jaxdiff.save's format, for jaxdiff.load_policy(workdir, seed=...)
            saving.save(policy_dir, algos.policy, unpad(st, n), points=pts, step=step)

    state, last, timing, last_eval = stage_loop(
        stage, state, start, plan_lib.total_steps(cfg, stage), run, chunk, to_records, writer, ck, save, eval_fn,
        what=f"the SRPO {stage} stage")
    timing.update(runs=n, run_steps_per_s=timing.get("steps_per_s", 0.0) * n)
    return unpad(state, n), timing, last_eval


def run(run_cfg: RunConfig, cfg: SRPOConfig | None = None, points: list[dict] | None = None,
        dataset: OfflineDataset | None = None, *, devices=None, shard_batch: bool = False) -> dict:
    """Train (or resume) the requested stages of one SRPO run per point; returns the summary (summary.json).

    points: None for the single run [{"seed": run_cfg.seed}], or `sweep.grid(num_seeds, base_seed, beta=[...])`
    (names from stages.SWEEPABLE; each point has its seed, cfg holds everything else). devices: the devices to
    shard runs over (default all). shard_batch: split the behavior stage's minibatches over the devices instead of
    its runs. The returned dict also has "states" ({stage: stacked final states}), which is not written to JSON.
    """
    run_cfg.validate()
    if isinstance(points, OfflineDataset):  # the pre-issue-10 signature was run(run_cfg, cfg, dataset)
        raise TypeError("run(run_cfg, cfg, points=None, dataset=None): pass the dataset as dataset=...")
    if dataset is None:
        dataset = load_dataset(run_cfg.env, run_cfg.ref_min_score, run_cfg.ref_max_score)
    if cfg is None:
        cfg = configure(run_cfg.env)
    points = stages.check_points(points or [{"seed": run_cfg.seed}], cfg)
    swept = stages.swept_names(points)
    workdir = run_cfg.workdir or default_workdir(run_cfg.env, points)
    run_cfg = dataclasses.replace(run_cfg, workdir=workdir)
    place = Placement(devices)
    if shard_batch and cfg.behavior_batch % place.num_devices:
        raise ValueError(f"--shard_batch splits the behavior batch over {place.num_devices} devices: "
                         f"--behavior_batch={cfg.behavior_batch} must be a multiple of that")
    _, preset_note = preset_for(dataset.task)
    os.makedirs(workdir, exist_ok=True)
    needed = plan_lib.needed_stages(run_cfg.stage)
    split = {s: stages.stage_points(points, s) for s in stages.STAGES}
    stage_pts = {s: split[s][0] for s in stages.STAGES}
    plan = plan_lib.plan_stages(workdir, run_cfg, cfg, plan_lib.checker(cfg, stage_pts, swept))

    layout = {"num_runs": len(points), "seeds": sorted({p["seed"] for p in points}),
              "sweep": {n: sorted({p[n] for p in points}) for n in swept}, "devices": place.num_devices,
              "shard_batch": shard_batch, "stage_runs": {s: len(stage_pts[s]) for s in needed},
              "padded_runs": {s: place.padded(len(stage_pts[s])) for s in needed}}
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
            plan_lib.prune_metrics(metrics_path, stage, latest or 0)
            if mode == "fresh":
                timing.pop(stage, None)

    algos = stages.make(cfg, dataset.obs_dim, dataset.action_dim)
    writer = MetricsWriter(metrics_path, os.path.join(workdir, "tensorboard") if run_cfg.tensorboard else None)
    data = place.replicate(dataset.data)
    states: dict[str, Any] = {}
    final_eval = None

    def eval_fn(st):
        act = _act_fn(algos, st, len(points), place)
        return evaluate_runs(act, len(points), dataset, run_cfg.eval_episodes, run_cfg.eval_seed)

    for stage in needed:
        mode, latest = plan[stage]
        pts = stage_pts[stage]
        init = jax.jit(lambda keys, *frozen, _s=stage, _p=pts: stages.init_runs(algos, _s, _p, keys, *frozen))
        init_keys, _ = stages.stage_keys_of(pts, stage)
        if stage == "policy":
            target = init(init_keys, stages.gather(states["behavior"], split["behavior"][1]),
                          stages.gather(states["critic"], split["critic"][1]))
        else:
            target = init(init_keys)
        ck = Checkpointer(plan_lib.ckpt_dir(workdir, stage))
        if mode in ("resume", "reuse"):
            # resume: the newest step that reads back (older ones when it does not); reuse: the finished one
            got, target = ck.restore(target, None if mode == "resume" else latest)
            if got != latest:
                plan_lib.prune_metrics(metrics_path, stage, got)
            log.info("%s: restored step %d of %d run(s) from %s", stage, got, len(pts), ck.directory)
        if mode == "reuse" or int(to_host(target.step)[0]) >= plan_lib.total_steps(cfg, stage):
            states[stage] = target
            ck.close()
            continue
        ckpt_config = plan_lib.checkpoint_config(cfg, run_cfg, dataset, stage, pts, points)
        state, timing[stage], last_eval = _train_stage(
            algos, stage, target, pts, data, cfg, run_cfg, place, shard_batch, ck, writer, ckpt_config,
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
               "stages": {s: {"steps": plan_lib.total_steps(cfg, s), "runs": len(stage_pts[s])} for s in needed},
               **summarize(records, points, split, needed, final_eval)}
    if dataset.ref_min_score is None:
        summary["notes"] = [f"dataset {dataset.name} has no ref_min_score/ref_max_score, so no normalised score; "
                            f"pass --ref_min_score and --ref_max_score (e.g. random and expert policy returns) to "
                            f"get one"]
        log.warning(summary["notes"][0])
    for ev in final_eval or []:
        if "note" in ev:
            log.warning("%s", ev["note"])
    if run_cfg.plots:
        one = None
        if len(points) == 1 and "policy" in states:  # one run: its behavior samples and action
            one = (algos, sweep.run_slice(states["behavior"], 0), sweep.run_slice(states["policy"], 0))
        write_plots(workdir, run_cfg.env, records, stage_pts, needed, dataset, final_eval, points, one)
    write_json(summary_path, summary)
    summary["states"] = states  # stacked final states, for tests and notebooks; not in summary.json
    return summary


def run_many(run_cfg: RunConfig, cfg: SRPOConfig | None, points: list[dict], dataset: OfflineDataset | None = None,
             **kw) -> dict:
    """Alias of run(run_cfg, cfg, points, dataset, **kw) (the historical name of a many-run call)."""
    return run(run_cfg, cfg, points, dataset, **kw)
