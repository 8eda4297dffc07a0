"""The generic online runner: bootstrapping through truncation, action scaling, warm-up/update counts, outputs,
checkpoints and resume (with and without the replay buffer), on cheap stand-in agents and envs."""
import json
import os

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff.agent import OnlineAgent
from jaxdiff.train import online


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


gym.register("JaxdiffCounter-v0", entry_point=CounterEnv, max_episode_steps=5)
gym.register("JaxdiffCounterTerm-v0", entry_point=CounterEnv, max_episode_steps=5, kwargs={"terminate_at": 3})


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

    return OnlineAgent("dummy", None, obs_dim, action_dim, init=init, update=update, act=act, explore=explore,
                       batch_rows=rows)


def _cfg(**kw):
    base = dict(seed=0, total_steps=23, warmup_steps=10, eval_every=1000, eval_episodes=2, log_every=5,
                checkpoint_every=0, buffer_size=64, progress=False)
    base.update(kw)
    return online.OnlineConfig(**base)


def _replay(summary):
    r = summary["final_state"].replay
    n = int(r.size)
    return jax.tree.map(lambda x: np.asarray(x)[:n], r.data)


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
    assert int(s["final_state"].agent["n"]) == 14
    recs = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [r["env_step"] for r in recs if "sps" in r] == [5, 10, 15, 20, 23]
    assert any("eval/return_mean" in r for r in recs) and all(np.isfinite(r.get("agent/loss", 0.0)) for r in recs)
    for f in ("summary.json", "curves.png", "checkpoints"):
        assert os.path.exists(tmp_path / f), f


def test_termination_is_done(tmp_path):
    s = online.run_gym(dummy_agent(2, 1), "JaxdiffCounterTerm-v0", _cfg(total_steps=12), str(tmp_path))
    d = _replay(s)
    term = d.next_obs[:, 0] == 3
    assert term.sum() == 4
    np.testing.assert_array_equal(d.done, term.astype(np.float32))


def test_gym_resume_with_and_without_replay(tmp_path):
    agent = dummy_agent(2, 1)
    wd = str(tmp_path / "a")
    online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=20, warmup_steps=5, checkpoint_every=10), wd)
    with pytest.raises(FileExistsError):  # a fresh run refuses to clobber checkpoints
        online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, warmup_steps=5), wd)
    s = online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, warmup_steps=5, checkpoint_every=10), wd,
                       resume=True)
    assert s["resumed_from"] == 20 and int(s["final_state"].env_step) == 30
    assert int(s["final_state"].replay.size) == 30  # replay restored, then extended
    assert int(s["final_state"].agent["n"]) == 30 - 5 + 1  # updates continue without a new warm-up
    steps = [json.loads(x)["env_step"] for x in open(os.path.join(wd, "metrics.jsonl")) if "sps" in x]
    assert steps == [5, 10, 15, 20, 25, 30]
    loaded, meta = online.load_agent_state(wd, agent)
    assert meta["env_step"] == 30 and meta["obs_dim"] == 2 and meta["action_dim"] == 1
    for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(s["final_state"].agent)):
        np.testing.assert_array_equal(x, y)

    # without the replay buffer: the agent is restored, the buffer restarts empty, updates wait for warmup rows
    wd = str(tmp_path / "b")
    online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=20, warmup_steps=5, save_replay=False), wd)
    s = online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, warmup_steps=5, save_replay=False), wd,
                       resume=True)
    assert int(s["final_state"].replay.size) == 10
    assert int(s["final_state"].agent["n"]) == 16 + 6  # 16 before; after resume from the 5th new row on


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
    a, b = full["final_state"], resumed["final_state"]
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(a.runner.agent["n"]) == 30 - 7 + 1
    assert full["eval_curve"] == resumed["eval_curve"]
    d = a.runner.replay.data
    np.testing.assert_array_equal(np.asarray(d.done), 0.0)  # truncation only: always bootstrap
