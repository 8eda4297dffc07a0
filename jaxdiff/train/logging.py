"""Run outputs: JSON-lines metrics, summary.json, a progress bar, learning-curve plots."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

import numpy as np


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    arr = np.asarray(v)
    if arr.ndim == 0:
        x = arr.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None if math.isnan(x) else (1e308 if x > 0 else -1e308)
        return x
    return [_plain(x) for x in arr]


class MetricsWriter:
    """Appends one JSON object per line; reopening in append mode makes resumed runs continue the same file."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._f = open(path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(_plain(record)) + "\n")

    def close(self) -> None:
        self._f.close()


def read_metrics(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_json(path: str, obj: dict) -> None:
    with open(path, "w") as f:
        json.dump(_plain(obj), f, indent=2, sort_keys=True)


def progress(total: int, desc: str, initial: int = 0, disable: bool | None = None):
    """A tqdm bar for a stage; disabled automatically when stderr is not a terminal unless forced."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, dynamic_ncols=True, disable=disable, leave=True)


def plot_curves(records: Iterable[dict], x_key: str, y_keys: list[str], path: str, title: str = "") -> None:
    """One subplot per metric, plotted against x_key; records missing a key are skipped for that key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(records)
    y_keys = [k for k in y_keys if any(k in r for r in records)]
    if not y_keys:
        return
    fig, axes = plt.subplots(1, len(y_keys), figsize=(4 * len(y_keys), 3.2), squeeze=False)
    for ax, k in zip(axes[0], y_keys):
        pts = [(r[x_key], r[k]) for r in records if k in r and x_key in r and r[k] is not None]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys)
        ax.set_xlabel(x_key)
        ax.set_title(k)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
