"""Restore one run's state of a stage from an SRPO workdir (one run or many), and its policy as act(obs).

    algos, state, saved = restore_run(workdir, "policy", seed=2, beta=0.1)   # or run=k; one run: no selector
    act = load_policy(workdir)                                               # act(obs) -> actions in [-1, 1]
"""
from __future__ import annotations

from typing import Any, Callable

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


def load_policy(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                **where: float) -> Callable[[Any], jax.Array]:
    """act(obs) -> actions in [-1, 1] from a run's policy checkpoint (the policy call is jitted).

    obs: one observation (obs_dim,) -> (action_dim,), or a batch (B, obs_dim) -> (B, action_dim); numpy, jax
    arrays or lists. Any other shape is a ValueError naming the expected ones (jaxdiff.envs.evaluate.obs_batch).
    Choose the run of a many-run workdir with seed=s (and swept values, e.g. beta=0.1) or run=k. Map actions to the
    env's box with jaxdiff.envs.evaluate.scale_action (identity for [-1, 1]).
    """
    from jaxdiff.envs.evaluate import checked_act

    algos, state, _ = restore_run(workdir, "policy", step, run=run, seed=seed, **where)
    return checked_act(jax.jit(lambda obs: algos.policy.act(state, obs, None)), algos.policy.obs_dim)
