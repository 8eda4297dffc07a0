"""jaxdiff.save / load_state / load_policy: one round trip for every algorithm, single and stacked states."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_batch

import jaxdiff
from jaxdiff import qvpo
from jaxdiff.baselines import sac, td3

OBS, ACT = 5, 2
ALGOS = {
    "sac": lambda: sac.make(sac.SACConfig(hidden=(16, 16), batch_size=8), OBS, ACT),
    "td3": lambda: td3.make(td3.TD3Config(hidden=(16, 16), batch_size=8), OBS, ACT),
    "qvpo": lambda: qvpo.make(qvpo.QVPOConfig(batch_size=4, n_d=2, k_eval=2, diffusion_steps=3, actor_hidden=16,
                                              critic_hidden=(16, 16)), OBS, ACT),
}



def _equal(a, b) -> None:
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_round_trip(name, tmp_path):
    algo = ALGOS[name]()
    state = algo.init(jax.random.PRNGKey(0))
    batch = random_batch(jax.random.PRNGKey(1), algo.batch_rows, OBS, ACT)
    state, _ = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(2))
    jaxdiff.save(str(tmp_path / "one"), algo, state, step=7)
    algo2, state2, meta = jaxdiff.load_state(str(tmp_path / "one"))
    assert (algo2.name, algo2.obs_dim, algo2.action_dim, meta["step"]) == (name, OBS, ACT, 7)
    assert algo2.config == algo.config
    _equal(state2, state)
    obs = np.linspace(-1, 1, 3 * OBS, dtype=np.float32).reshape(3, OBS)
    act = jaxdiff.load_policy(str(tmp_path / "one"))
    key = jax.random.PRNGKey(5)
    # load_policy's act is jit_act (fused CPU dense layers): equal to float32 rounding, not bit for bit
    np.testing.assert_allclose(np.asarray(act(obs, key)), np.asarray(algo.act(state, jnp.asarray(obs), key)),
                               rtol=1e-6, atol=1e-7)
    assert act(obs[0]).shape == (ACT,)
    with pytest.raises(ValueError, match="obs"):
        act(np.zeros((3, OBS + 1)))


def test_stacked_runs_pick_by_seed_or_index(tmp_path):
    algo = ALGOS["sac"]()
    states = [algo.init(jax.random.PRNGKey(s)) for s in (3, 4)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    points = [{"seed": 3, "tau": 0.01}, {"seed": 4, "tau": 0.01}]
    jaxdiff.save(str(tmp_path), algo, stacked, points=points)
    _, s, meta = jaxdiff.load_state(str(tmp_path), seed=4)
    assert meta["run"] == 1 and meta["point"] == points[1]
    _equal(s, states[1])
    _equal(jaxdiff.load_state(str(tmp_path), run=0)[1], states[0])
    with pytest.raises(ValueError):
        jaxdiff.load_state(str(tmp_path), seed=9)
    with pytest.raises(ValueError, match="run points"):
        jaxdiff.save(str(tmp_path / "bad"), algo, stacked, points=points[:1])


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="jaxdiff.save"):
        jaxdiff.load_policy(str(tmp_path))
    algo = ALGOS["sac"]()._replace(name="mine")
    with pytest.raises(ValueError, match="REGISTRY"):
        jaxdiff.save(str(tmp_path), algo, algo.init(jax.random.PRNGKey(0)))
