"""Sweep utilities: grids, keys, aggregation; sharded == unsharded on 4 forced CPU devices (subprocess)."""
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import launcher_env

from jaxdiff.train import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parse_values():
    assert sweep.parse_values("0.05,0.1, 0.2") == [0.05, 0.1, 0.2]
    assert sweep.parse_values(0.3) == [0.3]
    with pytest.raises(ValueError, match="comma-separated"):
        sweep.parse_values("0.1,abc", "beta")


def test_grid_crosses_seeds_fastest():
    pts = sweep.grid(2, base_seed=5, beta=[0.1, 0.2], tau=[0.7])
    assert [(p["seed"], p["beta"]) for p in pts] == [(5, 0.1), (6, 0.1), (5, 0.2), (6, 0.2)]
    np.testing.assert_allclose(sweep.stacked(pts, "beta"), [0.1, 0.1, 0.2, 0.2])
    keys = sweep.seed_keys(pts)
    np.testing.assert_array_equal(keys[0], jax.random.PRNGKey(5))
    np.testing.assert_array_equal(keys[2], keys[0])


def test_aggregate_statistics():
    agg = sweep.aggregate([1.0, 2.0, 3.0, 4.0, 100.0])
    assert agg["mean"] == pytest.approx(22.0)
    assert agg["iqm"] == pytest.approx(3.0)  # middle 50 %: 2, 3, 4
    assert agg["ci95"][0] <= agg["mean"] <= agg["ci95"][1]
    assert sweep.aggregate([2.0])["std"] == 0.0


def test_sharded_vmapped_chunk_equals_unsharded_on_4_devices():
    code = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        from jaxdiff.train import sweep
        assert len(jax.devices()) == 4, jax.devices()
        def chunk(x, key):  # a stand-in training chunk: 20 noisy contraction steps
            def body(x, k):
                return 0.9 * x + 0.1 * jax.random.normal(k, x.shape), None
            x, _ = jax.lax.scan(body, x, jax.random.split(key, 20))
            return x
        pts = sweep.grid(3, beta=[0.1, 0.2])                     # 6 runs, padded to 8 for 4 devices
        keys = sweep.seed_keys(pts)
        x0 = jnp.ones((len(pts), 5)) * sweep.stacked(pts, "beta")[:, None]
        ref = jax.jit(jax.vmap(chunk))(x0, keys)
        mesh = sweep.make_mesh()
        n = sweep.pad_runs(len(pts), mesh)
        xs, ks = sweep.shard_runs(sweep.pad_tree((x0, keys), n), mesh)
        out = jax.jit(jax.vmap(chunk))(xs, ks)
        assert len(out.sharding.device_set) == 4
        np.testing.assert_allclose(np.asarray(out)[: len(pts)], ref, rtol=1e-6)
        single = chunk(x0[4], keys[4])
        np.testing.assert_allclose(np.asarray(out)[4], single, rtol=1e-5, atol=1e-6)
        print("OK")
    """)
    env = launcher_env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]
