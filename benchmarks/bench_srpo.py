"""SRPO throughput at the paper's sizes, through jaxdiff.srpo's own chunks and act functions.

  python benchmarks/bench_srpo.py [--quick] [--obs_dim=17 --action_dim=6] [--json=runs/bench_srpo.json]

Training: steps/s of each stage's jitted chunk (batches drawn on the device inside the scan): behavior model
(LN-ResNet 3 x 256/1024, AdamW, batch 2048), IQL critic (256x2, batch 256), SRPO policy extraction (batch 256,
frozen full-size behavior model and critic). Inference: actions/s of the SRPO policy (one MLP pass) against
diffusion sampling of the behavior model with DPM-Solver (15 steps) and best-of-N by Q (N DPM-Solver samples per
state, argmax of min(Q1, Q2)), at batch 1 and 256, in one run. Default shapes are halfcheetah's (17, 6).
"""
import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hardware, time_per_call, write_result  # noqa: E402

from jaxdiff.data.replay import Transition  # noqa: E402
import functools  # noqa: E402

from jaxdiff.srpo import behavior, critic, stages, train  # noqa: E402
from jaxdiff.srpo.config import SRPOConfig  # noqa: E402

# Official PyTorch code measured side by side with jaxdiff on this machine kind (2-core AMD EPYC with AVX-512, torch
# CPU 2 threads, Hopper shapes; issue 12, 2026-11). The spec's older figures came from a slower CPU without AVX-512.
TORCH_REF = {"behavior": 6.26, "critic": 200.0, "policy": 89.4, "act_b1": 19_286.0}


def _data(n, obs_dim, action_dim):
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    return Transition(obs=jax.random.normal(k[0], (n, obs_dim)), action=jax.random.uniform(k[1], (n, action_dim), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (n,)), next_obs=jax.random.normal(k[3], (n, obs_dim)),
                      done=jnp.zeros((n,)))


def best_of_n(cfg, action_dim, b_state, c_state, obs, key, n, steps=15):
    """IDQL/SfBC-style acting: n behavior samples per state, keep the one with the highest min(Q1, Q2)."""
    B = obs.shape[0]
    rep = jnp.repeat(obs, n, axis=0)
    a = jnp.clip(behavior.sampler(cfg, action_dim, steps=steps)(b_state, rep, key), -1.0, 1.0)
    q = jnp.min(critic.q_values(c_state.q_target, cfg, rep, a), axis=0).reshape(B, n)
    return a.reshape(B, n, -1)[jnp.arange(B), jnp.argmax(q, axis=1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short timings (smoke run)")
    ap.add_argument("--obs_dim", type=int, default=17)
    ap.add_argument("--action_dim", type=int, default=6)
    ap.add_argument("--best_of", type=int, default=32, help="N of best-of-N (SfBC/IDQL use 32-64)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    o, a = args.obs_dim, args.action_dim
    secs = 0.5 if args.quick else 3.0
    cfg = SRPOConfig()  # paper sizes: batch 2048 / 256 / 256, LN-ResNet 3x256, critic 256x2, policy 256x2
    data = _data(100_000, o, a)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    algos = stages.make(cfg, o, a)
    b = jax.jit(algos.behavior.init)(keys[0])
    c = jax.jit(algos.critic.init)(keys[1])
    p = jax.jit(algos.policy.init)(keys[2], b, c)
    out = {"hardware": hardware(), "obs_dim": o, "action_dim": a, "train_steps_per_s": {}, "actions_per_s": {}}
    print(f"hardware: {out['hardware']}  (shapes obs {o}, action {a})")

    chunks = {"behavior": (functools.partial(train.chunk, algos.behavior), b, 2 if args.quick else 10),
              "critic": (functools.partial(train.chunk, algos.critic), c, 50 if args.quick else 500),
              "policy": (functools.partial(train.chunk, algos.policy), p, 20 if args.quick else 200)}
    for name, (fn, state, k) in chunks.items():
        f = jax.jit(fn, static_argnames="num_steps")
        sps = k / time_per_call(lambda: f(state, data, jax.random.PRNGKey(2), num_steps=k), min_seconds=secs)
        out["train_steps_per_s"][name] = sps
        print(f"{name:9s} update: {sps:10.1f} steps/s   (official PyTorch, this CPU, Hopper shapes: {TORCH_REF[name]})")

    act = jax.jit(lambda st, obs: algos.policy.act(st, obs, None))
    dpm = jax.jit(algos.behavior.act)
    bon = jax.jit(functools.partial(best_of_n, cfg, a), static_argnames=("n",))
    for batch in (1, 256):
        obs = jax.random.normal(jax.random.PRNGKey(3), (batch, o))
        k = jax.random.PRNGKey(4)
        rates = {"srpo": batch / time_per_call(lambda: act(p, obs), min_seconds=secs),
                 "dpm15": batch / time_per_call(lambda: dpm(b, obs, k), min_seconds=secs),
                 f"best_of_{args.best_of}": batch / time_per_call(lambda: bon(b, c, obs, k, n=args.best_of),
                                                                  min_seconds=secs)}
        out["actions_per_s"][f"batch_{batch}"] = rates
        ratio = {m: rates["srpo"] / r for m, r in rates.items() if m != "srpo"}
        out["actions_per_s"][f"batch_{batch}"]["srpo_speedup"] = ratio
        print(f"batch {batch:3d}: SRPO {rates['srpo']:12,.0f} actions/s | DPM-Solver-15 {rates['dpm15']:10,.1f} "
              f"(x{ratio['dpm15']:,.0f} slower) | best-of-{args.best_of} by Q {rates[f'best_of_{args.best_of}']:10,.1f} "
              f"(x{ratio[f'best_of_{args.best_of}']:,.0f} slower)"
              + (f" | official PyTorch SRPO batch 1: {TORCH_REF['act_b1']:,.0f}" if batch == 1 else ""))
    if args.json:
        write_result(args.json, out)


if __name__ == "__main__":
    main()
