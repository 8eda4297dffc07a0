"""Everything an online run writes or reads, for one run or many (the same layout either way):

  metrics.jsonl   one record per run per log / evaluation, each with "run" (index into the points) and the point's
                  values ("seed", swept names)
  summary.json    run info, the points, "runs" (per-run scores) and "groups" (aggregates per sweep point)
  curves.png      per sweep point the mean over seeds with a +-1 std band
  checkpoints/    one orbax checkpoint of all runs stacked on axis 0; its JSON holds "points"

plus resume (dropping records written after the checkpoint resumed from), divergence checks, and loading one run's
algorithm state back (`load_agent_state`, also for workdirs written by the older single-run driver).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff import saving
from jaxdiff.algorithm import Algorithm
from jaxdiff.train import divergence, multirun
from jaxdiff.train import logging as logging_lib
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.run_points import same_points

CURVE_KEYS = ["eval/return_mean", "train/episode_return", "agent/critic_loss", "agent/actor_loss"]
EVAL_KEY_OFFSET = 1_000_003  # run k's evaluation key is PRNGKey(seed + this)
# which flag to look at when a metric goes non-finite (first name part found wins)
LR_FLAGS = {"critic": "--critic_lr", "q_": "--critic_lr", "actor": "--actor_lr", "alpha": "--alpha_lr",
            "": "--actor_lr / --critic_lr"}


class Outputs:
    """metrics.jsonl (+ TensorBoard) of a run directory; on resume, records after the resumed step are dropped."""

    def __init__(self, workdir: str, resume: bool, step: int, tensorboard: bool = False):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        if resume:  # drop records written after the checkpoint we resume from (a crash left them behind)
            keep = [r for r in logging_lib.read_metrics(self.metrics_path) if r.get("env_step", 0) <= step]
            with open(self.metrics_path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in keep)
        elif os.path.exists(self.metrics_path):
            os.remove(self.metrics_path)
        self.writer = logging_lib.MetricsWriter(
            self.metrics_path, os.path.join(workdir, "tensorboard") if tensorboard else None)

    def write(self, record: dict) -> None:
        """Append one record."""
        self.writer.write(record)

    def finish(self, points: list[dict], summary: dict, title: str) -> dict:
        """Close the writer, plot curves.png, add per-run scores and groups to summary, write summary.json."""
        self.writer.close()
        recs = logging_lib.read_metrics(self.metrics_path)
        multirun.plot_groups(recs, points, "env_step", CURVE_KEYS, os.path.join(self.workdir, "curves.png"),
                             title=title)
        summary.update(multirun.summarize(recs, points))
        logging_lib.write_json(os.path.join(self.workdir, "summary.json"), summary)
        return summary


def run_fields(layout: dict, n: int, step: int, resumed_from: int | None, wall_s: float, train_steps: int,
               train_time: float, save_replay: bool) -> dict:
    """summary.json's run-level fields shared by both online drivers: the layout, steps, wall time and the steady
    train rate (env steps per second per run, and over all runs)."""
    sps = train_steps / train_time if train_time > 0 else None
    return {**layout, "env_steps": step, "resumed_from": resumed_from, "wall_time_s": wall_s,
            "train_steps_per_s": sps, "train_env_steps_per_s_all_runs": None if sps is None else sps * n,
            "replay_saved_in_checkpoints": save_replay}


def title(meta: dict, env_name: str, points: list[dict]) -> str:
    """curves.png's title: algorithm, env, the seed or the number of runs, and run_info's "label"."""
    label = f" ({meta['label']})" if meta.get("label") else ""
    runs = f"seed {points[0]['seed']}" if len(points) == 1 else f"{len(points)} runs"
    return f"{meta.get('algo', '')} {env_name}: {runs}{label}"


def open_checkpoints(workdir: str, resume: bool, overwrite: bool) -> Checkpointer:
    """The run's Checkpointer; a fresh run refuses to clobber checkpoints unless overwrite."""
    path = os.path.join(workdir, "checkpoints")
    if not resume and os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise FileExistsError(f"--workdir={workdir} already holds a run (checkpoints in {path}): pass --resume "
                                  f"to continue it, --overwrite to delete it and start over, or choose another "
                                  f"--workdir")
        shutil.rmtree(path)
    policy = os.path.join(workdir, saving.POLICY_SUBDIR)
    if not resume and os.path.isdir(policy):  # a fresh run's policy steps must not mix with an old run's
        shutil.rmtree(policy)
    return Checkpointer(path)


def save_policy(workdir: str, algo: Algorithm, agent_states: Any, points: list[dict], step: int) -> None:
    """The runs' stacked agent states in jaxdiff.save's format under <workdir>/policy, so jaxdiff.load_policy
    (workdir, seed=...) works on a training workdir. Algorithms missing from jaxdiff.saving.REGISTRY (test
    stand-ins) are skipped: they could not be rebuilt by name."""
    if algo.name in saving.REGISTRY:
        saving.save(os.path.join(workdir, saving.POLICY_SUBDIR), algo, agent_states, points=points, step=step)


def without_replay(state: Any) -> Any:
    """A RunnerState, or a loop state whose .runner is one, with replay=None (checkpoints without the buffer)."""
    if hasattr(state, "runner"):
        return state.replace(runner=state.runner.replace(replay=None))
    return state.replace(replay=None)


def restore(ckpt: Checkpointer, state: Any, points: list[dict], workdir: str) -> tuple[Any, dict]:
    """Restore the newest readable checkpoint into the structure of state (stacked RunnerState or loop state);
    the empty replay buffer of `state` is kept when the checkpoint has none. Refuses other runs' checkpoints."""
    def had_replay(meta: dict) -> bool:
        return bool(meta.get("runner", {}).get("save_replay", True))

    saved = ckpt.restore_config().get("points")
    if saved is None:
        raise ValueError(f"cannot resume {workdir}: its checkpoint was written by the older single-run driver; "
                         f"start a new --workdir (load_agent_state still reads it)")
    same_points(saved, points, workdir)
    _, restored, meta = ckpt.restore_latest(lambda meta: state if had_replay(meta) else without_replay(state))
    if not had_replay(meta):
        if hasattr(state, "runner"):
            restored = restored.replace(runner=restored.runner.replace(replay=state.runner.replay))
        else:
            restored = restored.replace(replay=state.replay)
    return restored, meta


def check_runs(what: str, step: int, means: list[dict], agent_states: Any, ckpt: Checkpointer) -> None:
    """Stop the runs (DivergenceError) when a logged metric of any run or any algorithm state is NaN / inf; with
    many runs the metric names say which run went non-finite."""
    many = len(means) > 1
    record = {f"agent/{name}" + (f" (run {k})" if many else ""): v for k, m in enumerate(means)
              for name, v in m.items()}
    divergence.check(what, step, record, agent_states, last_checkpoint=ckpt.latest_step, directory=ckpt.directory,
                     lr_flags=LR_FLAGS)


def eval_record(step: int, returns: np.ndarray, lengths: np.ndarray | None = None) -> dict:
    """An evaluation's metrics record from its episode returns (and lengths)."""
    rec = {
        "env_step": step,
        "eval/return_mean": float(np.mean(returns)),
        "eval/return_std": float(np.std(returns)),
        "eval/return_min": float(np.min(returns)),
        "eval/return_max": float(np.max(returns)),
    }
    if lengths is not None:
        rec["eval/length_mean"] = float(np.mean(lengths))
    return rec


def eval_keys(points: list[dict]) -> jax.Array:
    """Run k's evaluation key PRNGKey(seed + EVAL_KEY_OFFSET), stacked (independent of training keys)."""
    return jnp.stack([jax.random.PRNGKey(p["seed"] + EVAL_KEY_OFFSET) for p in points])


# ----------------------------------------------------------------------------------------------------------------
# Loading a trained run
# ----------------------------------------------------------------------------------------------------------------


def load_checkpoint_meta(workdir: str, step: int | None = None) -> dict:
    """The JSON stored beside a checkpoint: runner config, env, obs/action dims, algo, agent_config, points, ..."""
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        return ckpt.restore_config(step)
    finally:
        ckpt.close()


def _as_state_dict(x: Any) -> Any:
    """orbax hands tuples back as lists and empty nodes as None; flax's from_state_dict wants {"0": ...}."""
    if isinstance(x, (list, tuple)):
        return {str(i): _as_state_dict(v) for i, v in enumerate(x)}
    if isinstance(x, dict):
        return {k: _as_state_dict(v) for k, v in x.items()}
    return {} if x is None else x


def load_agent_state(
    workdir: str, algo: Algorithm, step: int | None = None, *, run: int | None = None, seed: int | None = None,
    **where: float,
) -> tuple[Any, dict]:
    """Restore one run's algorithm state (either driver) into the structure of algo.init's output.

    Returns (agent_state, meta). The checkpoint is read without a target, so this works whatever the replay size.
    A checkpoint holds all its runs stacked; pick one with run=k (index), or seed=s and, when a sweep shares that
    seed, the swept values (e.g. entropy_alpha=0.0); a checkpoint of one run needs neither. meta then has "run"
    and "point" added. Checkpoints of the older single-run driver (no "points", unstacked) load too.
    """
    import flax.serialization
    import orbax.checkpoint as ocp

    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if step is None:  # the newest step marked complete whose files are intact (see jaxdiff.train.checkpoint)
        ck = Checkpointer(directory)
        try:
            step = ck.latest_step()
        finally:
            ck.close()
    mngr = ocp.CheckpointManager(directory)
    try:
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(), config=ocp.args.JsonRestore())
        out = mngr.restore(step, args=args)
    finally:
        mngr.close()
    tree, meta = out["state"], dict(out["config"])
    agent_tree = tree["runner"]["agent"] if "runner" in tree else tree["agent"]
    points = meta.get("points")
    if points is not None:  # stacked runs: keep run k alone
        alone = len(points) == 1 and run is None and seed is None and not where
        k = 0 if alone else multirun.select_run(points, run=run, seed=seed, **where)
        agent_tree = jax.tree.map(lambda x: x[k], agent_tree)
        meta.update(run=k, point=points[k])
    elif run not in (None, 0) or where or (seed is not None and seed != meta.get("runner", {}).get("seed")):
        raise ValueError(f"{workdir} holds a single run (seed {meta.get('runner', {}).get('seed')}); "
                         f"got run={run}, seed={seed}, {where}")
    template = jax.eval_shape(algo.init, jax.random.PRNGKey(0))  # structure only: no op-by-op init of big nets
    state = flax.serialization.from_state_dict(template, _as_state_dict(agent_tree))
    return jax.tree.map(jnp.asarray, state), meta
