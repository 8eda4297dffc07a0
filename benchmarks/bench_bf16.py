"""bf16 matmul option vs float32: SRPO behavior update (paper net, batch 512) and a QVPO update (N_d 8), updates/s.

  python benchmarks/bench_bf16.py      # alternates float32 / bf16 twice in one process; nothing else on the cores
"""
import os
import sys
import time

import jax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from conftest import random_batch  # noqa: E402

from jaxdiff import qvpo, srpo  # noqa: E402


def rate(f, *a, reps=3):
    """Best wall time of a call, after a warm-up call."""
    jax.block_until_ready(f(*a)); best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter(); jax.block_until_ready(f(*a)); best = min(best, time.perf_counter() - t0)
    return best
res = {}
for dt in ("float32", "bfloat16", "float32", "bfloat16"):
    cfg = srpo.SRPOConfig(behavior_batch=512, behavior_matmul_dtype=dt)
    algo = srpo.make(cfg, 11, 3).behavior
    st = jax.jit(algo.init)(jax.random.PRNGKey(0))
    data = random_batch(jax.random.PRNGKey(1), 4096, 11, 3)
    f = jax.jit(lambda s: srpo.chunk(algo, s, data, jax.random.PRNGKey(2), 5))
    res.setdefault(("behavior", dt), []).append(5 / rate(f, st))
    qc = qvpo.QVPOConfig(n_d=8, matmul_dtype=dt)
    qa = qvpo.make(qc, 11, 3); qs = jax.jit(qa.init)(jax.random.PRNGKey(0))
    b = random_batch(jax.random.PRNGKey(3), qa.batch_rows, 11, 3)
    g = jax.jit(qa.update)
    res.setdefault(("qvpo n_d 8", dt), []).append(1 / rate(g, qs, b, jax.random.PRNGKey(4)))
for k, v in res.items(): print(k, "updates/s", [round(x, 2) for x in v])
