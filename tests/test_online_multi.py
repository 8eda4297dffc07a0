"""Many online runs in one process (jaxdiff.train.online_multi): run k of a vmapped multi-run equals the single run
with the same seed (gym and pure-JAX drivers), a sweep writes its values into each run, resume, a run sharded over
4 forced CPU devices equals the unsharded one (subprocess), and the launcher with --num_seeds and a sweep.

Tiny agents and a few dozen env steps: what is checked is bookkeeping and equality, not learning.
"""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import qvpo
from jaxdiff.agent import OnlineAgent
from jaxdiff.baselines import sac
from jaxdiff.envs import bandit
from jaxdiff.train import online, online_multi, sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RandomEndEnv(gym.Env):
    """obs = [t, episode, noise]; reward = -|action - noise|^2; ends at random (termination) or by the time limit,
    so the runs of a multi-run reset at different env steps."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.t, self.ep, self.x = 0, -1, 0.0

    def _obs(self):
        return np.array([self.t, self.ep, self.x], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.ep, self.x = 0, self.ep + 1, float(self.np_random.normal())
        return self._obs(), {}

    def step(self, action):
        r = -float((np.asarray(action)[0] - self.x) ** 2)
        self.t += 1
        self.x = float(self.np_random.normal())
        return self._obs(), r, bool(self.np_random.uniform() < 0.2), False, {}


gym.register("JaxdiffRandomEnd-v0", entry_point=RandomEndEnv, max_episode_steps=6)

SAC_TINY = sac.SACConfig(batch_size=8, hidden=(8, 8))
QVPO_TINY = qvpo.QVPOConfig(batch_size=8, n_d=4, k_b=2, k_t=1, k_eval=2, actor_hidden=16, actor_layers=2,
                            critic_hidden=(16, 16), diffusion_steps=3, n_uniform=2, entropy_alpha=0.05,
                            entropy_horizon=60.0, entropy_offset=20.0)


def _cfg(**kw):
    base = dict(total_steps=30, warmup_steps=10, eval_every=15, eval_episodes=2, log_every=10, checkpoint_every=15,
                buffer_size=64, progress=False)
    base.update(kw)
    return online.OnlineConfig(**base)


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


def _run(tree, k):
    return jax.tree.map(lambda x: np.asarray(x)[k], tree)


def _records(wd, run=None):
    recs = [json.loads(x) for x in open(os.path.join(wd, "metrics.jsonl"))]
    return recs if run is None else [r for r in recs if r.get("run") == run]


def test_gym_multi_run_k_equals_single_run_and_sweep_applies(tmp_path):
    """SAC, 2 seeds x gamma in {0.9, 0.99}: run 1 (seed 6, gamma 0.9) equals run_gym(seed 6, gamma 0.9)."""
    agent = sac.make_agent(SAC_TINY, 3, 1)
    pts = sweep.grid(2, base_seed=5, gamma=[0.9, 0.99])
    m = online_multi.run_gym_multi(agent, "JaxdiffRandomEnd-v0", _cfg(), str(tmp_path / "multi"), pts,
                                   run_info={"algo": "sac"})
    np.testing.assert_allclose(np.asarray(m["final_state"].agent.hparams["gamma"]), [0.9, 0.9, 0.99, 0.99])
    k = 1
    single_agent = sac.make_agent(dataclasses.replace(SAC_TINY, gamma=0.9), 3, 1)
    s = online.run_gym(single_agent, "JaxdiffRandomEnd-v0", _cfg(seed=6), str(tmp_path / "single"))
    a, b = _run(m["final_state"], k), s["final_state"]
    np.testing.assert_array_equal(a.replay.data.obs, b.replay.data.obs)  # same env seeds, same resets
    np.testing.assert_array_equal(a.replay.data.done, b.replay.data.done)
    _assert_trees_close(a, b)
    np.testing.assert_allclose(m["runs"][k]["eval_curve"], s["eval_curve"], rtol=1e-5, atol=1e-6)
    # per-run records mirror the single run's
    single = [r for r in _records(tmp_path / "single") if "sps" in r]
    multi = [r for r in _records(tmp_path / "multi", k) if "sps" in r]
    assert [r["episodes"] for r in multi] == [r["episodes"] for r in single]
    assert [r["agent/critic_loss"] for r in multi if "agent/critic_loss" in r] == pytest.approx(
        [r["agent/critic_loss"] for r in single if "agent/critic_loss" in r], rel=1e-4)
    # the other seed really is another run, and outputs are there
    assert not np.array_equal(np.asarray(m["final_state"].replay.data.obs[0]), a.replay.data.obs)
    summary = json.load(open(tmp_path / "multi" / "summary.json"))
    assert summary["num_runs"] == 4 and [g["point"] for g in summary["groups"]] == [{"gamma": 0.9}, {"gamma": 0.99}]
    assert set(summary["groups"][0]["final_eval_return"]) >= {"mean", "std", "iqm", "ci95"}
    assert (tmp_path / "multi" / "curves.png").exists()
    state, meta = online.load_agent_state(str(tmp_path / "multi"), agent, seed=6, gamma=0.9)
    assert meta["run"] == k
    _assert_trees_close(state, a.agent, rtol=0, atol=0)
    with pytest.raises(ValueError, match="matches 2 runs"):
        online.load_agent_state(str(tmp_path / "multi"), agent, seed=6)


def test_jax_multi_run_k_equals_single_run_and_sweep_applies(tmp_path):
    """SAC on the bandit (pure JAX), 2 seeds x tau in {0.005, 0.05}: run 3 (seed 4, tau 0.05) equals
    run_jax(seed 4, tau 0.05) although the agent was made with tau 0.005."""
    env = bandit.make_bandit()
    agent = sac.make_agent(SAC_TINY, 1, 2)
    cfg = _cfg(total_steps=40, warmup_steps=10, eval_every=20, eval_episodes=4, log_every=10, checkpoint_every=20)
    pts = sweep.grid(2, base_seed=3, tau=[0.005, 0.05])
    m = online_multi.run_jax_multi(agent, env, cfg, str(tmp_path / "multi"), pts, env_name="bandit")
    np.testing.assert_allclose(np.asarray(m["final_state"].runner.agent.hparams["tau"]), [0.005, 0.005, 0.05, 0.05])
    k = 3
    single_agent = sac.make_agent(dataclasses.replace(SAC_TINY, tau=0.05), 1, 2)
    s = online.run_jax(single_agent, env, dataclasses.replace(cfg, seed=4), str(tmp_path / "single"))
    _assert_trees_close(_run(m["final_state"], k), s["final_state"])
    np.testing.assert_allclose(m["runs"][k]["eval_curve"], s["eval_curve"], rtol=1e-5, atol=1e-6)
    # the host-computed step flags update exactly when run_jax's per-step conds do
    assert int(s["final_state"].runner.agent.step) == 40 - 10 + 1
    np.testing.assert_array_equal(np.asarray(m["final_state"].runner.agent.step), 31)
    summary = json.load(open(tmp_path / "multi" / "summary.json"))
    assert [g["label"] for g in summary["groups"]] == ["tau=0.005", "tau=0.05"]


def _dummy_agent(action_dim=1):
    """Cheap stand-in: explore uniform; update tracks the mean sampled reward (uses batch, key and hparams)."""

    def init(key):
        return {"m": jnp.zeros(()), "k": jax.random.uniform(key, ())}

    def update(st, batch, key):
        m = 0.9 * st["m"] + 0.1 * jnp.mean(batch.reward) + 1e-3 * jax.random.normal(key, ())
        return {**st, "m": m}, {"loss": jnp.mean(batch.reward)}

    explore = lambda st, obs, key: jax.random.uniform(key, (obs.shape[0], action_dim), minval=-1.0, maxval=1.0)  # noqa
    act = lambda st, obs, key: jnp.zeros((obs.shape[0], action_dim))  # noqa: E731
    return OnlineAgent("toy", None, 1, action_dim, init=init, update=update, act=act, explore=explore, batch_rows=4)


def test_multi_resume_continues_each_run_like_a_single_resume(tmp_path):
    agent = _dummy_agent()
    pts = sweep.grid(2, base_seed=0)
    wd = str(tmp_path / "m")
    online_multi.run_gym_multi(agent, "JaxdiffRandomEnd-v0", _cfg(total_steps=20, checkpoint_every=10), wd, pts)
    with pytest.raises(ValueError, match="cannot resume"):
        online_multi.run_gym_multi(agent, "JaxdiffRandomEnd-v0", _cfg(total_steps=30), wd, sweep.grid(3), resume=True)
    m = online_multi.run_gym_multi(agent, "JaxdiffRandomEnd-v0", _cfg(total_steps=30), wd, pts, resume=True)
    assert m["resumed_from"] == 20 and m["env_steps"] == 30
    assert sorted({r["env_step"] for r in _records(wd) if "sps" in r}) == [10, 20, 30]
    ws = str(tmp_path / "s")
    online.run_gym(agent, "JaxdiffRandomEnd-v0", _cfg(seed=1, total_steps=20, checkpoint_every=10), ws)
    s = online.run_gym(agent, "JaxdiffRandomEnd-v0", _cfg(seed=1, total_steps=30), ws, resume=True)
    _assert_trees_close(_run(m["final_state"], 1), s["final_state"], rtol=0, atol=0)

    # pure-JAX driver: stop at 20 and resume to 30 == 30 in one go, for every run
    env = bandit.make_bandit()
    agent = _dummy_agent(action_dim=2)
    full = online_multi.run_jax_multi(agent, env, _cfg(total_steps=30), str(tmp_path / "jf"), pts)
    online_multi.run_jax_multi(agent, env, _cfg(total_steps=15), str(tmp_path / "jp"), pts)
    part = online_multi.run_jax_multi(agent, env, _cfg(total_steps=30), str(tmp_path / "jp"), pts, resume=True)
    assert part["resumed_from"] == 15
    _assert_trees_close(full["final_state"], part["final_state"], rtol=0, atol=0)
    assert [r["eval_curve"] for r in full["runs"]] == [r["eval_curve"] for r in part["runs"]]


def test_sweeping_a_size_or_a_missing_hparam_is_refused():
    agent = qvpo.make_agent(QVPO_TINY, 1, 2)
    with pytest.raises(ValueError, match="cannot sweep n_d"):
        online_multi.check_points(agent, sweep.grid(1, n_d=[2, 4]))
    with pytest.raises(ValueError, match="cannot sweep actor_lr"):  # SAC bakes its learning rates into optax
        online_multi.check_points(sac.make_agent(SAC_TINY, 3, 1), sweep.grid(1, actor_lr=[1e-4, 3e-4]))
    online_multi.check_points(agent, sweep.grid(2, entropy_alpha=[0.0, 0.02], actor_lr=[1e-4, 3e-4]))


def test_step_flags_match_jax_chunk_decisions():
    flags, size = online_multi.step_flags(0, 6, warmup_steps=3, replay_size=0, capacity=100)
    assert flags.tolist() == [[False, False], [False, False], [False, True], [True, True], [True, True],
                              [True, True]]
    assert size == 6
    # resumed without a replay buffer: policy acts at once, updates wait for warmup rows
    flags, _ = online_multi.step_flags(10, 4, warmup_steps=3, replay_size=0, capacity=100)
    assert flags[:, 0].all() and flags[:, 1].tolist() == [False, False, True, True]


SHARDED = textwrap.dedent("""
    import dataclasses, jax, numpy as np, sys
    sys.path.insert(0, "tests")
    from test_online_multi import SAC_TINY, _cfg, _assert_trees_close, _dummy_agent
    from jaxdiff.baselines import sac
    from jaxdiff.envs import bandit
    from jaxdiff.train import online_multi, sweep
    assert len(jax.devices()) == 4, jax.devices()
    pts = sweep.grid(3, base_seed=0)                      # 3 runs: padded to 4 on 4 devices
    seen = []
    def on_chunk(step, st):
        seen.append(len(jax.tree.leaves(st)[0].sharding.device_set))
    env = bandit.make_bandit()
    agent = sac.make_agent(SAC_TINY, 1, 2)
    cfg = _cfg(total_steps=40, warmup_steps=10, eval_every=20, log_every=10, checkpoint_every=20)
    a = online_multi.run_jax_multi(agent, env, cfg, "{tmp}/jax4", pts, on_chunk=on_chunk)
    b = online_multi.run_jax_multi(agent, env, cfg, "{tmp}/jax1", pts, devices=jax.devices()[:1])
    assert a["devices"] == 4 and a["padded_runs"] == 4 and b["devices"] == 1 and max(seen) == 4, (a["devices"], seen)
    _assert_trees_close(a["final_state"], b["final_state"], rtol=1e-6, atol=1e-7)
    agent = _dummy_agent()  # the vmapped SAC math was compared above; here the host plumbing on 4 devices
    a = online_multi.run_gym_multi(agent, "JaxdiffRandomEnd-v0", _cfg(), "{tmp}/gym4", pts)
    b = online_multi.run_gym_multi(agent, "JaxdiffRandomEnd-v0", _cfg(), "{tmp}/gym1", pts, devices=jax.devices()[:1])
    _assert_trees_close(a["final_state"], b["final_state"], rtol=1e-6, atol=1e-7)
    assert [r["eval_curve"] for r in a["runs"]] == [r["eval_curve"] for r in b["runs"]]
    print("OK")
""")


def test_sharded_multi_run_equals_unsharded_on_4_cpu_devices(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, "-c", SHARDED.replace("{tmp}", str(tmp_path))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]


LAUNCH_FLAGS = ["--env=bandit", "--algo=qvpo", "--total_steps=40", "--warmup_steps=20", "--eval_every=20",
                "--eval_episodes=4", "--log_every=20", "--checkpoint_every=20", "--buffer_size=64", "--n_d=4",
                "--k_b=2", "--k_t=1", "--k_eval=2", "--batch_size=8", "--diffusion_steps=3", "--actor_hidden=16",
                "--critic_hidden=16,16", "--n_uniform=2", "--progress=false"]


def _launch(*flags):
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "qvpo_online.py"), *LAUNCH_FLAGS, *flags]
    return subprocess.run(cmd, env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
                          timeout=600)


def test_launcher_num_seeds_and_sweep(tmp_path):
    wd = tmp_path / "run"
    p = _launch(f"--workdir={wd}", "--num_seeds=2", "--entropy_alpha=0.0,0.05")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "entropy_alpha=0.05: final eval" in p.stdout
    recs = _records(wd)
    assert sorted({r["run"] for r in recs}) == [0, 1, 2, 3]
    assert {(r["run"], r["seed"], r["entropy_alpha"]) for r in recs} == {(0, 0, 0.0), (1, 1, 0.0), (2, 0, 0.05),
                                                                        (3, 1, 0.05)}
    summary = json.load(open(wd / "summary.json"))
    assert [g["runs"] for g in summary["groups"]] == [[0, 1], [2, 3]]
    assert len(summary["runs"]) == 4 and all("final_eval_return" in r for r in summary["runs"])
    assert summary["groups"][1]["final_eval_return"]["n"] == 2 and "bandit" in summary
    for f in ("curves.png", "bandit_samples.png"):
        assert (wd / f).exists(), f
    assert sorted(os.listdir(wd / "checkpoints")) == ["20", "40"]
    act, state, bundle = qvpo.load_policy(str(wd), seed=1, entropy_alpha=0.05)
    assert float(state.hparams.entropy_alpha) == pytest.approx(0.05) and int(state.step) == 40 - 20 + 1
    a = np.asarray(act(np.zeros((3, 1), np.float32), jax.random.PRNGKey(0)))
    assert a.shape == (3, 2) and np.all(np.abs(a) <= 1.0)
    _, s1, _ = qvpo.load_policy(str(wd), run=1)
    assert float(s1.hparams.entropy_alpha) == 0.0
    with pytest.raises(ValueError, match="matches 2 runs"):
        qvpo.load_policy(str(wd), seed=1)

    # a list for a size is refused with a clear message, before anything trains
    p = _launch(f"--workdir={tmp_path / 'bad'}", "--n_d=2,4")
    assert p.returncode != 0 and "cannot sweep n_d" in p.stderr + p.stdout
