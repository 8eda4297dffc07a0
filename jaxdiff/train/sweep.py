"""Many runs in one process: seeds x hyperparameter grids on a leading axis, sharded over devices.

A "run" is one (seed, hyperparameter point). Train states of all runs are stacked on axis 0 and the pure training
chunk is `jax.vmap`ped over that axis; with several devices the axis is sharded (Mesh + NamedSharding), so each
device trains its share of runs and nothing else changes. Multi-host: call `jax.distributed.initialize()` first on
every host; `jax.devices()` then spans all hosts and `make_mesh` uses them all (see BUILD_NOTES.md).
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

RUN_AXIS = "runs"


def parse_values(text: str | float | Sequence[float], name: str = "value") -> list[float]:
    """'0.05,0.1,0.2' -> [0.05, 0.1, 0.2]; a number or a list passes through. Clear error on junk."""
    if isinstance(text, (int, float)):
        return [float(text)]
    if not isinstance(text, str):
        return [float(v) for v in text]
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name}={text!r}: expected a number or a comma-separated list like 0.05,0.1,0.2") from None
    if not vals:
        raise ValueError(f"--{name} is empty")
    return vals


def grid(num_seeds: int, base_seed: int = 0, **sweeps: Sequence[float]) -> list[dict]:
    """Cross product of seeds and hyperparameter lists; each point is {"seed": int, name: float, ...}.

    Seeds vary fastest, so runs [k * num_seeds, (k+1) * num_seeds) share one hyperparameter point.
    """
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    names = list(sweeps)
    points = []
    for values in itertools.product(*(sweeps[n] for n in names)):
        for s in range(num_seeds):
            points.append({"seed": base_seed + s, **{n: float(v) for n, v in zip(names, values)}})
    return points


def stacked(points: list[dict], name: str) -> jax.Array:
    """The values of one swept hyperparameter as a float32 array over runs."""
    return jnp.asarray([p[name] for p in points], jnp.float32)


def seed_keys(points: list[dict]) -> jax.Array:
    """One raw PRNG key per run, from its seed alone: run k equals a single-seed run with the same seed."""
    return jnp.stack([jax.random.PRNGKey(p["seed"]) for p in points])


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D device mesh with the run axis RUN_AXIS (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (RUN_AXIS,))


def pad_runs(n_runs: int, mesh: Mesh) -> int:
    """Number of runs rounded up to a multiple of the device count (padding runs are dropped afterwards)."""
    d = mesh.devices.size
    return -(-n_runs // d) * d


def shard_runs(tree: Any, mesh: Mesh) -> Any:
    """Place every leaf's leading (run) axis across the mesh; the leading size must divide by the device count."""
    sharding = NamedSharding(mesh, PartitionSpec(RUN_AXIS))

    def put(x):
        if x.shape[0] % mesh.devices.size:
            raise ValueError(
                f"{x.shape[0]} runs do not split over {mesh.devices.size} devices; pad with pad_runs()")
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


def pad_tree(tree: Any, n: int) -> Any:
    """Repeat the last run so the leading axis has length n (results of padded runs are discarded)."""
    def pad(x):
        extra = n - x.shape[0]
        return x if extra == 0 else jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


def run_slice(tree: Any, k: int) -> Any:
    """Run k of a stacked tree (e.g. to save or evaluate seed k alone)."""
    return jax.tree.map(lambda x: x[k], tree)


def aggregate(scores: Sequence[float], n_boot: int = 2000, seed: int = 0) -> dict:
    """mean, std, IQM (mean of the middle 50 %) and a 95 % bootstrap confidence interval of the mean."""
    x = np.asarray(scores, np.float64)
    out = {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0}
    xs = np.sort(x)
    lo, hi = int(np.floor(0.25 * x.size)), int(np.ceil(0.75 * x.size))
    out["iqm"] = float(xs[lo:hi].mean()) if hi > lo else float(xs.mean())
    rng = np.random.default_rng(seed)
    boots = rng.choice(x, size=(n_boot, x.size), replace=True).mean(axis=1)
    out["ci95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
    return out
