"""SRPO's behavior and critic stages: one after the other (two jitted chunks) vs together (one joint chunk).

  python benchmarks/bench_joint.py                 # Hopper shapes, paper batches (behavior 2048, critic 256)
  python benchmarks/bench_joint.py --behavior_batch=256 --chunk=50

Prints the wall time of one chunk of K updates of each stage done apart and together (best of --repeats,
alternating, after compilation), the ratio, and whether the results are bit-identical. Run it with nothing else
on the cores. The gain this is for is an accelerator's: there the critic's small kernels can fill the device
beside the behavior model's; on a CPU both are compute-bound and the expected ratio is ~1.
"""
import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from conftest import random_batch  # noqa: E402

from jaxdiff import srpo  # noqa: E402


def best(f, repeats):
    """Best wall time of f() over `repeats` calls."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f())
        out.append(time.perf_counter() - t0)
    return min(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--behavior_batch", type=int, default=2048)
    ap.add_argument("--critic_batch", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=10, help="updates per jitted chunk")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cfg = srpo.SRPOConfig(behavior_batch=a.behavior_batch, critic_batch=a.critic_batch)
    algos = srpo.make(cfg, 11, 3)  # Hopper shapes
    data = random_batch(jax.random.PRNGKey(0), 100_000, 11, 3)
    b0, c0 = jax.jit(algos.behavior.init)(jax.random.PRNGKey(1)), jax.jit(algos.critic.init)(jax.random.PRNGKey(2))
    kb, kc, K = jax.random.PRNGKey(3), jax.random.PRNGKey(4), a.chunk
    fb = jax.jit(lambda s: srpo.chunk(algos.behavior, s, data, kb, K))
    fc = jax.jit(lambda s: srpo.chunk(algos.critic, s, data, kc, K))
    fj = jax.jit(lambda b, c: srpo.joint_chunk((algos.behavior, algos.critic), (b, c), data, (kb, kc), K))
    (rb, _), (rc, _) = fb(b0), fc(c0)  # compile, and the reference results
    (jb, jc), _ = fj(b0, c0)
    identical = all(np.array_equal(np.asarray(x), np.asarray(y))
                    for x, y in zip(jax.tree.leaves((rb, rc)), jax.tree.leaves((jb, jc))))
    apart, together = [], []
    for _ in range(2):  # alternate, so drift hits both
        apart.append(best(lambda: (fb(b0), fc(c0)), a.repeats))
        together.append(best(lambda: fj(b0, c0), a.repeats))
    res = {"device": jax.devices()[0].device_kind, "behavior_batch": a.behavior_batch, "critic_batch": a.critic_batch,
           "chunk": K, "apart_s": min(apart), "together_s": min(together),
           "speedup_together": min(apart) / min(together), "bit_identical": identical}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
