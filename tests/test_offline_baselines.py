"""BC and AWR extraction baselines: the weights and the regression are what they claim to be."""
import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.data.replay import Transition
from jaxdiff.srpo import baselines, pipeline
from jaxdiff.srpo.config import make_config


def _setup():
    cfg = make_config(None, policy_width=32, critic_width=32, behavior_width=32, policy_steps=300,
                      policy_lr=3e-3)
    states = pipeline.init_states(0, 3, 2, cfg)
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    batch = Transition(jax.random.normal(k[0], (64, 3)), jax.random.uniform(k[1], (64, 2), minval=-0.9, maxval=0.9),
                       jnp.zeros(64), jax.random.normal(k[2], (64, 3)), jnp.zeros(64))
    return cfg, states, batch


def test_bc_regresses_onto_dataset_actions():
    _, states, batch = _setup()
    state, upd = states["policy"], jax.jit(baselines.bc_update)
    first = None
    for i in range(300):
        state, m = upd(state, batch, jax.random.PRNGKey(i))
        first = float(m["action_mse"]) if first is None else first
    assert float(m["action_mse"]) < 0.5 * first and float(m["weight_mean"]) == 1.0


def test_awr_weights_are_clipped_exponentiated_advantages():
    _, states, batch = _setup()
    critic = states["critic"]
    w = baselines.advantage_weights(critic, batch.obs, batch.action, temperature=3.0)
    from jaxdiff.nets import ValueNet
    from jaxdiff.srpo import critic as critic_lib
    q = critic_lib.q_values(critic.q_target, critic.cfg, batch.obs, batch.action).min(0)
    v = ValueNet(hidden=(32, 32)).apply(critic.v_params, batch.obs)
    np.testing.assert_allclose(w, np.minimum(np.exp(3.0 * (q - v)), 100.0), rtol=1e-5)
    huge = baselines.advantage_weights(critic, batch.obs, batch.action, temperature=1e4)
    assert float(huge.max()) == 100.0
    state, m = baselines.make_awr_update(critic, 3.0)(states["policy"], batch, jax.random.PRNGKey(0))
    np.testing.assert_allclose(m["weight_mean"], w.mean(), rtol=1e-5)
