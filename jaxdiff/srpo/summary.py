"""summary.json of an SRPO run (one or many runs): per-run results, per-sweep-point aggregates, and the plots."""
from __future__ import annotations

import os
from typing import Any

from jaxdiff.srpo.stages import SWEEPABLE
from jaxdiff.train import multirun, sweep

CURVES = {"behavior": ("loss", "grad_norm"), "critic": ("q_loss", "v_loss", "q_mean", "v_mean"),
          "policy": ("loss", "kl_term", "q_pi", "eval_return", "eval_score")}
_NOT_METRICS = {"stage", "step", "run", "seed", "steps_per_s", "eval_return", "eval_score", *SWEEPABLE}


def summarize(records: list[dict], points: list[dict], split: dict, stages, final_eval: list[dict] | None) -> dict:
    """{"runs": [...], "groups": [...]} in jaxdiff.train.multirun's format, with SRPO's per-stage final metrics
    and normalised scores added (per run, and sweep.aggregate per sweep point)."""
    last: dict[tuple[str, int], dict] = {}
    for r in records:
        if "run" in r and "stage" in r:
            last[(r["stage"], r["run"])] = {k: v for k, v in r.items() if k not in _NOT_METRICS}
    extra = []
    for k in range(len(points)):
        e: dict = {"stage_runs": {s: split[s][1][k] for s in stages},
                   "final_metrics": {s: last.get((s, split[s][1][k]), {}) for s in stages}}
        evals = [r for r in records if r.get("stage") == "policy" and r.get("run") == k and "eval_return" in r]
        if evals:
            best = max(evals, key=lambda r: r["eval_return"])
            e.update(best_eval_return=best["eval_return"], best_eval_score=best["eval_score"],
                     best_eval_step=best["step"], eval_curve=[[r["step"], r["eval_return"]] for r in evals])
        if final_eval is not None:
            ev = final_eval[k]
            e.update(final_eval_return=ev["mean_return"], final_eval_score=ev["normalized_score"], eval=ev)
        extra.append(e)
    out = multirun.summarize([], points, extra)
    for g in out["groups"]:
        for key in ("final_eval_score", "best_eval_score"):
            vals = [out["runs"][i].get(key) for i in g["runs"]]
            if vals and all(v is not None for v in vals):
                g[key] = sweep.aggregate(vals)
    return out


def write_plots(workdir: str, env: str, records: list[dict], stage_pts: dict, stages, dataset: Any,
                final_eval: list[dict] | None, points: list[dict], figure_states: tuple | None = None) -> None:
    """curves_<stage>.png per stage (mean +- std over seeds per sweep point) and, for toys, bandit.png: the
    behavior samples and the policy's action for one run (figure_states = (algos, behavior state, policy state)),
    every run's final action for many."""
    for stage in stages:
        recs = [r for r in records if r.get("stage") == stage]
        multirun.plot_groups(recs, stage_pts[stage], "step", list(CURVES[stage]),
                             os.path.join(workdir, f"curves_{stage}.png"),
                             title=f"SRPO {stage} - {env} ({len(stage_pts[stage])} runs)")
    if dataset.kind != "bandit":
        return
    from jaxdiff.srpo import plots

    path = os.path.join(workdir, "bandit.png")
    if figure_states is not None:
        plots.bandit_figure(*figure_states, dataset, path)
    elif final_eval is not None:
        plots.bandit_runs_figure([e["action"] for e in final_eval], points, dataset, path)
