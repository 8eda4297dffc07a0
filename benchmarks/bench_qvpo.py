r"""QVPO speed on this machine, beside the official PyTorch code measured on the same machine kind (issue 12 table).

  python benchmarks/bench_qvpo.py                  # everything (a few minutes on a 2-core CPU)
  python benchmarks/bench_qvpo.py --skip_train     # micro-benchmarks only
  python benchmarks/bench_qvpo.py --nd=8,64 --train_nd=8 --train_steps=60

Measures, with compile time excluded:
  1. update/s of one full update (critic + actor) at Hopper sizes, batch 256, T=20, K_t=4, for each --nd;
     also with the reference Mish (fast_mish=False) to show what the one-exp Mish buys (the sampling chain's
     shared time embedding and hoisted obs projection are on in both);
  2. actions/s of acting (best of K_b=4, one state, one dispatch + device->host copy), and of eval (best of 32);
  3. env steps/s of FULL training on Hopper-v5 through jaxdiff.train.online.run_gym (env step on the host + one
     fused dispatch: replay add + update + next action), after warm-up, for --train_nd (and --paper_nd for a few
     steps), with a 1e6-row replay buffer;
  4. the analytic FLOP count of one update (matmuls), used for the GPU cost estimate.
Writes a JSON record to --out (default runs/bench_qvpo.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxdiff import qvpo  # noqa: E402
from jaxdiff.data.replay import Transition  # noqa: E402
from jaxdiff.train import online  # noqa: E402

TORCH_REF = {  # official PyTorch code measured side by side on this machine kind (2-core AMD EPYC, AVX-512, torch 2
    # threads; issue 12, 2026-11); the spec's older figures (0.35 / 2.0 / 105) came from a slower CPU
    "update_per_s": {64: 0.530, 8: 3.07},
    "act_per_s": 183.0,
}
OBS, ACT = 11, 3  # Hopper-v5


def _timeit(fn, *args, reps=3, min_time=2.0):
    out = fn(*args)
    jax.block_until_ready(out)  # compile + warm
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < reps or time.perf_counter() < t_end:
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
        if len(times) >= 50:
            break
    return float(np.median(times))


def _batch(rows, key=jax.random.PRNGKey(0)):
    k = jax.random.split(key, 4)
    return Transition(jax.random.normal(k[0], (rows, OBS)), jax.random.uniform(k[1], (rows, ACT), minval=-1, maxval=1),
                      jax.random.normal(k[2], (rows,)), jax.random.normal(k[3], (rows, OBS)), jnp.zeros(rows))


def analytic_update_flops(cfg: qvpo.QVPOConfig, obs_dim: int = OBS, act_dim: int = ACT) -> float:
    """2 x multiply-adds of the matmuls in one update (XLA's cost analysis counts a scan body once)."""
    h, L = cfg.actor_hidden, cfg.actor_layers
    actor = (act_dim + 32 + obs_dim) * h + (L - 1) * h * h + h * act_dim  # per row; time embedding amortised
    ch = cfg.critic_hidden
    critic = (obs_dim + act_dim) * ch[0] + sum(a * b for a, b in zip(ch[:-1], ch[1:])) + ch[-1]
    B, T = cfg.batch_size, cfg.diffusion_steps
    chains = B * (cfg.k_t + cfg.n_d) * T  # target-policy samples + actor's n_d samples
    critic_rows = 2 * (B * cfg.k_t + B + B * cfg.n_d) + 2 * 2 * B  # scoring, target, forward; + backward ~2x
    loss_rows = 3 * B * cfg.chosen * (1 + cfg.n_uniform)  # forward + backward
    return 2.0 * (chains * actor + critic_rows * critic + loss_rows * actor)


def bench_update(nd: int, fast: bool) -> dict:
    """Seconds per jitted update (critic + actor) at Hopper sizes, with n_d = nd and the fast or reference Mish."""
    cfg = qvpo.QVPOConfig(n_d=nd, fast_mish=fast)
    q = qvpo.make_parts(cfg, OBS, ACT)
    st = q.init(jax.random.PRNGKey(0))
    b = _batch(2 * cfg.batch_size)
    up = jax.jit(q.update)
    sec = _timeit(up, st, b, jax.random.PRNGKey(1), reps=3, min_time=3.0)
    flops = analytic_update_flops(cfg)
    return {"n_d": nd, "fast_mish": fast, "update_s": sec, "updates_per_s": 1.0 / sec, "analytic_flops": flops,
            "achieved_gflops_per_s": flops / sec / 1e9}


def bench_act() -> dict:
    """Acting rates: one explore action (best of k_b, host round trip) and eval on 10 states (best of k_eval)."""
    q = qvpo.make_parts(qvpo.QVPOConfig(), OBS, ACT)
    st = q.init(jax.random.PRNGKey(0))
    explore, act = jax.jit(q.explore), jax.jit(q.act)
    obs1 = np.zeros((1, OBS), np.float32)
    obs10 = np.zeros((10, OBS), np.float32)
    f1 = lambda k: np.asarray(explore(st, obs1, k))  # noqa: E731  includes host->device->host
    f10 = lambda k: np.asarray(act(st, obs10, k))  # noqa: E731
    key = jax.random.PRNGKey(0)
    f1(key), f10(key)
    n = 200
    t = time.perf_counter()
    for i in range(n):
        f1(jax.random.fold_in(key, i))
    explore_s = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(20):
        f10(jax.random.fold_in(key, i))
    eval_s = (time.perf_counter() - t) / 20
    return {"explore_best_of_4_actions_per_s": 1.0 / explore_s,
            "eval_best_of_32_x10_envs_steps_per_s": 1.0 / eval_s}


def bench_train(nd: int, post_warmup_steps: int, log_every: int, buffer_size: int) -> dict:
    """Env steps/s of full training on Hopper-v5 through the gymnasium driver, after warm-up."""
    cfg = qvpo.QVPOConfig(n_d=nd, entropy_horizon=1e6, entropy_offset=256.0)
    agent = qvpo.make(cfg, OBS, ACT)
    warm = 512  # >= 2 x batch rows; uniform actions, no updates
    run = online.OnlineConfig(total_steps=warm + post_warmup_steps, warmup_steps=warm, eval_every=10**9,
                              eval_episodes=1, log_every=log_every, checkpoint_every=0, buffer_size=buffer_size,
                              progress=False)
    with tempfile.TemporaryDirectory() as wd:
        t = time.perf_counter()
        s = online.run_gym(agent, "Hopper-v5", run, wd, run_info={"algo": "qvpo"})
        wall = time.perf_counter() - t
        recs = [json.loads(x) for x in open(os.path.join(wd, "metrics.jsonl"))]
    windows = [r for r in recs if "sps" in r and r["env_step"] > warm]
    steady = windows[1:] if len(windows) > 1 else windows  # the first window after warm-up includes the compile
    warm_sps = [r["sps"] for r in recs if "sps" in r and r["env_step"] <= warm]
    return {
        "n_d": nd,
        "buffer_size": buffer_size,
        "train_env_steps_per_s": float(np.mean([r["sps"] for r in steady])),
        "warmup_env_steps_per_s": float(np.mean(warm_sps[1:] or warm_sps)),
        "post_warmup_steps": post_warmup_steps,
        "wall_s_incl_compile_and_final_eval": wall,
        "finite_metrics": all(np.isfinite(v) for r in recs for k, v in r.items() if k.startswith("agent/")),
        "final_eval_return": s["runs"][0].get("final_eval_return"),
    }


def main():
    """Parse the flags, run the benchmarks, print and write the JSON record."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nd", default="8,64", help="n_d values for the update benchmark")
    p.add_argument("--reference_path", type=lambda s: s.lower() != "false", default=True,
                   help="also time the reference Mish path (fast_mish=False)")
    p.add_argument("--train_nd", type=int, default=8)
    p.add_argument("--train_steps", type=int, default=150, help="post-warm-up env steps at --train_nd")
    p.add_argument("--paper_nd", type=int, default=64)
    p.add_argument("--paper_steps", type=int, default=12, help="post-warm-up env steps at --paper_nd (0 = skip)")
    p.add_argument("--buffer_size", type=int, default=1_000_000)
    p.add_argument("--skip_train", action="store_true")
    p.add_argument("--out", default=os.path.join("runs", "bench_qvpo.json"))
    a = p.parse_args()

    rec = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
                    "device": str(jax.devices()[0]), "loadavg_start": os.getloadavg()},
        "torch_reference": TORCH_REF,
        "update": [],
    }
    for nd in [int(x) for x in a.nd.split(",")]:
        for fast in ([True, False] if a.reference_path else [True]):
            r = bench_update(nd, fast)
            ref = TORCH_REF["update_per_s"].get(nd)
            ms = r["update_s"] * 1e3
            print(f"update n_d={nd:3d} fast_mish={fast!s:5}: {r['updates_per_s']:.2f} updates/s ({ms:.0f} ms)"
                  + (f"   torch: {ref} updates/s -> x{r['updates_per_s'] / ref:.1f}" if ref else "")
                  + f"   {r['analytic_flops'] / 1e9:.0f} GFLOP/update = {r['achieved_gflops_per_s']:.0f} GFLOP/s",
                  flush=True)
            rec["update"].append(r)
    r = bench_act()
    print(f"acting: explore (best of 4, 1 state) {r['explore_best_of_4_actions_per_s']:.0f} actions/s "
          f"(torch {TORCH_REF['act_per_s']}); eval (best of 32, 10 envs) "
          f"{r['eval_best_of_32_x10_envs_steps_per_s']:.1f} steps/s", flush=True)
    rec["act"] = r
    if not a.skip_train:
        rec["train"] = []
        for nd, steps, log_every in [(a.train_nd, a.train_steps, max(a.train_steps // 5, 1)),
                                     (a.paper_nd, a.paper_steps, max(a.paper_steps // 3, 1))]:
            if steps <= 0:
                continue
            r = bench_train(nd, steps, log_every, a.buffer_size)
            print(f"full training Hopper-v5 n_d={nd}: {r['train_env_steps_per_s']:.2f} env steps/s with updates "
                  f"(warm-up {r['warmup_env_steps_per_s']:.0f} steps/s; buffer {a.buffer_size:.0e})", flush=True)
            rec["train"].append(r)
    rec["machine"]["loadavg_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rec, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
