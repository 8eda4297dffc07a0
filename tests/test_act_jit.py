"""jit_act (the acting paths' jit): the fused CPU dense layers are active, give SRPO's ReLU policy the very actions
jax.jit gives, and other nets (tanh / Mish epilogues computed by YNNPACK) the same actions to float32 rounding."""
from __future__ import annotations

import functools
import inspect
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import jaxdiff
from conftest import launcher_env
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


@functools.cache
def _srpo_policy():
    algos = srpo.make(srpo.SRPOConfig(), OBS, ACT)  # paper widths: the 2 x 256 ReLU policy
    init = jax.jit(lambda k: algos.policy.init(k, algos.behavior.init(k), algos.critic.init(k)))
    return algos.policy, init(jax.random.PRNGKey(0))


def _jit_and_act_jit(algo, state, obs, key):
    fn = lambda o, kk: algo.act(state, o, kk)  # noqa: E731
    return np.asarray(jit_act(fn)(obs, key)), np.asarray(jax.jit(fn)(obs, key))


@pytest.mark.parametrize("batch", [1, 256])
def test_srpo_policy_gives_the_very_actions_of_jax_jit(batch):
    got, want = _jit_and_act_jit(*_srpo_policy(), jax.random.normal(jax.random.PRNGKey(1), (batch, OBS)), None)
    np.testing.assert_array_equal(got, want)


def test_tanh_and_mish_nets_give_the_actions_of_jax_jit_to_float32_rounding():
    # widths of 64 still take the fused path (XLA sends dots of this size to YNNPACK); measured: at most 2 ulp apart
    k = jax.random.PRNGKey(0)
    q = qvpo.make(qvpo.QVPOConfig(k_eval=4, diffusion_steps=3, actor_hidden=64, critic_hidden=(64, 64)), OBS, ACT)
    s = sac.make(sac.SACConfig(hidden=(64, 64)), OBS, ACT)
    obs = jax.random.normal(jax.random.PRNGKey(1), (256, OBS))
    for name, algo in (("qvpo best of 4", q), ("sac", s)):
        got, want = _jit_and_act_jit(algo, jax.jit(algo.init)(k), obs, jax.random.PRNGKey(2))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_same_actions_over_stacked_runs():
    # the SRPO driver's evaluation path: runs stacked on axis 0, vmapped by over_runs (run 1: other weights)
    policy, state = _srpo_policy()
    states = jax.tree.map(lambda x: jax.numpy.stack([x, 1.1 * x]) if x.dtype == jax.numpy.float32 else
                          jax.numpy.stack([x, x]), state)
    obs = jax.random.normal(jax.random.PRNGKey(4), (2, 256, OBS))
    fn = over_runs(lambda s, o: policy.act(s, o, None), 2)
    got, want = np.asarray(jit_act(fn)(states, obs)), np.asarray(jax.jit(fn)(states, obs))
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got[0], got[1])


def main_thread_share(act, obs, calls=20):
    """CPU time of the calling thread / CPU time of the whole process over `calls` acts: near 0 when XLA runs the
    program on its own threads (JAX's default async dispatch on CPU), a large share when the caller runs it inline."""
    np.asarray(act(obs))
    t, p = time.thread_time(), time.process_time()
    for _ in range(calls):
        np.asarray(act(obs))
    return (time.thread_time() - t) / max(time.process_time() - p, 1e-9)


# main_thread_share goes in as source: importing this module would start JAX's backend (the skipif below)
_INLINE_ACT = """
import sys, time
import jax
jax.config.update("jax_cpu_enable_async_dispatch", False)  # README "Acting": first thing in a process that only acts
import numpy as np
import jaxdiff
act = jaxdiff.load_policy(sys.argv[1])
obs = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(act(obs)))
np.save(sys.argv[4], np.asarray(act(obs[0])))
{share}
print(main_thread_share(act, obs))
"""


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="async dispatch is a CPU client setting")
def test_inline_dispatch_recipe_runs_acting_in_the_callers_thread_with_the_same_actions(tmp_path):
    # README "Acting": jax_cpu_enable_async_dispatch=False makes load_policy's act run inline (measured 2-3x faster
    # at batch 1, BUILD_NOTES). Checked in a fresh process (the setting only counts before JAX's backend starts):
    # same actions as this process's default dispatch, and the work now runs on the calling thread (control: here).
    policy, state = _srpo_policy()
    jaxdiff.save(str(tmp_path / "srpo"), policy, state)
    act = jaxdiff.load_policy(str(tmp_path / "srpo"))
    obs = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (1024, OBS)))  # calls long enough that dispatch is noise
    np.save(tmp_path / "obs.npy", obs)
    script = _INLINE_ACT.format(share=inspect.getsource(main_thread_share))
    out = [str(tmp_path / f) for f in ("batch.npy", "one.npy")]
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "srpo"), str(tmp_path / "obs.npy"), *out],
                         env=launcher_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    np.testing.assert_array_equal(np.load(out[0]), np.asarray(act(obs)))
    np.testing.assert_array_equal(np.load(out[1]), np.asarray(act(obs[0])))
    inline, default = float(res.stdout.split()[-1]), main_thread_share(act, obs)
    assert inline > 0.3 and default < 0.15, (inline, default)  # measured ~0.5 vs ~0.05
