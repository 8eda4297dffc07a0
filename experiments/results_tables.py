"""Render the markdown tables of README's Results section from the JSON files in results/.

  python experiments/results_tables.py            # prints markdown; README's Results section is this output

Reads results/srpo_*.json (experiments/offline_compare.py), results/online_*.json (experiments/online_results.py),
results/qvpo_bandit.json and results/srpo_toy_mixed.json when present. Numbers are mean +- std over seeds.
"""
from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")


def ms(x) -> str:
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.1f} ± {x.std():.1f}"


def offline_table(paths: list[str]) -> str:
    lines = ["| dataset (made here) | behavior updates @ batch | behavior model as policy | SRPO (beta) | BC | IQL-AWR |"
             " held-out eps loss |", "|---|---|---|---|---|---|---|"]
    for p in paths:
        s = json.load(open(p))
        name = s["env"].replace("jaxdiff/", "")
        for rung in s["ladder"]:
            srpo = "; ".join(f"{ms(v['final_score_per_seed'])} ({float(b):g})" for b, v in rung["srpo"].items())
            lines.append(f"| {name} | {rung['behavior_steps']} @ {s['settings']['behavior_batch']} | "
                         f"{ms(rung['behavior_policy_score_per_seed'])} | {srpo} | "
                         f"{ms(s['bc']['final_score_per_seed'])} | {ms(s['awr']['final_score_per_seed'])} | "
                         f"{np.mean(rung['heldout_eps_loss']):.3f} |")
    return "\n".join(lines)


def online_table(paths: list[str]) -> str:
    lines = ["| env | env steps | " + " | ".join(["QVPO", "SAC", "TD3"]) + " |", "|---|---|---|---|---|"]
    for p in paths:
        s = json.load(open(p))
        cells = []
        for name in ("qvpo", "sac", "td3"):
            a = s["algos"].get(name)
            cells.append("—" if a is None else f"{ms(a['final_eval_return_per_seed'])} (best {ms(a['best_eval_return_per_seed'])})")
        steps = max(a["env_steps"] or 0 for a in s["algos"].values())
        lines.append(f"| {s['env']} | {steps} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    out = []
    off = sorted(glob.glob(os.path.join(ROOT, "srpo_jaxdiff_*.json")))
    if off:
        out += ["Offline (normalised score, 0 = random policy, 100 = the expert snapshot; final policies, 3 seeds, "
                "10 fixed evaluation episodes each):", "", offline_table(off), ""]
    onl = sorted(glob.glob(os.path.join(ROOT, "online_*.json")))
    if onl:
        out += ["Online (evaluation return at the last step, mean ± std over seeds; best evaluation in brackets):", "",
                online_table(onl), ""]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
