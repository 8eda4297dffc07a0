"""The online drivers (jaxdiff.train.online: run_gym, run_jax), for one run and for many: bootstrapping through
truncation, action scaling, warm-up / update counts, replay wrap-around, outputs, checkpoints and resume (with and
without the replay buffer), a checkpoint round trip, run k of a many-run equals the lone run of its point, a sweep
writes its values into each run, runs sharded over 4 forced CPU devices equal unsharded ones (subprocess), and the
launcher with --num_seeds and a sweep.

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
from conftest import launcher_env

import jaxdiff
from jaxdiff import qvpo
from jaxdiff.algorithm import Algorithm
from jaxdiff.baselines import sac
from jaxdiff.envs import bandit
from jaxdiff.train import online, sweep
from jaxdiff.train.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CounterEnv(gym.Env):
    """obs = [t, episode]; reward = the (env-range) action; terminates at `terminate_at` if given."""

    def __init__(self, terminate_at=None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.terminate_at = terminate_at
        self.t, self.ep = 0, -1

    def _obs(self):
        return np.array([self.t, self.ep], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.ep = 0, self.ep + 1
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        term = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), float(np.asarray(action)[0]), term, False, {}


class RandomEndEnv(gym.Env):
    """obs = [t, episode, noise]; reward = -|action - noise|^2; ends at random (termination) or by the time limit,
    so the runs of a many-run reset at different env steps."""

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


gym.register("JaxdiffCounter-v0", entry_point=CounterEnv, max_episode_steps=5)
gym.register("JaxdiffCounterTerm-v0", entry_point=CounterEnv, max_episode_steps=5, kwargs={"terminate_at": 3})
gym.register("JaxdiffRandomEnd-v0", entry_point=RandomEndEnv, max_episode_steps=6)

SAC_TINY = sac.SACConfig(batch_size=8, hidden=(8, 8))
QVPO_TINY = qvpo.QVPOConfig(batch_size=8, n_d=4, k_b=2, k_t=1, k_eval=2, actor_hidden=16, actor_layers=2,
                            critic_hidden=(16, 16), diffusion_steps=3, n_uniform=2, entropy_alpha=0.05,
                            entropy_horizon=60.0, entropy_offset=20.0)


def dummy_agent(obs_dim, action_dim, rows=4):
    """explore: uniform; update: counts calls and tracks the mean sampled reward (uses batch and key)."""

    def init(key):
        return {"n": jnp.zeros((), jnp.int32), "m": jnp.zeros(()), "k": jax.random.uniform(key, ())}

    def explore(st, obs, key):
        return jax.random.uniform(key, (obs.shape[0], action_dim), minval=-1.0, maxval=1.0)

    def act(st, obs, key):
        return jnp.zeros((obs.shape[0], action_dim))

    def update(st, batch, key):
        m = 0.9 * st["m"] + 0.1 * jnp.mean(batch.reward) + 1e-3 * jax.random.normal(key, ())
        return {"n": st["n"] + 1, "m": m, "k": st["k"]}, {"loss": jnp.mean(batch.reward), "n": st["n"] + 1.0}

    return Algorithm("dummy", None, obs_dim, action_dim, init=init, update=update, act=act, explore=explore,
                     batch_rows=rows)


def _cfg(**kw):
    base = dict(seed=0, total_steps=23, warmup_steps=10, eval_every=1000, eval_episodes=2, log_every=5,
                checkpoint_every=0, buffer_size=64, progress=False)
    base.update(kw)
    return online.OnlineConfig(**base)


def _mcfg(**kw):
    """Settings of the many-run checks."""
    return _cfg(**{**dict(total_steps=30, eval_every=15, log_every=10, checkpoint_every=15), **kw})


def _run(tree, k=0):
    """Run k of a stacked tree, as numpy."""
    return jax.tree.map(lambda x: np.asarray(x)[k], tree)


def _replay(summary, k=0):
    r = _run(summary["final_state"].replay, k)
    return jax.tree.map(lambda x: x[: int(r.size)], r.data)


def _records(wd, run=None):
    recs = [json.loads(x) for x in open(os.path.join(wd, "metrics.jsonl"))]
    return recs if run is None else [r for r in recs if r.get("run") == run]


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------------------ one run
@pytest.mark.parametrize("as_terminal", [False, True])
def test_truncation_bootstraps_with_true_final_obs(tmp_path, as_terminal):
    s = online.run_gym(dummy_agent(2, 1), "JaxdiffCounter-v0", _cfg(truncation_as_terminal=as_terminal),
                       str(tmp_path), run_info={"algo": "dummy"})
    d = _replay(s)
    assert len(d.reward) == 23
    np.testing.assert_array_equal(d.next_obs[:, 0], d.obs[:, 0] + 1)  # never an autoreset observation
    last = d.next_obs[:, 0] == 5  # time-limit ends
    assert last.sum() == 4
    np.testing.assert_array_equal(d.done[last], 1.0 if as_terminal else 0.0)
    np.testing.assert_array_equal(d.done[~last], 0.0)
    # the replay holds normalised actions; the env got them mapped to [-2, 2]
    assert np.abs(d.action).max() <= 1.0
    np.testing.assert_allclose(d.reward, 2.0 * d.action[:, 0], rtol=1e-5, atol=1e-6)
    # updates from env step 10 (= warmup) on, as the official loop: 23 - 10 + 1
    assert np.asarray(s["final_state"].agent["n"]).tolist() == [14]
    recs = _records(tmp_path)
    assert [r["env_step"] for r in recs if "sps" in r] == [5, 10, 15, 20, 23]
    assert all(r["run"] == 0 and r["seed"] == 0 for r in recs)  # the same layout as many runs
    assert any("eval/return_mean" in r for r in recs) and all(np.isfinite(r.get("agent/loss", 0.0)) for r in recs)
    for f in ("summary.json", "curves.png", "checkpoints"):
        assert os.path.exists(tmp_path / f), f
    summary = json.load(open(tmp_path / "summary.json"))
    assert summary["points"] == [{"seed": 0}] and summary["num_runs"] == 1
    assert len(summary["runs"]) == 1 and "final_eval_return" in summary["runs"][0] and len(summary["groups"]) == 1


def test_termination_is_done(tmp_path):
    s = online.run_gym(dummy_agent(2, 1), "JaxdiffCounterTerm-v0", _cfg(total_steps=12), str(tmp_path))
    d = _replay(s)
    term = d.next_obs[:, 0] == 3
    assert term.sum() == 4
    np.testing.assert_array_equal(d.done, term.astype(np.float32))


def test_replay_wraps_around(tmp_path):
    """23 steps into 8 rows: the buffer holds the last 8 transitions, the pointer at the oldest."""
    s = online.run_gym(dummy_agent(2, 1, rows=2), "JaxdiffCounter-v0", _cfg(buffer_size=8, warmup_steps=4),
                       str(tmp_path))
    r = _run(s["final_state"].replay)
    assert int(r.size) == 8 and int(r.pointer) == 23 % 8
    order = np.roll(np.arange(8), -int(r.pointer))  # oldest first
    t = r.data.obs[order, 0] + 5 * r.data.obs[order, 1]  # env steps 15..22 (obs t + 5 x episode)
    np.testing.assert_array_equal(t, np.arange(15, 23))
    assert np.asarray(s["final_state"].agent["n"]).tolist() == [23 - 4 + 1]


def test_gym_resume_with_and_without_replay_and_checkpoint_round_trip(tmp_path):
    agent = dummy_agent(2, 1)
    wd = str(tmp_path / "a")
    online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=20, warmup_steps=5, checkpoint_every=10), wd)
    with pytest.raises(FileExistsError):  # a fresh run refuses to clobber checkpoints
        online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, warmup_steps=5), wd)
    s = online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, warmup_steps=5, checkpoint_every=10), wd,
                       resume=True)
    fs = _run(s["final_state"])
    assert s["resumed_from"] == 20 and int(fs.env_step) == 30
    assert int(fs.replay.size) == 30  # replay restored, then extended
    assert int(fs.agent["n"]) == 30 - 5 + 1  # updates continue without a new warm-up
    assert [r["env_step"] for r in _records(wd) if "sps" in r] == [5, 10, 15, 20, 25, 30]
    loaded, meta = online.load_agent_state(wd, agent)  # checkpoint round trip
    assert meta["env_step"] == 30 and meta["obs_dim"] == 2 and meta["action_dim"] == 1 and meta["run"] == 0
    _assert_trees_close(loaded, fs.agent, rtol=0, atol=0)

    # without the replay buffer: the agent is restored, the buffer restarts empty, updates wait for warmup rows
    wd = str(tmp_path / "b")
    online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=20, warmup_steps=5, save_replay=False), wd)
    s = online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, warmup_steps=5, save_replay=False), wd,
                       resume=True)
    assert int(_run(s["final_state"]).replay.size) == 10
    assert int(_run(s["final_state"]).agent["n"]) == 16 + 6  # 16 before; after resume from the 5th new row on


def test_load_agent_state_reads_an_old_single_run_workdir(tmp_path):
    """Workdirs of the older single-run driver (unstacked state, no "points") still load."""
    agent = dummy_agent(2, 1)
    state = {"n": jnp.int32(7), "m": jnp.float32(0.5), "k": jnp.float32(0.25)}
    ck = Checkpointer(str(tmp_path / "checkpoints"))
    ck.save(10, {"agent": state, "key": jnp.zeros(2, jnp.uint32)}, {"runner": {"seed": 3}, "obs_dim": 2})
    ck.close()
    loaded, meta = online.load_agent_state(str(tmp_path), agent, seed=3)
    _assert_trees_close(loaded, state, rtol=0, atol=0)
    with pytest.raises(ValueError, match="single run"):
        online.load_agent_state(str(tmp_path), agent, run=1)


def _tiny_jax_env():
    def reset(key):
        return jnp.zeros((), jnp.int32), jnp.zeros((1,))

    def step(t, a, key):
        t = t + 1
        r = -jnp.sum(a**2) + 0.1 * jax.random.normal(key, ())
        return t % 3, t[None].astype(jnp.float32) % 3, r, jnp.bool_(False), t % 3 == 0

    return online.JaxEnv(obs_dim=1, action_dim=2, max_episode_steps=3, reset=reset, step=step)


def test_jax_runner_resume_is_exact(tmp_path):
    env, agent = _tiny_jax_env(), dummy_agent(1, 2)
    cfg = dict(warmup_steps=7, eval_every=10, eval_episodes=3, log_every=5, checkpoint_every=10, buffer_size=40)
    full = online.run_jax(agent, env, _cfg(total_steps=30, **cfg), str(tmp_path / "full"))
    online.run_jax(agent, env, _cfg(total_steps=20, **cfg), str(tmp_path / "part"))
    resumed = online.run_jax(agent, env, _cfg(total_steps=30, **cfg), str(tmp_path / "part"), resume=True)
    assert resumed["resumed_from"] == 20
    _assert_trees_close(full["final_state"], resumed["final_state"], rtol=0, atol=0)
    a = _run(full["final_state"])
    assert int(a.runner.agent["n"]) == 30 - 7 + 1
    assert full["runs"][0]["eval_curve"] == resumed["runs"][0]["eval_curve"]
    np.testing.assert_array_equal(a.runner.replay.data.done, 0.0)  # truncation only: always bootstrap


def test_step_flags_match_the_update_schedule():
    flags, size = online.step_flags(0, 6, warmup_steps=3, replay_size=0, capacity=100)
    assert flags.tolist() == [[False, False], [False, False], [False, True], [True, True], [True, True],
                              [True, True]]
    assert size == 6
    # resumed without a replay buffer: policy acts at once, updates wait for warmup rows
    flags, _ = online.step_flags(10, 4, warmup_steps=3, replay_size=0, capacity=100)
    assert flags[:, 0].all() and flags[:, 1].tolist() == [False, False, True, True]


# ----------------------------------------------------------------------------------------------------- many runs
def test_gym_run_k_of_many_equals_its_lone_run_and_sweep_applies(tmp_path):
    """SAC, 2 seeds x gamma in {0.9, 0.99}: run 1 (seed 6, gamma 0.9) equals run_gym(seed 6, gamma 0.9) to float
    tolerance (vmapped matmuls round differently)."""
    algo = sac.make(SAC_TINY, 3, 1)
    pts = sweep.grid(2, base_seed=5, gamma=[0.9, 0.99])
    m = online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(), str(tmp_path / "multi"), pts, run_info={"algo": "sac"})
    np.testing.assert_allclose(np.asarray(m["final_state"].agent.hparams.gamma), [0.9, 0.9, 0.99, 0.99])
    k = 1
    single = sac.make(dataclasses.replace(SAC_TINY, gamma=0.9), 3, 1)
    s = online.run_gym(single, "JaxdiffRandomEnd-v0", _mcfg(seed=6), str(tmp_path / "single"))
    a, b = _run(m["final_state"], k), _run(s["final_state"])
    np.testing.assert_array_equal(a.replay.data.obs, b.replay.data.obs)  # same env seeds, same resets
    np.testing.assert_array_equal(a.replay.data.done, b.replay.data.done)
    _assert_trees_close(a, b)
    np.testing.assert_allclose(m["runs"][k]["eval_curve"], s["runs"][0]["eval_curve"], rtol=1e-5, atol=1e-6)
    # per-run records mirror the lone run's
    one = [r for r in _records(tmp_path / "single") if "sps" in r]
    many = [r for r in _records(tmp_path / "multi", k) if "sps" in r]
    assert [r["episodes"] for r in many] == [r["episodes"] for r in one]
    assert [r["agent/critic_loss"] for r in many if "agent/critic_loss" in r] == pytest.approx(
        [r["agent/critic_loss"] for r in one if "agent/critic_loss" in r], rel=1e-4)
    # the other seed really is another run, and outputs are there
    assert not np.array_equal(np.asarray(m["final_state"].replay.data.obs[0]), a.replay.data.obs)
    summary = json.load(open(tmp_path / "multi" / "summary.json"))
    assert summary["num_runs"] == 4 and [g["point"] for g in summary["groups"]] == [{"gamma": 0.9}, {"gamma": 0.99}]
    assert set(summary["groups"][0]["final_eval_return"]) >= {"mean", "std", "iqm", "ci95"}
    assert (tmp_path / "multi" / "curves.png").exists()
    state, meta = online.load_agent_state(str(tmp_path / "multi"), algo, seed=6, gamma=0.9)
    assert meta["run"] == k
    _assert_trees_close(state, a.agent, rtol=0, atol=0)
    with pytest.raises(ValueError, match="matches 2 runs"):
        online.load_agent_state(str(tmp_path / "multi"), algo, seed=6)


# The pure-JAX many-run check: SAC on the bandit, 2 seeds (3, 4) x tau in {0.005, 0.05}; the launcher test runs
# the same settings as flags (LAUNCH_FLAGS), so its programs come from the session's compilation cache.
JAX_MANY = dict(total_steps=40, eval_every=20, eval_episodes=4, checkpoint_every=20)


@pytest.fixture(scope="module")
def lone_sac_jax(tmp_path_factory):
    """run_jax of run 3 of that grid alone (seed 4, tau 0.05): the reference of both tests."""
    single = sac.make(dataclasses.replace(SAC_TINY, tau=0.05), 1, 2)
    return online.run_jax(single, bandit.make_bandit(), _mcfg(seed=4, **JAX_MANY),
                          str(tmp_path_factory.mktemp("lone_sac_jax")))


def test_jax_run_k_of_many_equals_its_lone_run_and_sweep_applies(tmp_path, lone_sac_jax):
    """SAC on the bandit (pure JAX), 2 seeds x tau in {0.005, 0.05}: run 3 (seed 4, tau 0.05) equals
    run_jax(seed 4, tau 0.05) although the algorithm was made with tau 0.005."""
    algo = sac.make(SAC_TINY, 1, 2)
    pts = sweep.grid(2, base_seed=3, tau=[0.005, 0.05])
    m = online.run_jax(algo, bandit.make_bandit(), _mcfg(**JAX_MANY), str(tmp_path / "multi"), pts, env_name="bandit")
    np.testing.assert_allclose(np.asarray(m["final_state"].runner.agent.hparams.tau), [0.005, 0.005, 0.05, 0.05])
    k, s = 3, lone_sac_jax
    _assert_trees_close(_run(m["final_state"], k), _run(s["final_state"]))
    np.testing.assert_allclose(m["runs"][k]["eval_curve"], s["runs"][0]["eval_curve"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(s["final_state"].runner.agent.step), [40 - 10 + 1])
    np.testing.assert_array_equal(np.asarray(m["final_state"].runner.agent.step), 31)
    summary = json.load(open(tmp_path / "multi" / "summary.json"))
    assert [g["label"] for g in summary["groups"]] == ["tau=0.005", "tau=0.05"]


def _toy_agent(action_dim=1):
    """Cheap stand-in: explore uniform; update tracks the mean sampled reward (uses batch and key)."""

    def init(key):
        return {"m": jnp.zeros(()), "k": jax.random.uniform(key, ())}

    def update(st, batch, key):
        m = 0.9 * st["m"] + 0.1 * jnp.mean(batch.reward) + 1e-3 * jax.random.normal(key, ())
        return {**st, "m": m}, {"loss": jnp.mean(batch.reward)}

    explore = lambda st, obs, key: jax.random.uniform(key, (obs.shape[0], action_dim), minval=-1.0, maxval=1.0)  # noqa
    act = lambda st, obs, key: jnp.zeros((obs.shape[0], action_dim))  # noqa: E731
    return Algorithm("toy", None, 1, action_dim, init=init, update=update, act=act, explore=explore, batch_rows=4)


def test_many_runs_resume_like_lone_runs(tmp_path):
    algo = _toy_agent()
    pts = sweep.grid(2, base_seed=0)
    wd = str(tmp_path / "m")
    online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(total_steps=20, checkpoint_every=10), wd, pts)
    with pytest.raises(ValueError, match="cannot resume"):
        online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(total_steps=30), wd, sweep.grid(3), resume=True)
    m = online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(total_steps=30), wd, pts, resume=True)
    assert m["resumed_from"] == 20 and m["env_steps"] == 30
    assert sorted({r["env_step"] for r in _records(wd) if "sps" in r}) == [10, 20, 30]
    ws = str(tmp_path / "s")
    online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(seed=1, total_steps=20, checkpoint_every=10), ws)
    s = online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(seed=1, total_steps=30), ws, resume=True)
    _assert_trees_close(_run(m["final_state"], 1), _run(s["final_state"]), rtol=0, atol=0)

    # pure-JAX driver: stop at 15 and resume to 30 == 30 in one go, for every run
    env = bandit.make_bandit()
    algo = _toy_agent(action_dim=2)
    full = online.run_jax(algo, env, _mcfg(total_steps=30), str(tmp_path / "jf"), pts)
    online.run_jax(algo, env, _mcfg(total_steps=15), str(tmp_path / "jp"), pts)
    part = online.run_jax(algo, env, _mcfg(total_steps=30), str(tmp_path / "jp"), pts, resume=True)
    assert part["resumed_from"] == 15
    _assert_trees_close(full["final_state"], part["final_state"], rtol=0, atol=0)
    assert [r["eval_curve"] for r in full["runs"]] == [r["eval_curve"] for r in part["runs"]]


def test_sweeping_a_size_or_a_missing_hparam_is_refused(tmp_path):
    algo = qvpo.make(QVPO_TINY, 1, 2)
    with pytest.raises(ValueError, match="cannot sweep n_d"):
        online.run_jax(algo, bandit.make_bandit(), _mcfg(), str(tmp_path), sweep.grid(1, n_d=[2, 4]))
    with pytest.raises(ValueError, match="cannot sweep not_a_field"):
        online.run_jax(algo, bandit.make_bandit(), _mcfg(), str(tmp_path), sweep.grid(1, not_a_field=[1.0, 2.0]))


SHARDED = textwrap.dedent("""
    import jax, sys
    sys.path.insert(0, "tests")
    from test_online_runner import SAC_TINY, _mcfg, _assert_trees_close, _toy_agent
    from jaxdiff.baselines import sac
    from jaxdiff.envs import bandit
    from jaxdiff.train import online, sweep
    assert len(jax.devices()) == 4, jax.devices()
    pts = sweep.grid(3, base_seed=0)                      # 3 runs: padded to 4 on 4 devices
    seen = []
    def on_chunk(step, st):
        seen.append(len(jax.tree.leaves(st)[0].sharding.device_set))
    env = bandit.make_bandit()
    algo = sac.make(SAC_TINY, 1, 2)
    cfg = _mcfg(total_steps=40, eval_every=20, checkpoint_every=20)
    a = online.run_jax(algo, env, cfg, "{tmp}/jax4", pts, on_chunk=on_chunk)
    b = online.run_jax(algo, env, cfg, "{tmp}/jax1", pts, devices=jax.devices()[:1])
    assert a["devices"] == 4 and a["padded_runs"] == 4 and b["devices"] == 1 and max(seen) == 4, (a["devices"], seen)
    _assert_trees_close(a["final_state"], b["final_state"], rtol=1e-6, atol=1e-7)
    algo = _toy_agent()  # the vmapped SAC math was compared above; here the host plumbing on 4 devices
    a = online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(), "{tmp}/gym4", pts)
    b = online.run_gym(algo, "JaxdiffRandomEnd-v0", _mcfg(), "{tmp}/gym1", pts, devices=jax.devices()[:1])
    _assert_trees_close(a["final_state"], b["final_state"], rtol=1e-6, atol=1e-7)
    assert [r["eval_curve"] for r in a["runs"]] == [r["eval_curve"] for r in b["runs"]]
    print("OK")
""")


def test_sharded_runs_equal_unsharded_on_4_cpu_devices(tmp_path):
    env = launcher_env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    res = subprocess.run([sys.executable, "-c", SHARDED.replace("{tmp}", str(tmp_path))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]


# the grid and JAX_MANY settings of test_jax_run_k_of_many... as flags: its runs must be those of run_jax
LAUNCH_FLAGS = ["--env=bandit", "--algo=sac", "--batch_size=8", "--hidden=8,8", "--seed=3", "--num_seeds=2",
                "--tau=0.005,0.05", "--total_steps=40", "--warmup_steps=10", "--eval_every=20", "--eval_episodes=4",
                "--log_every=10", "--checkpoint_every=20", "--buffer_size=64", "--progress=false"]


def _launch(*flags):
    cmd = [sys.executable, os.path.join(ROOT, "experiments", "qvpo_online.py"), *flags]
    return subprocess.run(cmd, env=launcher_env(), capture_output=True, text=True, timeout=600)


def test_launcher_num_seeds_and_sweep(tmp_path, lone_sac_jax):
    wd = tmp_path / "run"
    p = _launch(*LAUNCH_FLAGS, f"--workdir={wd}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "tau=0.05: final eval" in p.stdout
    recs = _records(wd)
    assert sorted({r["run"] for r in recs}) == [0, 1, 2, 3]
    assert {(r["run"], r["seed"], r["tau"]) for r in recs} == {(0, 3, 0.005), (1, 4, 0.005), (2, 3, 0.05),
                                                              (3, 4, 0.05)}
    summary = json.load(open(wd / "summary.json"))
    assert [g["runs"] for g in summary["groups"]] == [[0, 1], [2, 3]]
    assert len(summary["runs"]) == 4 and all("final_eval_return" in r for r in summary["runs"])
    assert summary["groups"][1]["final_eval_return"]["n"] == 2 and "bandit" in summary
    for f in ("curves.png", "bandit_samples.png"):
        assert (wd / f).exists(), f
    assert sorted(os.listdir(wd / "checkpoints")) == ["20", "40"]
    # the runs of the API: run 3 (seed 4, tau 0.05) is the lone run_jax
    lone = lone_sac_jax
    np.testing.assert_allclose(summary["runs"][3]["eval_curve"], lone["runs"][0]["eval_curve"], rtol=1e-5, atol=1e-6)
    _, state, _ = jaxdiff.load_state(str(wd), seed=4, tau=0.05)
    assert float(state.hparams.tau) == pytest.approx(0.05) and int(state.step) == 40 - 10 + 1
    _assert_trees_close(state, _run(lone["final_state"].runner.agent))
    act = jaxdiff.load_policy(str(wd), seed=4, tau=0.05)
    a = np.asarray(act(np.zeros((3, 1), np.float32), jax.random.PRNGKey(0)))
    assert a.shape == (3, 2) and np.all(np.abs(a) <= 1.0)
    _, s1, _ = jaxdiff.load_state(str(wd), run=1)
    assert float(s1.hparams.tau) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="matches 2 runs"):
        jaxdiff.load_policy(str(wd), seed=4)

    # a list for a size is refused with a clear message, before anything trains
    p = _launch("--env=bandit", "--algo=qvpo", f"--workdir={tmp_path / 'bad'}", "--n_d=2,4")
    assert p.returncode != 0 and "cannot sweep n_d" in p.stderr + p.stdout
