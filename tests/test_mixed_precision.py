"""The bf16 option (issue 12): bf16 matmul inputs in the behavior net and QVPO's sampling chains, float32
parameters, optimizer state and accumulation. Off by default; on, outputs stay close to float32 and updates work."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_batch

from jaxdiff import nets, qvpo, srpo
from jaxdiff.qvpo.pieces import chain_eps_fn


def test_matmul_bf16_rounds_inputs_and_accumulates_in_float32():
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 256))
    w = jax.random.normal(jax.random.PRNGKey(1), (256, 32)) / 16
    ref = x @ w
    np.testing.assert_array_equal(nets.matmul(x, w), ref)  # float32: the plain product
    out = nets.matmul(x, w, "bfloat16")
    assert out.dtype == jnp.float32
    err = float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref)))
    assert 1e-5 < err < 2e-2, err  # bf16 inputs (8-bit mantissa) are used, not silently float32
    with pytest.raises(ValueError, match="bfloat16"):
        nets.matmul(x, w, "float16")


def test_srpo_behavior_bf16_close_to_float32_and_params_stay_float32():
    cfg = srpo.SRPOConfig(behavior_width=64, behavior_blocks=2, behavior_batch=32)
    a32 = srpo.make(cfg, 5, 2).behavior
    a16 = srpo.make(dataclasses.replace(cfg, behavior_matmul_dtype="bfloat16"), 5, 2).behavior
    s32, s16 = a32.init(jax.random.PRNGKey(0)), a16.init(jax.random.PRNGKey(0))
    jax.tree.map(np.testing.assert_array_equal, s32.params, s16.params)  # same float32 params
    batch = random_batch(jax.random.PRNGKey(1), 32, 5, 2)
    n32, m32 = jax.jit(a32.update)(s32, batch, jax.random.PRNGKey(2))
    n16, m16 = jax.jit(a16.update)(s16, batch, jax.random.PRNGKey(2))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((n16.params, n16.opt_state)) if x.dtype.kind == "f")
    assert abs(float(m16["loss"]) - float(m32["loss"])) < 2e-2 * abs(float(m32["loss"]))
    a = jax.jit(a16.act)(n16, jnp.zeros((4, 5)), jax.random.PRNGKey(3))
    assert a.shape == (4, 2) and bool(jnp.all(jnp.isfinite(a)))


def test_qvpo_chain_bf16_close_to_float32():
    cfg = qvpo.QVPOConfig(actor_hidden=64, n_d=4, batch_size=8)
    parts = qvpo.make_parts(cfg, 5, 2)
    state = parts.init(jax.random.PRNGKey(0))
    net = nets.MishMLPNoiseNet(2, hidden=64, n_hidden=cfg.actor_layers, activation=nets.mish_fast,
                               param_init=cfg.param_init)
    obs, x = jax.random.normal(jax.random.PRNGKey(1), (16, 5)), jax.random.normal(jax.random.PRNGKey(2), (16, 2))
    t = jnp.full((16,), 7)
    e32 = chain_eps_fn(net, state.actor, obs, 2)(x, t)
    e16 = chain_eps_fn(net, state.actor, obs, 2, "bfloat16")(x, t)
    assert e16.dtype == jnp.float32
    assert 0 < float(jnp.max(jnp.abs(e16 - e32))) < 2e-2 * float(jnp.max(jnp.abs(e32))) + 1e-3
    algo = qvpo.make(dataclasses.replace(cfg, matmul_dtype="bfloat16"), 5, 2)
    st, m = jax.jit(algo.update)(algo.init(jax.random.PRNGKey(0)), random_batch(jax.random.PRNGKey(3), 16, 5, 2),
                                 jax.random.PRNGKey(4))
    assert all(np.isfinite(float(v)) for v in m.values())
    with pytest.raises(ValueError, match="matmul_dtype"):
        qvpo.QVPOConfig(matmul_dtype="int8")
