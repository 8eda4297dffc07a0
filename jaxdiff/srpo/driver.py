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
from typing import Any

import jax
import numpy as np

from jaxdiff import saving
from jaxdiff.act_jit import jit_act
from jaxdiff.data.minari_data import OfflineDataset
from jaxdiff.srpo import plan as plan_lib
from jaxdiff.srpo import policy, stages
from jaxdiff.srpo.config import RunConfig, SRPOConfig, preset_for
from jaxdiff.srpo.data import configure, evaluate_runs, load_dataset
from jaxdiff.srpo.summary import summarize, write_plots
from jaxdiff.train import sweep
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import MetricsWriter, read_metrics, write_json
from jaxdiff.srpo.stage_train import Placement, StageJob, can_pair, to_host, train_pair, train_stage
from jaxdiff.train.over_runs import over_runs

log = logging.getLogger("jaxdiff.srpo")


def default_workdir(env: str, points: list[dict]) -> str:
    """runs/srpo_<env>_<seed> for one run; runs/srpo_<env>_<first seed>x<num seeds>[_<swept names>] for many."""
    seeds = sorted({p["seed"] for p in points})
    tag = str(seeds[0]) if len(points) == 1 else (
        f"{seeds[0]}x{len(seeds)}" + "".join(f"_{n}" for n in stages.swept_names(points)))
    return os.path.join("runs", f"srpo_{re.sub(r'[^A-Za-z0-9_.-]+', '_', env)}_{tag}")


def _act_fn(algos: stages.SRPO, states: Any, n: int, place: Placement):
    """Host act(obs (n, B, obs_dim)) -> (n, B, action_dim) of n runs' stacked policy states (jitted inside)."""
    n_pad = place.padded(n)
    act = jit_act(over_runs(lambda s, o: algos.policy.act(s, o, None), n_pad))  # CPU: fused dense layers
    states = policy.acting_view(states)  # the params only: ~60 leaves fewer to pass on every call

    def host(obs: np.ndarray) -> np.ndarray:
        o = np.concatenate([obs, np.repeat(obs[-1:], n_pad - n, axis=0)]) if n_pad > n else obs
        return to_host(act(states, place.put(o, n) if n > 1 else o))[:n]

    return host


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

    def prepare(stage):
        """(the stage's job, its state fresh or restored, whether it still trains)."""
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
        total = plan_lib.total_steps(cfg, stage)
        job = StageJob(stage, algos.stage(stage), pts, total, ck,
                       plan_lib.checkpoint_config(cfg, run_cfg, dataset, stage, pts, points))
        return job, target, mode != "reuse" and int(to_host(target.step)[0]) < total

    def finish(job, state, trains, eval_fn=None):
        """Train what is left of a stage alone; returns its last evaluation."""
        last_eval = None
        if trains and int(to_host(state.step)[0]) < job.total:
            state, t, last_eval = train_stage(
                job, state, data, run_cfg, place, writer, shard_batch and job.stage == "behavior", eval_fn,
                os.path.join(workdir, saving.POLICY_SUBDIR) if job.stage == "policy" else None)
            timing[job.stage] = {**t, **({"together": timing[job.stage]["together"]} if job.stage in together else {})}
        job.ck.close()
        states[job.stage] = state
        return last_eval

    together: set[str] = set()  # stages that trained (some of their steps) in one loop with another
    prepared = {s: prepare(s) for s in needed if s != "policy"}
    if run_cfg.behavior_critic_together and len(prepared) == 2:
        (jb, sb, tb), (jc, sc, tc) = prepared["behavior"], prepared["critic"]
        if tb and tc and can_pair(jb, jc, sb, sc, run_cfg.log_every, shard_batch):
            (sb, sc), t = train_pair(jb, jc, (sb, sc), data, run_cfg, place, writer)
            for s, other in (("behavior", "critic"), ("critic", "behavior")):  # "together": the joint part
                timing[s] = {**t, "together": {**t, "with": other}}
            together.update(("behavior", "critic"))
            prepared = {"behavior": (jb, sb, tb), "critic": (jc, sc, tc)}
    for s, (job, state, trains) in prepared.items():
        finish(job, state, trains)
    if "policy" in needed:
        final_eval = finish(*prepare("policy"), eval_fn if run_cfg.eval_episodes > 0 else None)
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
