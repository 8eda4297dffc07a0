"""Dataset making: rollouts -> Minari (hdf5) -> reload; replay buffer -> episodes; the collect launcher."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import launcher_env

from jaxdiff.data import collect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def minari_path(tmp_path, monkeypatch):
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


def test_default_dataset_id():
    assert collect.default_dataset_id("Hopper-v5", "medium-replay") == "jaxdiff/hopper/medium-replay-v0"
    assert collect.default_dataset_id("HalfCheetah-v5", "expert") == "jaxdiff/halfcheetah/expert-v0"


def test_rollouts_write_and_reload_as_minari(minari_path):
    import minari

    episodes = collect.rollout_episodes("Hopper-v5", None, 150, seed=3)
    assert sum(len(e["rewards"]) for e in episodes) == 150
    for e in episodes:
        assert e["observations"].shape == (len(e["rewards"]) + 1, 11) and e["actions"].shape == (len(e["rewards"]), 3)
        # Exactly one end flag, on the last step.
        ends = e["terminations"] | e["truncations"]
        assert ends[-1] and not ends[:-1].any()
    collect.write_minari_dataset("test/hopper/tiny-v0", "Hopper-v5", episodes, ref_min_score=-20.0,
                                 ref_max_score=3000.0, algorithm_name="uniform", description="test")
    ds = minari.load_dataset("test/hopper/tiny-v0")
    assert ds.total_episodes == len(episodes) and ds.total_steps == 150
    assert ds.storage.metadata["ref_min_score"] == -20.0 and ds.storage.metadata["ref_max_score"] == 3000.0
    for e, loaded in zip(episodes, ds.iterate_episodes()):
        np.testing.assert_allclose(loaded.rewards, e["rewards"])
        np.testing.assert_array_equal(loaded.terminations, e["terminations"])
        np.testing.assert_array_equal(loaded.truncations, e["truncations"])
        np.testing.assert_allclose(loaded.observations, e["observations"], rtol=1e-6)
    with pytest.raises(FileExistsError, match="minari delete test/hopper/tiny-v0"):
        collect.write_minari_dataset("test/hopper/tiny-v0", "Hopper-v5", episodes, 0.0, 1.0, "x", "x")


def test_replay_rows_split_back_into_episodes():
    # Three episodes: terminated after 3 steps, truncated after 2 (then a reset), and a final open one of 2.
    obs = np.arange(7, dtype=np.float32)[:, None]
    nxt = obs + 1
    nxt[4, 0] = 99.0  # truncation: next_obs is the final obs, the next row starts from a reset state
    done = np.array([0, 0, 1, 0, 0, 0, 0], np.float32)
    act = np.zeros((7, 1), np.float32)
    eps = collect.episodes_from_transitions(obs, act, np.ones(7), nxt, done)
    assert [len(e["rewards"]) for e in eps] == [3, 2, 2]
    assert eps[0]["terminations"][-1] and not eps[0]["truncations"].any()
    assert eps[1]["truncations"][-1] and not eps[1]["terminations"].any()
    np.testing.assert_array_equal(eps[1]["observations"][:, 0], [3, 4, 99])
    np.testing.assert_array_equal(eps[2]["observations"][:, 0], [5, 6, 7])


@pytest.mark.slow
def test_collect_launcher_trains_once_and_writes_every_quality(tmp_path, minari_path):
    import minari

    agent_dir = tmp_path / "agent"
    env = launcher_env(MINARI_DATASETS_PATH=str(minari_path))
    common = ["--env=Pendulum-v1", "--train_steps=600", "--warmup_steps=200", "--eval_every=200",
              "--eval_episodes=2", "--num_transitions=250", f"--agent_workdir={agent_dir}"]

    def collect_q(quality):
        return subprocess.run([sys.executable, "experiments/collect_dataset.py", f"--quality={quality}", *common],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    # random first: it needs no trained agent (none is trained, no ref scores are invented)
    res = collect_q("random")
    assert res.returncode == 0 and not (agent_dir / "snapshots").exists(), res.stderr[-3000:]
    assert "no trained agent" in res.stderr and json.loads(res.stdout.strip().splitlines()[-1])["ref_max_score"] is None
    for quality in ("medium-replay", "medium-expert"):
        res = collect_q(quality)
        assert res.returncode == 0, res.stderr[-3000:]
        assert not re.search(r"^I\d{4} ", res.stderr, re.M), res.stderr[-3000:]  # no orbax INFO lines
    # The agent was trained once (snapshots at every evaluation) and reused by the second call.
    assert sorted(os.listdir(agent_dir / "snapshots")) == ["200", "400", "600"]
    mr = minari.load_dataset("jaxdiff/pendulum/medium-replay-v0")
    me = minari.load_dataset("jaxdiff/pendulum/medium-expert-v0")
    assert me.total_steps == 500 and mr.total_steps >= 200
    for ds in (mr, me):
        meta = ds.storage.metadata
        assert meta["ref_min_score"] < 0 and np.isfinite(meta["ref_max_score"])
        for ep in ds.iterate_episodes():
            assert ep.observations.shape[0] == len(ep.rewards) + 1
            assert np.all(np.abs(ep.actions) <= 2.0 + 1e-6)  # stored in the env's range ([-2, 2])
    # An existing id is refused, naming the fix, before any work.
    res = collect_q("medium-replay")
    assert res.returncode != 0 and "minari delete jaxdiff/pendulum/medium-replay-v0" in (res.stdout + res.stderr)
