"""Launcher smoke run: QVPO on Hopper-v5 for a few hundred steps (tiny n_d and nets), then damage its newest
checkpoint and resume it (from the older one, saying so in one line).

Runs experiments/qvpo_online.py in subprocesses, exactly as a user would; they use the test session's persistent
XLA compilation cache (tests/conftest.py), so the resumed run does not compile again.
"""
import json
import math
import os
import re
import subprocess
import sys

import pytest
from conftest import launcher_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = [
    "--env=Hopper-v5", "--warmup_steps=100", "--eval_every=150", "--eval_episodes=2", "--log_every=50",
    "--checkpoint_every=150", "--buffer_size=1000", "--max_episode_steps=100", "--n_d=2", "--k_b=2", "--k_t=2",
    "--k_eval=2", "--batch_size=32", "--diffusion_steps=5", "--actor_hidden=32", "--critic_hidden=32,32",
    "--progress=false",
]


def _launch(workdir, *extra):
    env = launcher_env()
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "qvpo_online.py"), f"--workdir={workdir}", *TINY_FLAGS,
           *extra]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert not re.search(r"^I\d{4} ", p.stderr, re.M), p.stderr[-3000:]  # no orbax INFO lines by default
    assert "Traceback" not in p.stderr and "Event loop is closed" not in p.stderr
    return p.stdout, p.stderr


@pytest.mark.slow
def test_hopper_smoke_and_resume(tmp_path):
    wd = tmp_path / "run"
    out, _ = _launch(wd, "--total_steps=300")
    line = next(ln for ln in out.splitlines() if ln.startswith("summary: "))
    assert json.loads(line[len("summary: "):])["env_steps"] == 300  # the printed summary is JSON
    recs = [json.loads(x) for x in open(wd / "metrics.jsonl")]
    train = [r for r in recs if "agent/critic_loss" in r]
    evals = [r for r in recs if "eval/return_mean" in r]
    assert train and [r["env_step"] for r in evals] == [150, 300]
    for r in train + evals:
        for k, v in r.items():
            assert v is None or (isinstance(v, (int, float)) and math.isfinite(v)), (k, v)
    assert train[-1]["updates"] == 300 - 100 + 1
    for f in ("summary.json", "curves.png"):
        assert (wd / f).exists()
    assert sorted(os.listdir(wd / "checkpoints")) == ["150", "300"]

    # the newest checkpoint's data file is truncated: --resume says so in one line and continues from step 150
    data = [os.path.join(r, f) for r, _, fs in os.walk(wd / "checkpoints" / "300" / "state") for f in fs
            if r.endswith(os.sep + "d")]
    with open(data[0], "r+b") as f:
        f.truncate(10)
    out, err = _launch(wd, "--total_steps=450", "--resume")
    assert "resuming from step 150 of" in out
    assert len([ln for ln in err.splitlines() if "skipping checkpoint step 300" in ln and "truncated" in ln]) == 1
    summary = json.load(open(wd / "summary.json"))
    assert summary["resumed_from"] == 150 and summary["env_steps"] == 450
    recs = [json.loads(x) for x in open(wd / "metrics.jsonl")]
    steps = [r["env_step"] for r in recs if "agent/critic_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 450
    assert [r["updates"] for r in recs if "agent/critic_loss" in r][-1] == 450 - 100 + 1
    assert summary["agent_config"]["n_d"] == 2 and summary["replay_saved_in_checkpoints"] is True

    # the trained policy loads back from the run directory alone
    import jax
    import numpy as np

    import jaxdiff

    algo, state, _ = jaxdiff.load_state(str(wd))
    assert int(state.step) == 450 - 100 + 1 and algo.config.n_d == 2 and algo.obs_dim == 11
    act = jaxdiff.load_policy(str(wd))
    a = np.asarray(act(np.zeros((4, 11), np.float32), jax.random.PRNGKey(0)))
    assert a.shape == (4, 3) and np.all(np.abs(a) <= 1.0)
