"""Run outputs: JSON-lines metrics, summary.json, progress (a bar on a terminal, timed lines otherwise), curves.

JSON written here is always valid JSON: NaN and +-inf become null (`plain`), and json.dumps runs with
allow_nan=False so a bare NaN can never slip through.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Iterable

import numpy as np


def plain(v: Any) -> Any:
    """v with numpy / jax values as Python ones and non-finite floats (NaN, +-inf) as None."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    arr = np.asarray(v)
    if arr.ndim == 0:
        x = arr.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None  # NaN and +-inf alike: JSON has no such numbers, and a huge stand-in would be plotted
        return x
    return [plain(x) for x in arr]


def dumps(obj: Any, **kwargs) -> str:
    """json.dumps of plain(obj): valid JSON whatever floats obj holds."""
    return json.dumps(plain(obj), allow_nan=False, **kwargs)


_NOT_SCALARS = {"step", "env_step", "run", "stage", "seed"}


def tensorboard_scalars(record: dict) -> tuple[int | None, dict[str, float]]:
    """(step, {tag: value}) of a metrics record: numeric finite fields, tagged `[stage/][run k/]name`."""
    step = record.get("env_step", record.get("step"))
    prefix = "".join(f"{p}/" for p in (record.get("stage"), None if "run" not in record else f"run{record['run']}")
                     if p is not None)
    out = {}
    for k, v in record.items():
        if k in _NOT_SCALARS or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        out[prefix + k] = float(v)
    return (None if step is None else int(step)), out


class MetricsWriter:
    """Appends one JSON object per line; reopening in append mode makes resumed runs continue the same file.

    tensorboard_dir: also write every record's numbers as TensorBoard scalars there (tensorboardX, an optional
    dependency: pip install "jaxdiff[tensorboard]"), at the record's step / env_step."""

    def __init__(self, path: str, tensorboard_dir: str | None = None):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ValueError("--tensorboard needs the tensorboardX package: pip install 'jaxdiff[tensorboard]'"
                                 ) from None
            self._tb = SummaryWriter(tensorboard_dir, flush_secs=30)
        self._f = open(path, "a", buffering=1)

    def write(self, record: dict) -> None:
        """Append one record (and its scalars to TensorBoard)."""
        self._f.write(dumps(record) + "\n")
        if self._tb is not None:
            step, scalars = tensorboard_scalars(plain(record))
            for tag, v in scalars.items():
                self._tb.add_scalar(tag, v, step)

    def close(self) -> None:
        """Flush and close the writer(s)."""
        self._f.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str) -> list[dict]:
    """The records of a metrics.jsonl file ([] when it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_json(path: str, obj: dict) -> None:
    """Write obj to path as valid JSON (NaN / inf as null)."""
    with open(path, "w") as f:
        f.write(dumps(obj, indent=2, sort_keys=True))


class LineProgress:
    """tqdm's update / set_postfix / close, printing one line every `interval` seconds instead of a bar.

    For stderr that is not a terminal (nohup, batch jobs, CI): `desc: step n/total (p %), x steps/s, ETA ..., k=v`.
    The interval defaults to 30 s; JAXDIFF_PROGRESS_SECONDS overrides it (0 = a line per update, for tests)."""

    def __init__(self, total: int, desc: str, initial: int = 0, interval: float | None = None, stream=None):
        env = os.environ.get("JAXDIFF_PROGRESS_SECONDS")
        self.interval = float(env) if interval is None and env else (30.0 if interval is None else interval)
        self.total, self.desc, self.n, self.stream = total, desc, initial, stream or sys.stderr
        self._t0 = self._last = time.perf_counter()
        self._n0 = initial
        self.postfix: dict = {}
        # at once, so a log shows the stage started (its first chunk may compile for minutes)
        print(f"{desc}: starting at step {initial}/{total}", file=self.stream, flush=True)

    def set_postfix(self, ordered_dict: dict | None = None, **kwargs) -> None:
        """Metrics shown at the end of the next progress line."""
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def line(self) -> str:
        """The current progress line."""
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = (self.n - self._n0) / elapsed
        eta = (self.total - self.n) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta_s = "?" if not math.isfinite(eta) else time.strftime("%H:%M:%S", time.gmtime(eta))
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: step {self.n}/{self.total} ({pct:.0f} %), {rate:.1f} steps/s, ETA {eta_s}{extra}"

    def update(self, n: int = 1) -> None:
        """Advance by n steps; print a line when the interval has passed."""
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to release (the lines are already printed)."""
        pass


def progress(total: int, desc: str, initial: int = 0, disable: bool | None = None):
    """A tqdm bar for a stage on a terminal; otherwise (disable=None and stderr not a terminal) a LineProgress that
    prints a line every ~30 s. disable=True shows nothing, disable=False forces the bar."""
    if disable is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return LineProgress(total, desc, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, initial=initial, dynamic_ncols=True, disable=disable, leave=True)


MARKER_MAX_POINTS = 30  # series this short (evaluations, short runs) get a marker per point: one point is visible


def style_axis(ax, x_key: str, y_key: str, n_points: int) -> dict:
    """Axis labels for a curve (x: the step key, y: the metric) and the plot kwargs for a series of n points."""
    ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel(y_key)
    ax.set_title(y_key)
    return {"marker": "o", "markersize": 4} if n_points <= MARKER_MAX_POINTS else {}


def plot_curves(records: Iterable[dict], x_key: str, y_keys: list[str], path: str, title: str = ""):
    """One subplot per metric, plotted against x_key; records missing a key are skipped for that key.

    Short series (<= MARKER_MAX_POINTS, e.g. one final evaluation) are drawn with markers; both axes are
    labelled. Returns the (closed) figure, or None when no record has any of y_keys."""
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
        style = style_axis(ax, x_key, k, len(pts))
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, **style)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
