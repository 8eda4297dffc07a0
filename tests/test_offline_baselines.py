"""BC and AWR extraction baselines: the weights and the regression are what they claim to be."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import srpo
from jaxdiff.algorithm import Transition
from jaxdiff.srpo import baselines, critic
from jaxdiff.srpo.config import make_config


def _setup():
    cfg = make_config(None, policy_width=32, critic_width=32, behavior_width=32, policy_steps=300,
                      policy_lr=3e-3)
    algos = srpo.make(cfg, 3, 2)
    states = srpo.init_states(algos, 0)
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    batch = Transition(jax.random.normal(k[0], (64, 3)), jax.random.uniform(k[1], (64, 2), minval=-0.9, maxval=0.9),
                       jnp.zeros(64), jax.random.normal(k[2], (64, 3)), jnp.zeros(64))
    return cfg, algos, states, batch


@pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "nojit"])
def test_bc_regresses_onto_dataset_actions(use_jit):
    _, algos, states, batch = _setup()
    state = algos.bc.init(jax.random.PRNGKey(2), states["behavior"], states["critic"])
    upd = jax.jit(algos.bc.update) if use_jit else algos.bc.update
    first = None
    for i in range(300 if use_jit else 30):
        state, m = upd(state, batch, jax.random.PRNGKey(i))
        first = float(m["action_mse"]) if first is None else first
    assert float(m["action_mse"]) < (0.5 if use_jit else 1.0) * first and float(m["weight_mean"]) == 1.0


@pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "nojit"])
def test_awr_weights_are_clipped_exponentiated_advantages(use_jit):
    cfg, algos, states, batch = _setup()
    c = states["critic"]
    w = baselines.advantage_weights(cfg, c.q_target, c.v_params, batch.obs, batch.action, 3.0)
    q = critic.q_values(c.q_target, cfg, batch.obs, batch.action).min(0)
    v = critic.networks(cfg)[1].apply(c.v_params, batch.obs)
    np.testing.assert_allclose(w, np.minimum(np.exp(3.0 * (q - v)), 100.0), rtol=1e-5)
    huge = baselines.advantage_weights(cfg, c.q_target, c.v_params, batch.obs, batch.action, 1e4)
    assert float(huge.max()) == 100.0
    state = algos.awr.init(jax.random.PRNGKey(2), states["behavior"], c)
    assert float(state.hparams["temperature"]) == 3.0
    upd = jax.jit(algos.awr.update) if use_jit else algos.awr.update
    _, m = upd(state, batch, jax.random.PRNGKey(0))
    np.testing.assert_allclose(m["weight_mean"], w.mean(), rtol=1e-5)
