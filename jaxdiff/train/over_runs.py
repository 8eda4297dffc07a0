"""`over_runs`: one function over a leading run axis, for one run or many, through the same code path.

Every driver keeps its runs stacked on axis 0 (a single run is a batch of one). For many runs that is `jax.vmap`.
For one run it squeezes the axis, calls the function unbatched and adds the axis back: XLA lowers a vmapped matmul
differently even at batch size 1 (measured: SAC / QVPO parameters differ by ~1e-7 after 20 updates). Squeezing
inside a jitted function is not always enough either: for SAC / QVPO updates it still differed from the second
update on, so the online drivers drop the run axis outside the jit for one run (jaxdiff.train.run_points). The SRPO
driver uses this function, and its single-run fixtures are bit-identical (tests/test_regression.py).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax


def over_runs(fn: Callable, num_runs: int, in_axes: int | None | Sequence[int | None] = 0) -> Callable:
    """`jax.vmap(fn, in_axes)` over the run axis when num_runs > 1; with num_runs == 1 the same contract (inputs
    and outputs carry a leading axis of size 1 where in_axes says 0) computed without vmap. in_axes: 0 / None, or
    one of those per positional argument. Outputs always carry the run axis."""
    if num_runs > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def single(*args: Any) -> Any:
        axes = in_axes if isinstance(in_axes, (list, tuple)) else [in_axes] * len(args)
        if len(axes) != len(args):
            raise ValueError(f"in_axes has {len(axes)} entries for {len(args)} arguments")
        squeezed = [a if ax is None else jax.tree.map(lambda x: x[0], a) for a, ax in zip(args, axes)]
        return jax.tree.map(lambda x: x[None], fn(*squeezed))

    return single
