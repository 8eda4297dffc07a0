"""N SRPO seeds vmapped in one jitted chunk against N sequential single-seed chunks, per stage, at paper sizes.

  python benchmarks/bench_seeds_offline.py [--quick] [--seeds=1,4,8] [--stages=behavior,critic,policy]
                                           [--json=runs/bench_seeds_offline.json]

For each stage (behavior model: LN-ResNet 3 x 256/1024, batch 2048; IQL critic 256x2, batch 256; policy
extraction, batch 256, frozen full-size behavior model and critic) and each N: the seconds per chunk of K updates
of (a) the driver's chunk — the N runs' states stacked and the chunk vmapped, as `jaxdiff.srpo.driver` trains
them — and (b) N calls of the single-run jitted chunk one after another. Compilation is excluded (a warm-up call
first); (a) and (b) are timed alternately and the best of --reps calls is kept, so that a shared, busy CPU slows
both alike and a burst of other load does not decide the ratio. Reported: both times, the speed-up (b)/(a), and (a) for N seeds over (a) for one seed — the issue's goal
on a GPU is at most 2x for 8 seeds. Runs on jax's default backend (GPU when one is visible); the hardware line
names it. Shapes default to halfcheetah's (17, 6).
"""
import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hardware, write_result  # noqa: E402

from jaxdiff.data.replay import Transition  # noqa: E402
from jaxdiff.srpo import stages, train  # noqa: E402
from jaxdiff.train.over_runs import over_runs  # noqa: E402
from jaxdiff.srpo.config import SRPOConfig  # noqa: E402



def _data(n, obs_dim, action_dim):
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    return Transition(obs=jax.random.normal(k[0], (n, obs_dim)),
                      action=jax.random.uniform(k[1], (n, action_dim), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (n,)), next_obs=jax.random.normal(k[3], (n, obs_dim)),
                      done=jnp.zeros((n,)))


def best_times(fns, reps: int) -> list[float]:
    """Best-of-reps seconds per call of each fn (which must return something to block on), timed alternately,
    after one warm-up call each (compilation)."""
    for fn in fns:
        jax.block_until_ready(fn())
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def stacked_states(n: int, obs_dim: int, action_dim: int, cfg: SRPOConfig) -> dict:
    """Fresh stacked states of n seeds for every stage (policy built on the fresh behavior model and critic)."""
    return jax.jit(lambda: stages.init_all(stages.make(cfg, obs_dim, action_dim), [{"seed": s} for s in range(n)]))()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer updates per chunk and shorter timings")
    ap.add_argument("--seeds", default="1,4,8")
    ap.add_argument("--stages", default="behavior,critic,policy")
    ap.add_argument("--obs_dim", type=int, default=17)
    ap.add_argument("--action_dim", type=int, default=6)
    ap.add_argument("--reps", type=int, default=None, help="timed calls of each variant (default 5; quick 2)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    stage_names = args.stages.split(",")
    o, a = args.obs_dim, args.action_dim
    reps = args.reps or (2 if args.quick else 5)
    steps = {"behavior": 1 if args.quick else 2, "critic": 20 if args.quick else 100,
             "policy": 10 if args.quick else 50}
    cfg = SRPOConfig()  # paper sizes
    data = _data(100_000, o, a)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {"hardware": hardware(), "devices": len(jax.devices()), "load_avg_1min": load, "obs_dim": o,
           "action_dim": a, "steps_per_chunk": steps, "reps": reps, "results": {}}
    print(f"hardware: {out['hardware']}, {out['devices']} device(s), load average {load}")
    print(f"{'stage':9s} {'N':>3s} {'vmapped s/chunk':>16s} {'sequential s/chunk':>19s} {'speed-up':>9s} "
          f"{'vs 1 seed':>10s} {'run-steps/s':>12s}")
    states = stacked_states(max(seeds), o, a, cfg)
    algos = stages.make(cfg, o, a)
    single = {s: jax.jit(lambda st, d, kk, num_steps, s=s: train.chunk(algos.stage(s), st, d, kk, num_steps),
                         static_argnames="num_steps") for s in stage_names}

    def multi(stage, st, d, keys, num_steps):  # the driver's chunk of N runs (N = 1: not vmapped)
        fn = over_runs(lambda s, kk: train.chunk(algos.stage(stage), s, d, kk, num_steps), keys.shape[0])
        return fn(st, keys)

    multi = jax.jit(multi, static_argnums=(0,), static_argnames="num_steps")
    for stage in stage_names:
        k = steps[stage]
        base = None
        for n in seeds:
            st = jax.tree.map(lambda x: x[:n], states[stage])
            _, keys = stages.stage_keys_of([{"seed": s} for s in range(n)], stage)
            one = [jax.tree.map(lambda x, i=i: x[i], st) for i in range(n)]
            t_vmap, t_seq = best_times(
                [lambda: multi(stage, st, data, keys, num_steps=k),
                 lambda: [single[stage](one[i], data, keys[i], num_steps=k) for i in range(n)]], reps)
            base = t_vmap if n == 1 else base
            row = {"vmapped_s": t_vmap, "sequential_s": t_seq, "speedup": t_seq / t_vmap,
                   "vs_one_seed": t_vmap / base if base else None, "run_steps_per_s": n * k / t_vmap}
            out["results"].setdefault(stage, {})[n] = row
            print(f"{stage:9s} {n:3d} {t_vmap:16.4f} {t_seq:19.4f} {row['speedup']:8.2f}x "
                  f"{(row['vs_one_seed'] or float('nan')):9.2f}x {row['run_steps_per_s']:12.1f}")
    if args.json:
        write_result(args.json, out)


if __name__ == "__main__":
    main()
