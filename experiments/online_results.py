"""Gather finished online runs (qvpo_online.py --num_seeds=N workdirs) into one results JSON and one figure.

  python experiments/online_results.py --env=InvertedPendulum-v5 \
      --runs=qvpo:runs/cmp_qvpo_ip,sac:runs/cmp_sac_ip,td3:runs/cmp_td3_ip --out=results/online_InvertedPendulum-v5.json

Reads each workdir's summary.json (per-run final / best evaluation, the agent config, wall time) and metrics.jsonl
(evaluation curves), and writes per-seed scores, mean +- std curves, settings, wall times, hardware and the
commands (from each workdir's command.txt when the run was started by a script that wrote it).
"""
from __future__ import annotations

import json
import os
import platform
import sys

import numpy as np
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jaxdiff.train import cli  # noqa: E402

flags.DEFINE_string("env", None, "Env id (a title only).")
flags.DEFINE_list("runs", None, "name:workdir pairs, e.g. qvpo:runs/a,sac:runs/b.")
flags.DEFINE_string("out", None, "Results JSON; the PNG goes beside it.")
FLAGS = flags.FLAGS


def eval_curves(workdir: str) -> dict[int, list[tuple[int, float]]]:
    """run index -> [(env_step, eval return mean)] from metrics.jsonl (single runs have no 'run' field)."""
    curves: dict[int, list] = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "eval/return_mean" in r:
                curves.setdefault(int(r.get("run", 0)), []).append((int(r["env_step"]), float(r["eval/return_mean"])))
    return curves


def gather(name: str, workdir: str) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        s = json.load(f)
    curves = eval_curves(workdir)
    runs = s.get("runs") or [{"run": 0, "seed": s.get("seed"), "final_eval_return": s.get("final_eval_return"),
                              "best_eval_return": s.get("best_eval_return")}]
    cmd_path = os.path.join(workdir, "command.txt")
    steps = sorted({st for c in curves.values() for st, _ in c})
    table = np.array([[dict(curves[r]).get(st, np.nan) for st in steps] for r in sorted(curves)])
    return {
        "workdir": workdir, "algo": s.get("algo", name), "agent_config": s.get("agent_config"), "runner": s.get("runner"),
        "seeds": [r.get("seed") for r in runs],
        "final_eval_return_per_seed": [r.get("final_eval_return") for r in runs],
        "best_eval_return_per_seed": [r.get("best_eval_return") for r in runs],
        "final_mean": float(np.mean([r.get("final_eval_return") for r in runs])),
        "final_std": float(np.std([r.get("final_eval_return") for r in runs])),
        "curve": {"env_step": steps, "mean": np.nanmean(table, 0).tolist(), "std": np.nanstd(table, 0).tolist(),
                  "per_seed": table.tolist()},
        "wall_time_s": s.get("wall_time_s"), "train_steps_per_s": s.get("train_steps_per_s"),
        "env_steps": s.get("env_steps"),
        "command": open(cmd_path).read().strip() if os.path.exists(cmd_path) else None,
    }


def main(argv):
    del argv
    out = {"experiment": f"online RL on {FLAGS.env}", "env": FLAGS.env, "algos": {},
           "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
           "gather_command": "python " + " ".join(sys.argv)}
    for item in FLAGS.runs:
        name, _, workdir = item.partition(":")
        if not workdir or not os.path.exists(os.path.join(workdir, "summary.json")):
            raise cli.FlagError(f"--runs: {item!r} is not name:workdir of a finished online run (no summary.json)")
        out["algos"][name] = gather(name, workdir)
    with open(FLAGS.out, "w") as f:
        json.dump(out, f, indent=1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, a in out["algos"].items():
        c = a["curve"]
        ax.errorbar(c["env_step"], c["mean"], c["std"], marker="o", capsize=3, label=f"{name.upper()} ({len(a['seeds'])} seeds)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("evaluation return (mean +- std over seeds)")
    ax.set_title(FLAGS.env)
    ax.legend()
    fig.tight_layout()
    fig.savefig(FLAGS.out[:-5] + ".png", dpi=110)
    print(json.dumps({k: (v["final_mean"], v["final_std"]) for k, v in out["algos"].items()}))


if __name__ == "__main__":
    flags.mark_flags_as_required(["env", "runs", "out"])
    cli.run(main)
