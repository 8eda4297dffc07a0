"""Restore one run's state of a stage from an SRPO workdir (one run or many).

    algos, state, saved = restore_run(workdir, "policy", seed=2, beta=0.1)   # or run=k; one run: no selector

The driver's own checkpoints (every stage, for resume and stage reuse). A trained policy is loaded for use with
jaxdiff.load_policy(workdir, ...), which reads the copy the driver saves in jaxdiff.save's format.
"""
from __future__ import annotations

from typing import Any

import jax

from jaxdiff.srpo import stages
from jaxdiff.srpo.config import SRPOConfig
from jaxdiff.srpo.plan import ckpt_dir
from jaxdiff.train import multirun, sweep
from jaxdiff.train.checkpoint import Checkpointer


def restore_run(workdir: str, stage: str = "policy", step: int | None = None, *, run: int | None = None,
                seed: int | None = None, **where: float) -> tuple[stages.SRPO, Any, dict]:
    """(the run's SRPO algorithms, its state of `stage` at the latest or given checkpoint step, the checkpoint's
    saved config). Pick the run with seed=s (plus swept values when a sweep shares that seed, e.g. beta=0.1) or
    run=k (index into the stage's points); a workdir of one run needs neither. Swept values are in state.hparams."""
    ck = Checkpointer(ckpt_dir(workdir, stage))
    try:
        if ck.latest_step() is None:
            raise FileNotFoundError(f"no {stage} checkpoint in {ckpt_dir(workdir, stage)}; run --stage={stage} first")
        saved = ck.restore_config(step)
        if saved.get("points") is None:
            raise ValueError(f"{ckpt_dir(workdir, stage)} was written by an older jaxdiff (no run points in its "
                             f"checkpoint); retrain it")
        pts = saved["points"]
        one = len(pts) == 1 and run is None and seed is None and not where
        k = 0 if one else multirun.select_run(pts, run=run, seed=seed, **where)
        cfg = SRPOConfig.from_dict(saved["srpo"])
        algos = stages.make(cfg, saved["dataset"]["obs_dim"], saved["dataset"]["action_dim"])
        run_points = saved.get("run_points") or pts
        target = jax.eval_shape(lambda: stages.init_all(algos, run_points)[stage])  # shapes only, no compute
        _, states = ck.restore(target, step)
        return algos, sweep.run_slice(states, k), saved
    finally:
        ck.close()


def load_policy_state(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                      **where: float) -> Any:
    """The PolicyState of one run (see restore_run for the selectors)."""
    return restore_run(workdir, "policy", step, run=run, seed=seed, **where)[1]

