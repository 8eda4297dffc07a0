"""benchmarks/gpu_report.py: the FLOP counts and peak table (pure), and `--smoke` end to end in a subprocess.

The smoke run is the CI guard of the one-command accelerator report: every case must run (same code paths as the
full mode, tiny sizes, CPU) and write a JSON record and a markdown table with finite figures where measured.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from conftest import ROOT, launcher_env

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import device_peaks  # noqa: E402
import flops  # noqa: E402

EXPECTED = ["srpo_behavior_hopper", "srpo_critic_hopper", "srpo_policy_hopper", "srpo_behavior+critic_hopper",
            "qvpo_update",
            "qvpo_online_step_hopper", "srpo_act_b1", "dpm_solver15_b1", "qvpo_act_best_of_4_b1",
            "srpo_behavior_hopper_8seeds", "qvpo_update_8seeds"]


def test_flop_counts_follow_the_layer_sizes():
    assert flops.dense(4, 3, 5) == 2 * 4 * 3 * 5
    assert flops.mlp(2, (3, 4, 1)) == 2 * 2 * (3 * 4 + 4 * 1)
    s = dict(obs_dim=11, action_dim=3, behavior_batch=2048, behavior_width=256, behavior_blocks=3)
    # Paper behavior step: ~20 GFLOP, dominated by the 3 residual blocks (256 -> 1024 -> 256), trained (3x).
    blocks = 3 * 3 * 2048 * 2 * (2 * 256 * 1024)
    assert blocks < flops.srpo_behavior_update(s) < 1.05 * blocks
    q = dict(obs_dim=11, action_dim=3, actor_hidden=256, actor_layers=3, critic_hidden=(256, 256, 256), T=20,
             batch=256, k_t=4, k_b=4, n_d=64, chosen=1, n_uniform=10, entropy_rows=True)
    assert 90e9 < flops.qvpo_update(q) < 120e9  # the sampling chains: 256 x 68 rows x 20 steps of the actor MLP


def test_peak_table_lookup():
    assert device_peaks.peaks_for("NVIDIA H200")["name"] == "H200"
    assert device_peaks.peaks_for("NVIDIA GH200 480GB")["name"] == "GH200"
    assert device_peaks.peaks_for("NVIDIA H100 PCIe")["name"] == "H100 PCIe"
    assert device_peaks.peaks_for("NVIDIA L40S")["name"] == "L40S"
    assert device_peaks.peaks_for("NVIDIA L4")["name"] == "L4"
    assert device_peaks.peaks_for("cpu", "cpu") is None and device_peaks.peaks_for("Mystery GPU") is None
    h200 = device_peaks.peaks_for("NVIDIA H200")
    assert device_peaks.reference_peak(h200, None) == ("tf32", h200["tf32"])
    assert device_peaks.reference_peak(h200, "float32") == ("float32", h200["float32"])
    assert device_peaks.reference_peak(device_peaks.peaks_for("Tesla V100-SXM2-16GB"), None)[0] == "float32"
    assert device_peaks.reference_peak(None, None) == ("n/a", None)


def _finite_pos(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_smoke_report_writes_json_and_markdown(tmp_path):
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_report.py"), "--smoke",
                          f"--json={js}", f"--md={md}", "--budget_s=600"],
                         cwd=ROOT, env=launcher_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rec = json.loads(js.read_text())
    meta = rec["meta"]
    assert meta["mode"] == "smoke" and meta["platform"] == "cpu" and meta["peaks_tflops"] is None
    assert meta["reference_peak"] == "n/a" and _finite_pos(meta["wall_s"])
    print(f"smoke wall time {meta['wall_s']:.1f} s")
    cases = {c["name"]: c for c in rec["cases"]}
    assert list(cases) == EXPECTED
    for name, c in cases.items():
        assert c["status"] == "ok", (name, c.get("error"))
        for k in ("compile_s", "trace_lower_s", "seconds_per_call", "updates_per_s", "flops_per_update",
                  "tflops_per_s"):
            assert _finite_pos(c[k]), (name, k, c[k])
        assert c["frac_peak"] is None  # CPU: no peak in the table
    for name in ("srpo_behavior_hopper", "srpo_critic_hopper", "srpo_policy_hopper", "qvpo_update",
                 "qvpo_online_step_hopper", "srpo_behavior_hopper_8seeds", "qvpo_update_8seeds"):
        assert _finite_pos(cases[name]["projected_wall_s"]), name
    online = cases["qvpo_online_step_hopper"]
    assert 0.0 < online["host_share"] < 1.0
    assert all(_finite_pos(v) for v in online["phase_us"].values())
    assert online["transfers_per_step"] == {"host_to_device": 1, "device_to_host": 1}
    d = rec["derived"]
    assert _finite_pos(d["srpo_act_speedup_vs_dpm_solver"]["batch_1"])
    assert _finite_pos(d["seeds_8_vs_1_time_per_chunk"]["srpo_behavior"])
    assert _finite_pos(d["seeds_8_vs_1_time_per_chunk"]["qvpo_update"])
    assert _finite_pos(d["projected_paper_wall_s"]["srpo_hopper"])
    assert _finite_pos(d["srpo_behavior_critic_apart_over_together"])
    assert _finite_pos(d["projected_paper_wall_s"]["qvpo_hopper_1M_env_steps"])
    table = md.read_text()
    assert "| case | status | compile s |" in table
    for name in EXPECTED:
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert "| ok |" in row, row
    assert "SRPO act vs DPM-Solver-15" in table and "Projected paper budgets" in table
