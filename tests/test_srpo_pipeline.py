"""SRPO end to end: MuJoCo on a tiny local Minari dataset (all stages, eval, kill + resume), stage reuse,
determinism, and the launcher (smoke run and clear errors)."""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from test_minari_data import make_tiny_dataset
from conftest import SRPO_TINY as TINY, kill_after_save, launch, srpo_tiny_flags

from jaxdiff import srpo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _strip(summary: dict) -> dict:
    """A summary without what legitimately differs between runs (wall-clock timing, paths)."""
    return {k: v for k, v in summary.items() if k not in ("timing", "workdir", "states")}


def _params_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_mujoco_all_stages_eval_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    make_tiny_dataset("test/hopper/tiny-v0", episodes=6, max_steps=40)
    cfg = srpo.configure("test/hopper/tiny-v0", behavior_steps=200, critic_steps=200, policy_steps=200, **TINY)
    assert cfg.beta == 0.05  # hopper-medium's preset is the fallback for an unknown hopper dataset
    run = srpo.RunConfig(env="test/hopper/tiny-v0", workdir=str(tmp_path / "a"), log_every=50,
                             checkpoint_every=100, eval_every=100, eval_episodes=2, progress_bar=False)
    full = srpo.run(run, cfg)
    ev = full["runs"][0]["eval"]  # one run: a list of one, the layout of many
    assert full["num_runs"] == 1 and full["points"] == [{"seed": 0}]
    assert ev["episodes"] == 2 and len(ev["returns"]) == 2
    assert ev["normalized_score"] == pytest.approx(100 * (ev["mean_return"] + 20.0) / 3220.0)  # the dataset's refs
    for stage in srpo.STAGES:
        assert full["stages"][stage]["steps"] == 200 and full["timing"][stage]["steps_per_s"] > 0
        assert os.path.exists(tmp_path / "a" / f"curves_{stage}.png")
    act = srpo.load_policy(str(tmp_path / "a"))
    assert act(np.zeros((3, 11), np.float32)).shape == (3, 3)

    # Kill the second run right after the critic's checkpoint at step 100, then resume it.
    restore_save = kill_after_save(monkeypatch, os.path.join("checkpoints", "critic"), 100)
    killed = run.__class__(**{**run.__dict__, "workdir": str(tmp_path / "b")})
    with pytest.raises(KeyboardInterrupt):
        srpo.run(killed, cfg)
    restore_save()
    with pytest.raises(ValueError, match="pass --resume"):
        srpo.run(killed, cfg)
    with pytest.raises(ValueError, match="different settings.*tau"):
        srpo.run(run.__class__(**{**killed.__dict__, "resume": True}), cfg.replace(tau=0.8))
    resumed = srpo.run(run.__class__(**{**killed.__dict__, "resume": True}), cfg)

    _params_equal(srpo.load_policy_state(str(tmp_path / "a")).params,
                  srpo.load_policy_state(str(tmp_path / "b")).params)
    assert _strip(resumed) == _strip(full)
    records = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
    critic_steps = [r["step"] for r in records if r["stage"] == "critic"]
    assert critic_steps == [50, 100, 150, 200]  # the replayed chunks replaced, not duplicated


@pytest.mark.slow
def test_toy_stages_reuse_and_determinism(tmp_path):
    cfg = srpo.configure("bandit-imbalanced", behavior_steps=60, critic_steps=40, policy_steps=40, **TINY)
    base = dict(env="bandit-imbalanced", log_every=20, checkpoint_every=0, eval_every=20, progress_bar=False,
                plots=False)  # checkpoints at each stage's end only: what stage reuse needs
    wd = str(tmp_path / "staged")
    with pytest.raises(ValueError, match="needs a finished behavior stage.*--stage=behavior first"):
        srpo.run(srpo.RunConfig(workdir=wd, stage="policy", **base), cfg)
    srpo.run(srpo.RunConfig(workdir=wd, stage="behavior", **base), cfg)
    srpo.run(srpo.RunConfig(workdir=wd, stage="critic", **base), cfg)
    staged = srpo.run(srpo.RunConfig(workdir=wd, stage="policy", **base), cfg)
    # a different beta only retrains the policy: (a) and (b) are reused from their checkpoints
    other = srpo.run(srpo.RunConfig(workdir=wd, stage="policy", overwrite=True, **base), cfg.replace(beta=5.0))
    assert other["runs"][0]["eval"]["action"] != staged["runs"][0]["eval"]["action"]

    one = srpo.run(srpo.RunConfig(workdir=str(tmp_path / "one"), **base), cfg)
    two = srpo.run(srpo.RunConfig(workdir=str(tmp_path / "two"), **base), cfg)
    assert _strip(one) == _strip(two)  # same seed, same summary
    assert one["runs"][0]["eval"]["action"] == staged["runs"][0]["eval"]["action"]  # staged == all-at-once



@pytest.mark.slow
def test_launcher_smoke(tmp_path):
    wd = tmp_path / "run"
    # the settings of test_toy_stages_reuse_and_determinism as flags: its compiled programs are in the cache
    res = launch("srpo_offline.py", "--behavior_steps=60", "--critic_steps=40", "--policy_steps=40", "--log_every=20",
                 "--checkpoint_every=0", "--eval_every=20", *srpo_tiny_flags(),
                 f"--workdir={wd}", "--beta=0.2")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert set(out["steps_per_s"]) == {"behavior", "critic", "policy"}
    summary = json.loads((wd / "summary.json").read_text())
    assert summary["config"]["beta"] == 0.2 and summary["config"]["behavior_steps"] == 60
    for f in ("metrics.jsonl", "config.json", "bandit.png", "curves_behavior.png", "curves_critic.png",
              "curves_policy.png"):
        assert (wd / f).exists(), f
    again = launch("srpo_offline.py", "--behavior_steps=40", f"--workdir={wd}")
    assert again.returncode == 1 and "pass --resume" in again.stderr


@pytest.mark.parametrize("args,message", [
    (["--env=nope"], "unknown --env 'nope'"),
    (["--env=hopper-medium"], "minari download mujoco/hopper/medium-v0"),
    (["--env=bandit-nope"], "unknown toy bandit"),
    (["--log_every=100", "--checkpoint_every=150"], "multiple of --log_every"),
])
def test_launcher_bad_input_is_one_clear_error(tmp_path, args, message):
    res = launch("srpo_offline.py", *args, f"--workdir={tmp_path / 'w'}", MINARI_DATASETS_PATH=str(tmp_path / "empty"))
    assert res.returncode == 1
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
