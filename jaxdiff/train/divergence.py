"""Stop a run that went non-finite, at a chunk boundary, before it writes a non-finite checkpoint.

Drivers call `check(...)` after every chunk (SRPO) or log interval (online runner) with the chunk's host metrics
and the train state. Checking there costs one small jitted reduction per chunk and keeps the last checkpoint finite,
so the run can be resumed with a smaller learning rate.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


class DivergenceError(RuntimeError):
    """A loss or parameter became NaN / inf. The message names stage, step, metric, checkpoint and the flag."""


def _finite(leaves: list[jax.Array]) -> jax.Array:
    # One concatenation and one reduction. A reduction per leaf compiles ~4x slower (0.67 s against 0.17 s for a
    # 53-leaf behavior state on CPU), and this is compiled once per state structure in every run.
    return jnp.all(jnp.isfinite(jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])))


def all_finite(tree: Any) -> bool:
    """True when every floating-point leaf of tree is finite (one jitted reduction)."""
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)]
    return bool(jax.jit(_finite)(leaves)) if leaves else True


def first_bad_metric(metrics: dict) -> tuple[str, float] | None:
    """(name, a non-finite value) of the first metric holding NaN / inf (scalars or per-run arrays), else None."""
    for k, v in metrics.items():
        arr = np.asarray(v, dtype=np.float64)
        if arr.size and not np.all(np.isfinite(arr)):
            return k, float(arr[~np.isfinite(arr)].flat[0])
    return None


def flag_for(metric: str, lr_flags: dict[str, str]) -> str:
    """The learning-rate flag to look at for a metric: the first lr_flags key contained in its name."""
    for part, flag in lr_flags.items():
        if part in metric:
            return flag
    return " / ".join(dict.fromkeys(lr_flags.values()))


def check(what: str, step: int, metrics: dict, params: Any, *,
          last_checkpoint: int | None | Callable[[], int | None], directory: str, lr_flags: dict[str, str]) -> None:
    """Raise DivergenceError when a metric or a floating leaf of params is not finite.

    what: "behavior stage", "qvpo on Hopper-v5", ...; lr_flags: metric-name part -> flag, e.g.
    {"critic": "--critic_lr", "actor": "--actor_lr"} (the first part found in the bad metric's name wins).
    last_checkpoint: the newest checkpoint step, or a function returning it (called only on divergence)."""
    bad = first_bad_metric(metrics)
    if bad is None and all_finite(params):
        return
    if bad is not None:
        name, value = bad
        found = f"metric {name} is {'nan' if math.isnan(value) else value}"
    else:
        name = ""
        found = "the parameters hold NaN/inf (the metrics were still finite)"
    if callable(last_checkpoint):  # asked only now: scanning the checkpoint directory is not free
        last_checkpoint = last_checkpoint()
    kept = ("no checkpoint was written yet" if last_checkpoint is None
            else f"the last finite checkpoint (step {last_checkpoint}) is kept in {directory}")
    raise DivergenceError(f"{what} diverged at step {step}: {found}; {kept}; lower {flag_for(name, lr_flags)} "
                          f"(or check the data), then rerun with --resume or --overwrite")
