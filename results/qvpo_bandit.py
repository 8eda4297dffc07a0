r"""QVPO's Fig. 2 on the 3-peak bandit: with vs without the entropy term, per seed. Writes results/qvpo_bandit.json
and results/qvpo_bandit.png from ONE command (run from the repository root):

  python results/qvpo_bandit.py                 # the launcher's bandit preset, --num_seeds=4 (8 runs, one process)
  python results/qvpo_bandit.py --num_seeds=8   # same, seeds 0-7 -> results/qvpo_bandit.seeds8.{json,png}

It runs `python experiments/qvpo_online.py --num_seeds=N --workdir=runs/qvpo_bandit_N --overwrite` (the preset in
PRESETS["bandit"]; with --bandit_compare, the default, the launcher sweeps entropy_alpha over [preset, 0]), then
turns the launcher's summary.json into the JSON here (per seed: the peak most final policy samples are nearest to,
the fraction within 2 std of the best peak, the mean sample reward, for both variants; the settings; hardware;
wall time; the command) and copies its bandit_samples.png. Extra arguments go to the launcher.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001
        return platform.processor() or "unknown"


def main(argv: list[str]) -> None:
    num_seeds = 4
    rest = []
    for a in argv:
        if a.startswith("--num_seeds="):
            num_seeds = int(a.split("=", 1)[1])
        else:
            rest.append(a)
    workdir = os.path.join("runs", f"qvpo_bandit_{num_seeds}")
    cmd = [sys.executable, "experiments/qvpo_online.py", f"--num_seeds={num_seeds}", f"--workdir={workdir}",
           "--overwrite", *rest]
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.time() - t0
    with open(os.path.join(ROOT, workdir, "summary.json")) as f:
        s = json.load(f)
    b = s["bandit"]
    best = int(max(range(len(b["peaks"]["heights"])), key=lambda i: b["peaks"]["heights"][i]))
    variants: dict[str, list] = {}
    for r in b["runs"]:
        name = "with_entropy" if r["entropy_alpha"] > 0 else "without_entropy"
        counts = r["nearest_peak_counts"]
        peak = int(max(range(len(counts)), key=lambda i: counts[i]))
        variants.setdefault(name, []).append({
            "seed": r["seed"], "entropy_alpha": r["entropy_alpha"], "peak_reached": peak,
            "on_best_peak": peak == best and r["best_peak_fraction"] > 0.5,
            "fraction_near_best": round(r["best_peak_fraction"], 4), "nearest_peak_counts": counts,
            "mean_sample_reward": round(r["mean_sample_reward"], 4)})
    summary = {name: {"on_best_peak": sum(v["on_best_peak"] for v in vs), "of": len(vs)} for name, vs in variants.items()}
    tag = "" if num_seeds == 4 else f".seeds{num_seeds}"
    out = {
        "experiment": "QVPO Fig. 2: 3-peak continuous bandit, with vs without the diffusion entropy term",
        "command": "python results/qvpo_bandit.py" + (f" --num_seeds={num_seeds}" if num_seeds != 4 else "")
                   + "".join(f" {a}" for a in rest),
        "launcher_command": "python " + " ".join(cmd[1:]),
        "definitions": {
            "peak_reached": "the peak most of the final policy's 1000 samples (raw policy samples, not best-of-k) "
                            "are nearest to (index into peaks)",
            "fraction_near_best": "fraction of those samples within 2 std of the best peak's centre",
            "on_best_peak": "peak_reached == best and fraction_near_best > 0.5 (the test's criterion)",
            "mean_sample_reward": "mean true reward of those samples"},
        "summary": summary,
        "runs": variants,
        "settings": {"peaks": b["peaks"], "best_peak": best, "runner": s["runner"], "agent_config": s["agent_config"],
                     "points": s["points"]},
        "hardware": {"cpu": _cpu(), "cores": os.cpu_count(), "devices": s.get("devices"),
                     "note": "CPU shared with another long-running job (run under nice -n 10)"},
        "wall_time_s": round(wall, 1),
        "launcher_wall_time_s": s.get("wall_time_s"),
        "train_steps_per_s": s.get("train_steps_per_s"),
    }
    path = os.path.join(ROOT, "results", f"qvpo_bandit{tag}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    shutil.copyfile(os.path.join(ROOT, workdir, "bandit_samples.png"), os.path.join(ROOT, "results", f"qvpo_bandit{tag}.png"))
    print(json.dumps(summary), "\nwrote", path)


if __name__ == "__main__":
    main(sys.argv[1:])
