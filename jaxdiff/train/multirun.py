"""Outputs of many runs trained together: grouping runs by sweep point, mean-and-spread curves, the summary.

A run is a point of `sweep.grid`: {"seed": s, name: value, ...}. Runs that differ only in the seed form a group
(one sweep point); curves show each group's mean with a shaded +-1 std band over its seeds, and summary.json gives
per-run scores plus `sweep.aggregate` (mean, std, IQM, bootstrap CI) per group. Nothing here depends on a driver.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from jaxdiff.train import sweep


def swept_names(points: list[dict]) -> list[str]:
    """The hyperparameter names of the points (everything but the seed), in order."""
    return [k for k in points[0] if k != "seed"] if points else []


def point_label(point: dict) -> str:
    """A sweep point as text, e.g. "entropy_alpha=0.05" ("all seeds" when only seeds vary)."""
    items = [f"{k}={v:g}" for k, v in point.items() if k != "seed"]
    return ", ".join(items) if items else "all seeds"


def groups(points: list[dict]) -> list[tuple[dict, list[int]]]:
    """[(hyperparameter point without the seed, run indices)], in first-appearance order."""
    out: dict[tuple, tuple[dict, list[int]]] = {}
    for i, p in enumerate(points):
        hp = {k: v for k, v in p.items() if k != "seed"}
        out.setdefault(tuple(sorted(hp.items())), (hp, []))[1].append(i)
    return list(out.values())


def select_run(points: list[dict], run: int | None = None, seed: int | None = None, **where: float) -> int:
    """Index of one run: run=k directly, or the single run matching seed (and swept values given in where)."""
    if run is not None:
        if not 0 <= run < len(points):
            raise ValueError(f"run={run} out of range: this checkpoint holds {len(points)} runs")
        return run
    if seed is None and not where:
        raise ValueError(f"this checkpoint holds {len(points)} runs: choose one with run=k or seed=s "
                         f"(runs: {points})")
    match = [i for i, p in enumerate(points)
             if (seed is None or p["seed"] == seed) and all(np.isclose(p.get(k, np.nan), v) for k, v in where.items())]
    if len(match) != 1:
        found = [points[i] for i in match]
        raise ValueError(f"seed={seed}, {where} matches {len(match)} runs {found or points}; add the swept values "
                         f"(e.g. {swept_names(points)[0] + '=...' if swept_names(points) else 'run=k'}) or use run=k")
    return match[0]


def run_records(records: Iterable[dict], run: int) -> list[dict]:
    """The records of run k."""
    return [r for r in records if r.get("run") == run]


def run_summary(records: list[dict], extra: dict) -> dict:
    """One run's scores from its records: extra plus final / best evaluation return and the eval curve."""
    evals = [r for r in records if "eval/return_mean" in r]
    out = dict(extra)
    if evals:
        best = max(evals, key=lambda r: r["eval/return_mean"])
        out.update(
            final_eval_return=evals[-1]["eval/return_mean"],
            final_eval_std=evals[-1]["eval/return_std"],
            best_eval_return=best["eval/return_mean"],
            best_eval_step=best["env_step"],
            eval_curve=[[r["env_step"], r["eval/return_mean"]] for r in evals],
        )
    return out


def summarize(records: list[dict], points: list[dict], per_run_extra: list[dict] | None = None) -> dict:
    """{"runs": [per-run scores], "groups": [per sweep point: aggregate of final and best eval return]}."""
    runs = [run_summary(run_records(records, k), {"run": k, **p, **(per_run_extra[k] if per_run_extra else {})})
            for k, p in enumerate(points)]
    out_groups = []
    for hp, idx in groups(points):
        g = {"point": hp, "label": point_label(hp), "runs": idx, "seeds": [points[i]["seed"] for i in idx]}
        for key in ("final_eval_return", "best_eval_return"):
            vals = [runs[i][key] for i in idx if runs[i].get(key) is not None]
            if vals:
                g[key] = sweep.aggregate(vals)
        out_groups.append(g)
    return {"runs": runs, "groups": out_groups}


def _band(records: list[dict], idx: list[int], x_key: str, y_key: str):
    """x, mean, std over the group's runs at each x every run of the group logged (x where some miss are skipped)."""
    per_run = []
    for k in idx:
        per_run.append({r[x_key]: r[y_key] for r in records
                        if r.get("run") == k and r.get(y_key) is not None and x_key in r})
    xs = sorted(set.intersection(*(set(d) for d in per_run))) if per_run else []
    if not xs:
        return None
    ys = np.asarray([[d[x] for x in xs] for d in per_run], np.float64)
    return np.asarray(xs), ys.mean(0), ys.std(0)


def plot_groups(records: list[dict], points: list[dict], x_key: str, y_keys: list[str], path: str,
                title: str = ""):
    """One subplot per metric; per sweep point the mean over seeds with a shaded +-1 std band (markers on short
    series, labelled axes, as logging.plot_curves). Returns the (closed) figure, or None."""
    from jaxdiff.train.logging import style_axis

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_keys = [k for k in y_keys if any(k in r for r in records)]
    if not y_keys:
        return
    gs = groups(points)
    fig, axes = plt.subplots(1, len(y_keys), figsize=(4.2 * len(y_keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], y_keys):
        for hp, idx in gs:
            band = _band(records, idx, x_key, key)
            if band is None:
                continue
            xs, m, s = band
            (line,) = ax.plot(xs, m, label=f"{point_label(hp)} (n={len(idx)})", **style_axis(ax, x_key, key, len(xs)))
            if len(idx) > 1:
                ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.2, linewidth=0)
        style_axis(ax, x_key, key, 0)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
