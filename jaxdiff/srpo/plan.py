"""What each stage of a run does before any work: train fresh, resume its checkpoint, or reuse a finished one.

Workdir layout (the same for one run or many):
  config.json                 SRPOConfig + run settings + dataset + run points and each stage's runs
  checkpoints/<stage>/<step>  orbax: the stage's states stacked on a run axis; its JSON has "points"
  metrics.jsonl               one record per stage run and chunk: "stage", "step", "run" (index into the stage's
                              points, config.json "stage_points") and the run's seed / swept values
  summary.json                "runs" (per run: point, stage runs, final metrics, evaluation), "groups" (per sweep
                              point: mean / std / IQM / CI over seeds), "stages", "timing" (steps/s per stage)
  curves_<stage>.png          mean over seeds with a +-1 std band, one line per sweep point
  bandit.png                  (toys) the behavior samples and policy action (one run) / every run's action
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Callable

import numpy as np

from jaxdiff.data.minari_data import OfflineDataset
from jaxdiff.srpo.config import STAGE_FIELDS, STAGES, RunConfig, SRPOConfig
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import read_metrics

CheckFn = Callable[[dict, str, str], None]


def ckpt_dir(workdir: str, stage: str) -> str:
    """The checkpoint directory of a stage."""
    return os.path.join(workdir, "checkpoints", stage)


def total_steps(cfg: SRPOConfig, stage: str) -> int:
    """The configured number of updates of a stage."""
    return getattr(cfg, f"{stage}_steps")


def checkpoint_config(cfg: SRPOConfig, run: RunConfig, dataset: OfflineDataset, stage: str, points: list[dict],
                      run_points: list[dict]) -> dict:
    """The JSON saved beside a stage checkpoint: enough to rebuild restore targets and check compatibility."""
    return {"stage": stage, "srpo": cfg.to_dict(), "run": dataclasses.asdict(run), "dataset": dataset.describe(),
            "points": points, "run_points": run_points}


def check_compatible(saved: dict, cfg: SRPOConfig, stage: str, where: str, fields: Any = None) -> None:
    """Raise if the saved checkpoint's settings of the stage (or the given `fields`) differ from cfg's."""
    old = saved.get("srpo", {})
    diff = [f for f in (STAGE_FIELDS[stage] if fields is None else fields) if f in old and old[f] != getattr(cfg, f)]
    if diff:
        pairs = ", ".join(f"{f}: saved {old[f]!r} vs now {getattr(cfg, f)!r}" for f in diff)
        raise ValueError(f"the {stage} checkpoint in {where} was made with different settings ({pairs}); "
                         f"use the same flags, --overwrite, or a new --workdir")


def _same_points(a: list[dict] | None, b: list[dict]) -> bool:
    return a is not None and len(a) == len(b) and all(
        set(x) == set(y) and all(np.isclose(x[k], y[k]) for k in x) for x, y in zip(a, b))


def checker(cfg: SRPOConfig, stage_pts: dict[str, list[dict]], swept: list[str]) -> CheckFn:
    """check(saved, stage, where): ValueError unless the checkpoint holds this run's stage runs and settings."""

    def check(saved: dict, stage: str, where: str) -> None:
        if not _same_points(saved.get("points"), stage_pts[stage]):
            raise ValueError(f"{where} holds the {stage} runs {saved.get('points')}, but this run needs "
                             f"{stage_pts[stage]}; use the same --seed, --num_seeds and sweep flags, --overwrite, "
                             f"or a new --workdir")
        check_compatible(saved, cfg, stage, where, [f for f in STAGE_FIELDS[stage] if f not in swept])

    return check


def prune_metrics(path: str, stage: str, after_step: int) -> None:
    """Drop this stage's records past `after_step` (they are replayed by the resumed run)."""
    records = read_metrics(path)
    keep = [r for r in records if not (r.get("stage") == stage and r.get("step", 0) > after_step)]
    if len(keep) != len(records):
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in keep)


def needed_stages(stage: str) -> tuple[str, ...]:
    """Stages that must exist for --stage (the policy needs a behavior model and a critic)."""
    return STAGES if stage in ("all", "policy") else (stage,)


def stages_to_train(stage: str) -> tuple[str, ...]:
    """Stages that --stage trains."""
    return STAGES if stage == "all" else (stage,)


def plan_stages(workdir: str, run_cfg: RunConfig, cfg: SRPOConfig,
                check: CheckFn) -> dict[str, tuple[str, int | None]]:
    """Decide, before any work, what each needed stage does: ("fresh", None), ("resume", step) or ("reuse", step).

    check(saved checkpoint config, stage, directory) raises ValueError when a checkpoint cannot be continued or
    reused with the current settings. Deletes the checkpoints of the stages being trained when run_cfg.overwrite.
    """
    to_train = stages_to_train(run_cfg.stage)
    plan: dict[str, tuple[str, int | None]] = {}
    for stage in needed_stages(run_cfg.stage):
        where = ckpt_dir(workdir, stage)
        ck = Checkpointer(where)
        if stage in to_train and run_cfg.overwrite and ck.has_any():  # damaged steps included
            ck.close()
            shutil.rmtree(where)
            plan[stage] = ("fresh", None)
            continue
        latest = ck.latest_step()  # newest readable; CheckpointError when every step there is damaged
        if stage in to_train:
            if latest is not None and not run_cfg.resume:
                raise ValueError(f"{where} already has a {stage} checkpoint (step {latest}); pass --resume to continue "
                                 f"or reuse it, --overwrite to start over, or choose a new --workdir")
            if latest is not None:
                check(ck.restore_config(latest), stage, where)
            plan[stage] = ("resume", latest) if latest is not None else ("fresh", None)
        else:
            if latest is None or latest < total_steps(cfg, stage):
                raise ValueError(f"--stage={run_cfg.stage} needs a finished {stage} stage in {workdir} (found "
                                 f"{'none' if latest is None else f'step {latest}'}); run --stage={stage} first")
            check(ck.restore_config(latest), stage, where)
            plan[stage] = ("reuse", latest)
        ck.close()
    if run_cfg.resume and all(mode == "fresh" for mode, _ in plan.values()):
        raise ValueError(f"--resume: nothing to resume in --workdir={workdir} (no checkpoints in "
                         f"{os.path.join(workdir, 'checkpoints')}); check --workdir, or drop --resume to start a "
                         f"new run")
    return plan
