"""Minari loading: name mapping, transition rules, reward transforms, checks and clear errors; toy bandits."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from jaxdiff.data import bandits, minari_data


def make_tiny_dataset(dataset_id: str, env_id: str = "Hopper-v5", episodes: int = 4, seed: int = 0,
                      ref_scores: tuple[float, float] | None = (-20.0, 3200.0), max_steps: int | None = None):
    """A few random-action episodes recorded with minari.DataCollector (MINARI_DATASETS_PATH must be set)."""
    import minari

    kwargs = {} if max_steps is None else {"max_episode_steps": max_steps}
    env = minari.DataCollector(gym.make(env_id, **kwargs), record_infos=False)
    env.action_space.seed(seed)
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc
    extra = {} if ref_scores is None else {"ref_min_score": ref_scores[0], "ref_max_score": ref_scores[1]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari nags about author / code_permalink / eval_env
        ds = env.create_dataset(dataset_id=dataset_id, algorithm_name="random", **extra)
    env.close()
    return ds


def _buffers(obs_dim, act_dim, rewards, T=5, nan_at=None):
    from minari.data_collector.episode_buffer import EpisodeBuffer

    rng = np.random.default_rng(0)
    out = []
    for i, r in enumerate(rewards):
        rew = np.full(T, r, np.float64)
        if nan_at is not None and i == 0:
            rew[nan_at] = np.nan
        out.append(EpisodeBuffer(id=i, observations=rng.normal(size=(T + 1, obs_dim)),
                                 actions=rng.uniform(-1, 1, (T, act_dim)), rewards=list(rew),
                                 terminations=[False] * (T - 1) + [True], truncations=[False] * T))
    return out


def _from_buffers(dataset_id, buffers, obs_dim, env="Hopper-v5"):
    import minari

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env, algorithm_name="test",
            observation_space=gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64))


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_short_names_and_ids():
    assert minari_data.resolve_name("hopper-medium") == ("hopper-medium", ("mujoco/hopper/medium-v0",))
    assert minari_data.resolve_name("walker2d-medium-expert-v2")[1] == ("mujoco/walker2d/medium-v0",
                                                                        "mujoco/walker2d/expert-v0")
    assert minari_data.resolve_name("antmaze-large-diverse") == ("antmaze-large-diverse",
                                                                 ("D4RL/antmaze/large-diverse-v1",))
    assert minari_data.resolve_name("mujoco/halfcheetah/medium-v0")[0] == "halfcheetah-medium"
    assert minari_data.resolve_name("jaxdiff/hopper/medium-v0") == ("hopper-medium", ("jaxdiff/hopper/medium-v0",))
    with pytest.raises(ValueError, match="unknown --env 'hopper-mediun'"):
        minari_data.resolve_name("hopper-mediun")
    with pytest.raises(ValueError, match="no Minari equivalent.*collect_dataset.py"):
        minari_data.resolve_name("hopper-medium-replay")


def test_missing_dataset_names_the_fix(minari_root):
    with pytest.raises(FileNotFoundError) as e:
        minari_data.load_minari("hopper-medium")
    msg = str(e.value)
    assert "minari download mujoco/hopper/medium-v0" in msg
    assert "python experiments/collect_dataset.py --env=Hopper-v5 --quality=medium" in msg
    assert "jaxdiff/hopper/medium-v0" in msg


def test_load_tiny_hopper(minari_root):
    src = make_tiny_dataset("test/hopper/tiny-v0", episodes=4, max_steps=30)
    ds = minari_data.load_minari("test/hopper/tiny-v0")
    d = ds.data
    assert (ds.obs_dim, ds.action_dim, ds.kind) == (11, 3, "locomotion")
    assert d.obs.shape == (src.total_steps, 11) and d.obs.dtype == np.float32
    assert ds.stats["dropped"] == 0 and ds.stats["episodes"] == 4
    assert (ds.ref_min_score, ds.ref_max_score) == (-20.0, 3200.0)
    # transitions follow the episodes: next_obs[t] == obs[t+1] inside an episode; done = termination only
    episodes = list(src.iterate_episodes())
    start = 0
    returns = []
    for ep in episodes:
        T = len(ep.rewards)
        np.testing.assert_allclose(d.next_obs[start:start + T], ep.observations[1:], rtol=1e-6)
        np.testing.assert_array_equal(d.done[start:start + T], ep.terminations.astype(np.float32))
        returns.append(ep.rewards.sum())
        start += T
    # reward scale r * 1000 / (R_max - R_min) over whole-episode returns
    scale = 1000.0 / (max(returns) - min(returns))
    np.testing.assert_allclose(d.reward, np.concatenate([e.rewards for e in episodes]) * scale, rtol=1e-5)
    env_id = minari_data.eval_env_id(ds)
    from jaxdiff.envs.evaluate import evaluate_policy

    res = evaluate_policy(env_id, lambda obs, step: np.zeros((obs.shape[0], 3)), num_episodes=2, seed=0)
    assert res["returns"].shape == (2,)


def test_antmaze_rewards_minus_one_and_ref_override(minari_root):
    make_tiny_dataset("test/antmaze/tiny-v0", episodes=2, max_steps=10, ref_scores=None)
    ds = minari_data.load_minari("test/antmaze/tiny-v0", ref_min_score=0.0, ref_max_score=1.0)
    raw = np.concatenate([e.rewards for e in __import__("minari").load_dataset("test/antmaze/tiny-v0")])
    assert ds.kind == "antmaze" and ds.reward_info["transform"] == "r - 1"
    np.testing.assert_allclose(ds.data.reward, raw - 1.0, rtol=1e-6)
    assert (ds.ref_min_score, ds.ref_max_score) == (0.0, 1.0)
    no_ref = minari_data.load_minari("test/antmaze/tiny-v0")
    assert no_ref.ref_min_score is None


def test_shape_mismatch_with_env(minari_root):
    _from_buffers("test/hopper/wrongshape-v0", _buffers(5, 3, [1.0, 2.0]), obs_dim=5)
    with pytest.raises(ValueError, match=r"obs/action dims \(5, 3\).*Hopper-v5.*\(11, 3\)"):
        minari_data.load_minari("test/hopper/wrongshape-v0")


def test_nan_rewards_rejected(minari_root):
    _from_buffers("test/hopper/nan-v0", _buffers(11, 3, [1.0, 2.0], nan_at=2), obs_dim=11)
    with pytest.raises(ValueError, match="NaN/inf values in rewards"):
        minari_data.load_minari("test/hopper/nan-v0")


def test_episode_without_final_observation_drops_last_transition():
    class Ep:
        def __init__(self, n_obs):
            self.id, self.rewards = 0, np.ones(4)
            self.observations = np.arange(n_obs * 2, dtype=float).reshape(n_obs, 2)
            self.actions = np.zeros((4, 1))
            self.terminations = np.zeros(4, bool)

    class Fake:
        def __init__(self, n_obs):
            self.n_obs = n_obs

        def iterate_episodes(self):
            return iter([Ep(self.n_obs)])

    space = gym.spaces.Box(-1, 1, (2,))
    full = list(minari_data._episodes(Fake(5), "x", space, 1))[0]
    short = list(minari_data._episodes(Fake(4), "x", space, 1))[0]
    assert len(full[0]) == 4 and full[-1] == 0
    assert len(short[0]) == 3 and short[-1] == 1 and short[5] == 4.0  # whole-episode return still counts r_4
    np.testing.assert_array_equal(short[1], short[0] + 2)


def test_bandits():
    for name in bandits.names():
        ds = bandits.make_dataset(name, num_samples=2000)
        a = ds.data.action
        assert a.shape == (2000, 2) and np.all(np.abs(a) <= 1) and np.all(np.isfinite(ds.data.reward))
        assert ds.ref_min_score < ds.ref_max_score and ds.data.done.min() == 1.0
    with pytest.raises(ValueError, match="unknown toy bandit"):
        bandits.get("bandit-nope")


def test_inf_observations_rejected(minari_root):
    bufs = _buffers(11, 3, [1.0, 2.0])
    bufs[1].observations[3, 4] = np.inf
    _from_buffers("test/hopper/inf-v0", bufs, obs_dim=11)
    with pytest.raises(ValueError, match="NaN/inf values in observations"):
        minari_data.load_minari("test/hopper/inf-v0")


def test_dict_observations_flatten_in_space_order():
    space = gym.spaces.Dict({"observation": gym.spaces.Box(-1, 1, (3,)), "achieved_goal": gym.spaces.Box(-1, 1, (2,)),
                             "desired_goal": gym.spaces.Box(-1, 1, (2,))})
    obs = {k: np.full((4, s.shape[0]), i, float) for i, (k, s) in enumerate(space.spaces.items())}
    flat = minari_data._flatten_obs(obs, space)
    assert flat.shape == (4, 7)
    # the same order gymnasium's FlattenObservation (used for the evaluation env) produces
    one = {k: v[0] for k, v in obs.items()}
    np.testing.assert_array_equal(flat[0], gym.spaces.flatten(space, one))
