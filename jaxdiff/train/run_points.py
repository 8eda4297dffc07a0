"""Run points and their placement on devices: what every online driver does to go from a list of points to
stacked, padded, sharded states, whether the list holds one run or many.

A run point is {"seed": s, name: value, ...} (`sweep.grid`); a single run is `[{"seed": cfg.seed}]`. Run k is
initialised from PRNGKey(points[k]["seed"]) exactly as a lone run with that seed, then the swept values are written
into `state.hparams` (nothing else in a state depends on them). The run axis is padded to a multiple of the device
count (padding repeats the last run; its copies are dropped) and sharded over a 1-D 'runs' mesh; every jitted step
keeps that sharding (out_shardings), so each device trains its share of runs and nothing crosses devices.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxdiff.algorithm import Algorithm
from jaxdiff.train import hparams as hparams_lib
from jaxdiff.train import multirun, sweep


def default_points(points: list[dict] | None, seed: int) -> list[dict]:
    """points, or the single run [{"seed": seed}] when None."""
    return [{"seed": int(seed)}] if points is None else list(points)


def point_values(points: list[dict]) -> dict[str, np.ndarray]:
    """{swept name: float32 values over runs} (empty when only seeds vary)."""
    return {n: np.asarray([p[n] for p in points], np.float32) for n in multirun.swept_names(points)}


def check_points(algo: Algorithm, points: list[dict]) -> None:
    """Every point has a seed and the same names, and every swept name is a hyperparameter in algo's state."""
    if not points:
        raise ValueError("no runs")
    names = set(points[0])
    if "seed" not in names or any(set(p) != names for p in points):
        raise ValueError(f"run points must all have a seed and the same swept names, got {points}")
    hparams_lib.check_sweepable(jax.eval_shape(algo.init, jax.random.PRNGKey(0)), multirun.swept_names(points))


def same_points(saved: list[dict] | None, points: list[dict], workdir: str) -> None:
    """Refuse to resume a workdir whose checkpoint holds other runs (ValueError naming both)."""
    if saved is None or len(saved) != len(points) or any(
            set(a) != set(b) or any(not np.isclose(a[k], b[k]) for k in a) for a, b in zip(saved, points)):
        raise ValueError(f"cannot resume {workdir}: its checkpoint holds runs {saved}, this run asks for {points}")


class Placement:
    """The runs' layout on devices, and the one place that knows how a run axis is held while training.

    n real runs are padded to n_pad (a multiple of the device count) and sharded on axis 0; `map` is
    `jax.vmap` over that axis. One run on one device (n_pad == 1) is held WITHOUT the run axis while it trains,
    and `map` is the function itself: squeezing a size-1 run axis inside a jitted step is not bit-identical to the
    unbatched step (measured: SAC parameters differ after the second update; the first Adam step hides it) and an
    eager squeeze per step would copy the replay buffer, so the axis is dropped once (`start`) and added back only
    at the boundaries (`stack`: checkpoints, hooks, final_state, logs). Everything outside the loop sees runs
    stacked on axis 0 either way.
    """

    def __init__(self, num_runs: int, devices=None):
        self.mesh = sweep.make_mesh(devices)
        self.n = num_runs
        self.n_pad = sweep.pad_runs(num_runs, self.mesh)
        self.sharding = NamedSharding(self.mesh, PartitionSpec(sweep.RUN_AXIS))
        self.alone = self.n_pad == 1

    def init(self, init_one: Callable[[jax.Array], Any], points: list[dict]) -> Any:
        """States of the points in training form: init_one(PRNGKey(seed)) per run. One run: called eagerly, as a
        lone run always was (a jitted QVPO init rounds differently); many: jit(vmap(init_one)) (eager vmapped
        init dispatches op by op, which takes seconds for the diffusion nets), padded and sharded."""
        if self.alone:
            return init_one(jax.random.PRNGKey(points[0]["seed"]))
        return self.start(jax.jit(jax.vmap(init_one))(sweep.seed_keys(points)))

    def with_point_values(self, agent_states: Any, points: list[dict]) -> Any:
        """Algorithm states (training form) with each run's swept hyperparameters written into state.hparams."""
        values = point_values(points)
        if not values:
            return agent_states
        if self.alone:
            return hparams_lib.set_hparams(agent_states, {k: v[0] for k, v in values.items()})
        return hparams_lib.set_hparams(agent_states, {k: self.put_host(v) for k, v in values.items()})

    def start(self, tree: Any) -> Any:
        """Stacked tree of the n runs -> training form (padded and sharded; one run: the run axis dropped)."""
        if self.alone:
            return jax.tree.map(lambda x: x[0], tree)
        return sweep.shard_runs(sweep.pad_tree(tree, self.n_pad), self.mesh)

    def stack(self, tree: Any) -> Any:
        """Training form -> stacked tree of the n real runs (padding dropped; one run: the axis added back)."""
        if self.alone:
            return jax.tree.map(lambda x: jax.numpy.asarray(x)[None], tree)
        return tree if self.n_pad == self.n else jax.tree.map(lambda x: x[: self.n], tree)

    def put_host(self, x: np.ndarray) -> jax.Array:
        """Per-step host rows (n, ...) -> training form, in one transfer (padding repeats the last row)."""
        if self.alone:
            return jax.device_put(x[0])
        if self.n_pad > self.n:
            x = np.concatenate([x, np.repeat(x[-1:], self.n_pad - self.n, axis=0)], axis=0)
        return jax.device_put(x, self.sharding)

    def map(self, fn: Callable, in_axes: Any = 0) -> Callable:
        """fn over the run axis of the training form: jax.vmap(fn, in_axes), or fn itself for one run."""
        return fn if self.alone else jax.vmap(fn, in_axes=in_axes)

    def jit(self, fn: Callable, **kwargs) -> Callable:
        """jit whose every output keeps the runs sharding (so donated buffers are reused in place)."""
        return jax.jit(fn, **kwargs) if self.alone else jax.jit(fn, out_shardings=self.sharding, **kwargs)

    def host(self, x: jax.Array) -> np.ndarray:
        """A per-run array of the training form as numpy (n, ...) on this host (one run: no device op, the
        axis is added on the host; this runs every env step for the actions)."""
        return np.asarray(x)[None] if self.alone else to_host(self.stack(x))

    def layout(self, points: list[dict]) -> dict:
        """summary.json's description of the runs and devices."""
        return {"num_runs": self.n, "seeds": sorted({p["seed"] for p in points}),
                "sweep": {k: sorted({p[k] for p in points}) for k in multirun.swept_names(points)},
                "devices": int(self.mesh.devices.size), "padded_runs": self.n_pad}


def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) sharded array as a numpy array on this host."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def run_means(place: Placement, metrics_sum: dict, metrics_count: jax.Array, n: int) -> list[dict]:
    """Per run: mean of the metrics summed since the last reset ({} where no update ran)."""
    sums = {k: place.host(v) for k, v in metrics_sum.items()}
    counts = place.host(metrics_count)
    return [{k: float(v[i]) / int(counts[i]) for k, v in sums.items()} if counts[i] else {} for i in range(n)]
