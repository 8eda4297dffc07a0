"""Training one SRPO stage's runs on the devices, or the behavior and critic stages together in one loop.

    place = Placement()                                   # where runs live: one replicated, many sharded
    state, timing, last_eval = train_stage(StageJob(...), place, ...)
    (b, c), timing = train_pair(behavior_job, critic_job, place, ...)   # both stages, one jitted chunk

A stage's chunk k covers updates [k*K, (k+1)*K) (K = log_every), its key is fold_in(train key, step), so a run
resumed at a chunk boundary replays exactly the uninterrupted run. The pair runs the same updates with the same
keys in one lax.scan (`jaxdiff.srpo.train.joint_chunk`): the results are bit-identical to training the stages one
after the other (tests/test_regression.py, test_srpo_multi.py and test_srpo_units.py check it); each stage keeps its own
checkpoints and metrics records.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdiff import saving
from jaxdiff.srpo import stages, train
from jaxdiff.train import sweep
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import MetricsWriter
from jaxdiff.train.offline_loop import stage_loop
from jaxdiff.train.over_runs import over_runs


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


@dataclasses.dataclass
class StageJob:
    """One stage of a driver call: its Algorithm, its runs' points, its checkpointer and checkpoint metadata."""

    stage: str
    algo: Any  # jaxdiff.Algorithm
    points: list[dict]
    total: int  # the stage's configured number of updates
    ck: Checkpointer
    ckpt_config: dict

    def train_keys(self) -> jax.Array:
        """The stacked train keys of the stage's runs (each from its seed, as a single run's)."""
        return stages.stage_keys_of(self.points, self.stage)[1]

    def records(self, step: int, num: int, dt: float, last: dict, ev: Any) -> list[dict]:
        """metrics.jsonl records of a chunk: one per run, with its point and (policy stage) evaluation."""
        recs = []
        for r, p in enumerate(self.points):
            rec = {"stage": self.stage, "step": step, "run": r, **p, **{k: float(v[r]) for k, v in last.items()},
                   "steps_per_s": num / dt}
            if ev is not None:
                rec.update(eval_return=ev[r]["mean_return"], eval_score=ev[r]["normalized_score"])
            recs.append(rec)
        return recs


def _chunk_fn(chunk, n: int, out_sharding, masked: bool):
    """The jitted chunk of n (padded) runs: run r uses fold_in(train_keys[r], step) (a tuple of keys for a pair).
    One compile per stage: every call scans num_steps (the log interval) updates. masked (a stage whose length is
    not a multiple of the interval): the scan applies only the first `limit` updates, so the short last chunk
    reuses the program instead of compiling its own; otherwise `limit` is unused and the scan is exactly the plain
    one (a lax.cond in the scan body changes XLA's fusion and the last bits of the results, so it is only there
    when it saves a compile). The states are donated (the policy's carries the frozen behavior model and critic:
    without donation every chunk held two copies)."""
    def one(state, key, data, step, num_steps, limit):
        key = jax.tree.map(lambda k: jax.random.fold_in(k, step), key)
        return chunk(state, data, key, num_steps, limit if masked else None)

    def fn(states, data, train_keys, step, limit, num_steps):
        return over_runs(lambda s, k: one(s, k, data, step, num_steps, limit), n)(states, train_keys)

    return jax.jit(fn, static_argnames="num_steps", out_shardings=out_sharding, donate_argnums=0)


def _start(state: Any) -> int:
    return int(to_host(state.step)[0])


def _is_masked(total: int, start: int, full: int) -> bool:
    # a short chunk comes only when the stage length (or a resume point) is off the interval grid
    return (total % full != 0) or (start % full != 0)


def train_stage(job: StageJob, state: Any, data: Any, run: Any, place: Placement, writer: MetricsWriter,
                shard_batch: bool = False, eval_fn=None, save_policy_to: str | None = None):
    """Train a stage's runs from their step to job.total; returns (unpadded state, timing, last evaluation).
    shard_batch: split each minibatch over the devices, runs replicated (the behavior stage's data parallelism).
    save_policy_to: also save every checkpoint there in jaxdiff.save's format (the policy stage)."""
    n = len(job.points)
    keys = job.train_keys()
    if shard_batch:
        state, keys, rows, out, batch = (place.replicate(state), place.replicate(keys), n, place.replicated,
                                         place.batch)
    else:
        state, keys, rows, out, batch = place.put(state, n), place.put(keys, n), place.padded(n), place.sharding(n), None
    start = _start(state)
    full = max(1, min(run.log_every, job.total))  # the one compiled chunk length

    def chunk_of(s, d, k, num_steps, limit):
        return train.chunk(job.algo, s, d, k, num_steps, batch, limit)

    fn = _chunk_fn(chunk_of, rows, out, _is_masked(job.total, start, full))

    def chunk(st, step, num):
        st, metrics = fn(st, data, keys, np.int32(step), np.int32(num), num_steps=full)
        return st, {k: to_host(v)[:n] for k, v in metrics.items()}

    if save_policy_to and start == 0 and os.path.isdir(save_policy_to):  # a fresh policy: drop the old one's steps
        shutil.rmtree(save_policy_to)

    def save(step, st):
        job.ck.save(step, unpad(st, n), job.ckpt_config)
        if save_policy_to:  # for jaxdiff.load_policy(workdir, seed=...)
            saving.save(save_policy_to, job.algo, unpad(st, n), points=job.points, step=step)

    state, _, timing, last_eval = stage_loop(job.stage, state, start, job.total, run, chunk, job.records, writer,
                                             job.ck, save, eval_fn, what=f"the SRPO {job.stage} stage")
    timing.update(runs=n, run_steps_per_s=timing.get("steps_per_s", 0.0) * n)
    return unpad(state, n), timing, last_eval


def pair_end(a: StageJob, b: StageJob, log_every: int) -> int:
    """The step up to which two stages train together: the shorter one's end, rounded down to the chunk grid
    when their lengths differ (the longer stage's chunk there is a full one, as when it trains alone)."""
    common = min(a.total, b.total)
    return common if a.total == b.total else common - common % log_every


def can_pair(a: StageJob, b: StageJob, state_a: Any, state_b: Any, log_every: int, shard_batch: bool) -> bool:
    """Whether two stages can train in one loop: same number of runs, same start step before their pair_end, and
    no data-parallel behavior stage (whose runs are placed differently)."""
    start = _start(state_a)
    return (not shard_batch and len(a.points) == len(b.points) and start == _start(state_b)
            and start < pair_end(a, b, log_every))


def train_pair(a: StageJob, b: StageJob, states: tuple, data: Any, run: Any, place: Placement,
               writer: MetricsWriter):
    """Train two independent stages together (one jitted chunk, `train.joint_chunk`) up to pair_end; the caller
    finishes the rest of each with train_stage. Checkpoints and records are each stage's own, written at the steps
    they would be alone. Returns ((state a, state b), timing)."""
    n = len(a.points)
    keys = place.put((a.train_keys(), b.train_keys()), n)
    states = place.put(tuple(states), n)
    start, total = _start(states[0]), pair_end(a, b, run.log_every)
    full = max(1, min(run.log_every, total))

    def chunk_of(s, d, k, num_steps, limit):
        return train.joint_chunk((a.algo, b.algo), s, d, k, num_steps, limit)

    fn = _chunk_fn(chunk_of, place.padded(n), place.sharding(n), _is_masked(total, start, full))
    pre = (f"{a.stage}/", f"{b.stage}/")

    def chunk(st, step, num):
        st, (ma, mb) = fn(st, data, keys, np.int32(step), np.int32(num), num_steps=full)
        return st, {**{pre[0] + k: to_host(v)[:n] for k, v in ma.items()},
                    **{pre[1] + k: to_host(v)[:n] for k, v in mb.items()}}

    def records(step, num, dt, last, ev):
        split = [{k[len(p):]: v for k, v in last.items() if k.startswith(p)} for p in pre]
        return a.records(step, num, dt, split[0], None) + b.records(step, num, dt, split[1], None)

    def save(step, st):  # at the checkpoint interval and a stage's own end, not at pair_end
        for job, s in zip((a, b), st):
            if step == job.total or (run.checkpoint_every and step % run.checkpoint_every == 0):
                job.ck.save(step, unpad(s, n), job.ckpt_config)

    states, _, timing, _ = stage_loop(
        f"{a.stage}+{b.stage}", states, start, total, run, chunk, records, writer, a.ck, save,
        what=f"the SRPO {a.stage} and {b.stage} stages (trained together)",
        lr_flags={pre[0]: f"--{a.stage}_lr", pre[1]: f"--{b.stage}_lr", "": f"--{a.stage}_lr / --{b.stage}_lr"})
    timing.update(runs=n, run_steps_per_s=timing.get("steps_per_s", 0.0) * n, steps=total - start)
    return tuple(unpad(s, n) for s in states), timing
