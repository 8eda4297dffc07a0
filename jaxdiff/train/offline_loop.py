"""The host loop of one offline training stage: jitted chunks, divergence checks, evaluations, checkpoints.

Chunk k of a stage always covers steps [k*K, (k+1)*K) (K = log_every) and the caller's chunk function derives its
key from the step, and checkpoints are taken at chunk boundaries, so a run resumed from its latest checkpoint
replays exactly what an uninterrupted run does.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from jaxdiff.train import divergence
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import MetricsWriter, progress

ChunkFn = Callable[[Any, int, int], tuple[Any, dict]]
RecordsFn = Callable[[int, int, float, dict, Any], list[dict]]


def stage_loop(stage: str, state: Any, start: int, total: int, run: Any, chunk: ChunkFn, to_records: RecordsFn,
               writer: MetricsWriter, ckpt: Checkpointer, save: Callable[[int, Any], None],
               eval_fn: Callable[[Any], Any] | None = None, what: str | None = None,
               lr_flags: dict[str, str] | None = None) -> tuple[Any, dict, dict, Any]:
    """Train one stage from step `start` to `total`.

    run: has log_every, eval_every, checkpoint_every, progress_bar. chunk(state, step, n) -> (state, host
    metrics) runs the n updates after `step`; to_records(step, n, seconds, metrics, eval or None) -> metrics.jsonl
    records; save(step, state) checkpoints. Evaluation every run.eval_every steps and at the end (if eval_fn),
    checkpoints every run.checkpoint_every and at the end. what / lr_flags name the stage and its learning-rate
    flags (metric-name part -> flag, default {"": --<stage>_lr}) in a divergence error. Returns (state, last metrics, timing, last evaluation).
    """
    step = start
    K = run.log_every
    last: dict = {}
    last_eval = None
    chunk_times: list[tuple[int, float]] = []
    t_stage = time.perf_counter()
    bar = progress(total, desc=stage, initial=step, disable=None if run.progress_bar is None else not run.progress_bar)
    while step < total:
        n = min(K, total - step)
        t0 = time.perf_counter()
        state, last = chunk(state, step, n)  # host values: the chunk has finished
        dt = time.perf_counter() - t0
        chunk_times.append((n, dt))
        step += n
        bar.update(n)
        try:  # before evaluating or saving: the last checkpoint stays finite
            divergence.check(what or f"the {stage} stage", step, last, state, last_checkpoint=ckpt.latest_step,
                             directory=ckpt.directory, lr_flags=lr_flags or {"": f"--{stage}_lr"})
        except divergence.DivergenceError:
            for record in to_records(step, n, dt, last, None):  # the non-finite values, as null, for the record
                writer.write(record)
            bar.close()
            raise
        ev = None
        if eval_fn is not None and ((run.eval_every and step % run.eval_every == 0) or step == total):
            ev = last_eval = eval_fn(state)
        for record in to_records(step, n, dt, last, ev):
            writer.write(record)
        bar.set_postfix({k: f"{float(np.mean(v)):.3g}" for k, v in list(last.items())[:3]})
        if (run.checkpoint_every and step % run.checkpoint_every == 0) or step == total:
            save(step, state)
    if total == 0 or ckpt.latest_step() is None:
        save(step, state)
    bar.close()
    timing = {"time_s": time.perf_counter() - t_stage, "chunks": len(chunk_times)}
    if chunk_times:
        steady = chunk_times[1:] if len(chunk_times) > 1 else chunk_times
        timing["steps_per_s"] = sum(n for n, _ in steady) / max(sum(t for _, t in steady), 1e-9)
        timing["first_chunk_s"] = chunk_times[0][1]
    return state, last, timing, last_eval
