"""jit_act (the acting paths' jit): the fused CPU dense layers are active, give SRPO's ReLU policy the very actions
jax.jit gives, and other nets (tanh / Mish epilogues computed by YNNPACK) the same actions to float32 rounding."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxdiff import qvpo, srpo
from jaxdiff.act_jit import act_compiler_options, jit_act
from jaxdiff.baselines import sac
from jaxdiff.train.over_runs import over_runs

OBS, ACT = 11, 3


def _dense(w, x):
    return jax.nn.relu(x @ w + 1.0)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the fused-layer option is CPU-only")
def test_the_option_is_active_on_cpu():
    # control: plain jax.jit runs the bias + relu as a loop fusion after the dot; jit_act folds them into the dot call
    x = jax.numpy.ones((64, 64))
    plain = jax.jit(_dense).lower(x, x).compile().as_text()
    fused = jit_act(_dense).lower(x, x).compile().as_text()
    assert act_compiler_options() is not None
    assert "kind=kLoop" in plain and "kind=kLoop" not in fused


def _cases():
    k = jax.random.PRNGKey(0)
    algos = srpo.make(srpo.SRPOConfig(), OBS, ACT)
    pol = algos.policy.init(k, algos.behavior.init(k), algos.critic.init(k))
    q = qvpo.make(qvpo.QVPOConfig(k_eval=4, diffusion_steps=5), OBS, ACT)
    s = sac.make(sac.SACConfig(), OBS, ACT)
    return {"srpo policy (paper widths)": (algos.policy, pol), "qvpo best of 4 (paper widths, T 5)": (q, q.init(k)),
            "sac": (s, s.init(k))}


@pytest.mark.parametrize("batch", [1, 256])
def test_same_actions_as_jax_jit(batch):
    obs = jax.random.normal(jax.random.PRNGKey(1), (batch, OBS))
    key = jax.random.PRNGKey(2)
    for name, (algo, state) in _cases().items():
        fn = lambda o, kk, _a=algo, _s=state: _a.act(_s, o, kk)  # noqa: E731
        got, want = np.asarray(jit_act(fn)(obs, key)), np.asarray(jax.jit(fn)(obs, key))
        if name.startswith("srpo"):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:  # measured: at most 2 ulp apart
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_same_actions_over_stacked_runs():
    # the SRPO driver's evaluation path: runs stacked on axis 0, vmapped by over_runs
    algos = srpo.make(srpo.SRPOConfig(), OBS, ACT)
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    init = jax.vmap(lambda kk: algos.policy.init(kk, algos.behavior.init(kk), algos.critic.init(kk)))
    states = init(keys)
    obs = jax.random.normal(jax.random.PRNGKey(4), (2, 256, OBS))
    fn = over_runs(lambda s, o: algos.policy.act(s, o, None), 2)
    np.testing.assert_array_equal(np.asarray(jit_act(fn)(states, obs)), np.asarray(jax.jit(fn)(states, obs)))
