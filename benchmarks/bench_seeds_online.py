r"""Seeds in one vmapped process vs seeds one after another, for the online runner (jaxdiff.train.online: run_jax / run_gym with a list of run points).

  python benchmarks/bench_seeds_online.py                      # bandit (QVPO) + Hopper-v5 (SAC), N = 1, 4, 8
  python benchmarks/bench_seeds_online.py --ns=1,4,8,16 --skip_gym
  python benchmarks/bench_seeds_online.py --gym_algo=qvpo --gym_env=Hopper-v5   # QVPO at small n_d on MuJoCo
  python benchmarks/bench_seeds_online.py --sequential=measure  # really run the N sequential runs (slow)

For each task and each N:
  * vmapped: ONE `run_*_multi` call training N seeds (states stacked, every step vmapped, sharded over the
    visible devices);
  * sequential: N single-seed `run_*` calls. By default the single run is measured once and multiplied by N
    (the N runs are identical in cost); --sequential=measure runs all N.
Reported per N: steady-state training time per env step of all N runs (compile, evaluation, logging and
checkpoints excluded; the fastest of the drivers' own per-window steps/s after the first post-warm-up window,
which is robust to other processes on a shared machine; the mean window is in the JSON too), the same as
env steps/s summed over runs, the ratio to one run ("8 seeds cost x one seed"), and end-to-end wall time including
compilation (a sequential launch compiles once per run). Tasks:
  * bandit: QVPO on the pure-JAX 3-peak bandit with the launcher's bandit preset (everything inside lax.scan);
  * gym: SAC (default) on a MuJoCo task stepped on the host, N env copies feeding one vmapped dispatch per step.
    The replay capacity is the run length: with a large buffer, XLA:CPU copies part of a single run's buffer
    on every step (BUILD_NOTES), which would make the single-run baseline look slower than its compute.
Also, per task, the update alone (a replay batch given, no env, no host): `vmap(agent.update)` over N runs vs one
update, fastest of 15 calls — the compute side of the comparison, free of host and env costs.
Writes a JSON record to --out (default runs/bench_seeds_online.json).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from common import hardware  # noqa: E402
from jaxdiff import qvpo  # noqa: E402
from jaxdiff.baselines import sac, td3  # noqa: E402
from jaxdiff.envs import bandit  # noqa: E402
from jaxdiff.train import online, sweep  # noqa: E402

# experiments/qvpo_online.py PRESETS["bandit"] (kept in step by hand: the launcher defines absl flags on import)
BANDIT_QVPO = dict(batch_size=64, n_d=16, diffusion_steps=10, k_t=1, k_eval=8, actor_hidden=64,
                   critic_hidden=(256, 256), critic_lr=1e-3)


def _steady_sps(workdir: str, warmup: int) -> float:
    """Env steps/s (per run) of the fastest log window after warm-up (the first is left out: it may compile).

    The fastest window, not the mean: on a shared machine other processes only ever slow a window down, so the
    best window is the closest to the code's own cost (the mean is kept in the JSON as well)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        recs = [json.loads(x) for x in f]
    wins = [r for r in recs if "sps" in r and r.get("run", 0) == 0 and r["env_step"] > warmup]
    wins = wins[1:] if len(wins) > 1 else wins
    _MEANS.append(float(np.mean([r["sps"] for r in wins])))
    return float(np.max([r["sps"] for r in wins]))


_MEANS: list[float] = []  # mean-window steps/s of the last measurements, for the JSON record


def _single(train, seed: int, warmup: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as wd:
        t = time.perf_counter()
        train(wd, seed)
        return _steady_sps(wd, warmup), time.perf_counter() - t


def _multi(train, n: int, warmup: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as wd:
        t = time.perf_counter()
        train(wd, sweep.grid(n))
        return _steady_sps(wd, warmup), time.perf_counter() - t


def bench(task: str, ns: list[int], single_train, multi_train, warmup: int, steps: int, measure_all: bool) -> list:
    """single_train(workdir, seed), multi_train(workdir, points): run the task; returns one row per N."""
    sps1, wall1 = _single(single_train, 0, warmup)
    mean_sps1 = _MEANS[-1]
    print(f"[{task}] single run: {sps1:.1f} env steps/s, wall {wall1:.1f} s (incl. compile)", flush=True)
    rows = []
    for n in ns:
        spsn, walln = _multi(multi_train, n, warmup)
        mean_spsn = _MEANS[-1]
        if measure_all:
            seq = [_single(single_train, s, warmup) for s in range(n)]
            seq_step_s, seq_wall = sum(1.0 / s for s, _ in seq), sum(w for _, w in seq)
        else:
            seq_step_s, seq_wall = n / sps1, n * wall1
        row = {
            "task": task, "n": n, "steps": steps, "warmup": warmup,
            "vmapped_s_per_env_step_all_runs": 1.0 / spsn,
            "vmapped_env_steps_per_s_all_runs": n * spsn,
            "vmapped_cost_vs_one_run": sps1 / spsn,
            "sequential_s_per_env_step_all_runs": seq_step_s,
            "sequential_env_steps_per_s_all_runs": n / seq_step_s,
            "speedup_vmapped_vs_sequential": seq_step_s * spsn,
            "vmapped_wall_s_incl_compile": walln,
            "sequential_wall_s_incl_compile": seq_wall,
            "sequential": "measured" if measure_all else "N x the single run",
            "mean_window_env_steps_per_s_per_run": {"single": mean_sps1, "vmapped": mean_spsn},
        }
        print(f"[{task}] N={n:2d}: vmapped {row['vmapped_env_steps_per_s_all_runs']:8.1f} env steps/s (all runs), "
              f"{1e3 / spsn:7.2f} ms per step of all runs = {row['vmapped_cost_vs_one_run']:.2f}x one run | "
              f"sequential {row['sequential_env_steps_per_s_all_runs']:8.1f} env steps/s -> "
              f"speedup x{row['speedup_vmapped_vs_sequential']:.2f} | wall incl. compile {walln:.0f} s vs "
              f"{seq_wall:.0f} s", flush=True)
        rows.append(row)
    return rows


def _min_time(fn, *args, reps: int = 15) -> float:
    """Fastest of reps calls (after a compiling one): robust to other processes on a shared machine."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def bench_updates(name: str, agent, obs_dim: int, action_dim: int, ns: list[int]) -> list:
    """One agent.update (replay batch given) vmapped over N runs vs the single update: the compute alone."""
    from jaxdiff.data.replay import Transition

    def batch(key):
        k = jax.random.split(key, 4)
        r = agent.replay_rows
        return Transition(jax.random.normal(k[0], (r, obs_dim)),
                          jax.random.uniform(k[1], (r, action_dim), minval=-1, maxval=1),
                          jax.random.normal(k[2], (r,)), jax.random.normal(k[3], (r, obs_dim)), jnp.zeros(r))

    key = jax.random.PRNGKey(0)
    t1 = _min_time(jax.jit(agent.update), agent.init(key), batch(key), key)
    rows = []
    for n in ns:
        keys = jax.random.split(key, n)
        tn = _min_time(jax.jit(jax.vmap(agent.update)), jax.vmap(agent.init)(keys), jax.vmap(batch)(keys), keys)
        rows.append({"task": name, "n": n, "single_update_ms": 1e3 * t1, "vmapped_update_ms": 1e3 * tn,
                     "vmapped_cost_vs_one_run": tn / t1, "speedup_vmapped_vs_sequential": n * t1 / tn})
        print(f"[{name} update only] N={n:2d}: vmapped {1e3 * tn:7.2f} ms = {tn / t1:.2f}x one update "
              f"({1e3 * t1:.2f} ms) -> speedup x{n * t1 / tn:.2f} over N sequential updates", flush=True)
    return rows


def bandit_task(a) -> tuple:
    env = bandit.make_bandit()
    w, total = a.bandit_warmup, a.bandit_warmup + a.bandit_steps
    cfg = qvpo.QVPOConfig(**BANDIT_QVPO, entropy_horizon=float(total), entropy_offset=float(w))
    agent = qvpo.make(cfg, env.obs_dim, env.action_dim)
    log = a.bandit_steps // 8
    run = online.OnlineConfig(total_steps=total, warmup_steps=w, eval_every=total, eval_episodes=10, log_every=log,
                              checkpoint_every=0, buffer_size=total, progress=False)
    assert w % log == 0, "bandit warmup must be a multiple of bandit_steps / 8 (chunk = log window)"

    def single(wd, seed):
        import dataclasses

        online.run_jax(agent, env, dataclasses.replace(run, seed=seed), wd, env_name="bandit")

    def multi(wd, points):
        online.run_jax(agent, env, run, wd, points, env_name="bandit")

    return single, multi, w, total, agent


def gym_task(a) -> tuple:
    from jaxdiff.envs.evaluate import make_env

    probe = make_env(a.gym_env)
    obs_dim, action_dim = int(np.prod(probe.observation_space.shape)), int(np.prod(probe.action_space.shape))
    probe.close()
    if a.gym_algo == "qvpo":
        agent = qvpo.make(qvpo.QVPOConfig(n_d=a.gym_nd), obs_dim, action_dim)
    else:
        agent = (sac if a.gym_algo == "sac" else td3).make(
            (sac.SACConfig if a.gym_algo == "sac" else td3.TD3Config)(), obs_dim, action_dim)
    w, total = a.gym_warmup, a.gym_warmup + a.gym_steps
    run = online.OnlineConfig(total_steps=total, warmup_steps=w, eval_every=total, eval_episodes=1,
                              log_every=a.gym_steps // 8, checkpoint_every=0, buffer_size=total,
                              max_episode_steps=200, progress=False)

    def single(wd, seed):
        import dataclasses

        online.run_gym(agent, a.gym_env, dataclasses.replace(run, seed=seed), wd)

    def multi(wd, points):
        online.run_gym(agent, a.gym_env, run, wd, points)

    return single, multi, w, total, (agent, obs_dim, action_dim)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ns", default="1,4,8", help="numbers of seeds")
    p.add_argument("--sequential", choices=["extrapolate", "measure"], default="extrapolate")
    p.add_argument("--bandit_warmup", type=int, default=200)
    p.add_argument("--bandit_steps", type=int, default=800, help="post-warm-up env steps (one update each)")
    p.add_argument("--gym_env", default="Hopper-v5")
    p.add_argument("--gym_algo", choices=["sac", "td3", "qvpo"], default="sac")
    p.add_argument("--gym_nd", type=int, default=8, help="n_d when --gym_algo=qvpo")
    p.add_argument("--gym_warmup", type=int, default=300)
    p.add_argument("--gym_steps", type=int, default=400, help="post-warm-up env steps (one update each)")
    p.add_argument("--skip_bandit", action="store_true")
    p.add_argument("--skip_gym", action="store_true")
    p.add_argument("--updates_only", action="store_true", help="only the update-only comparison (fast)")
    p.add_argument("--out", default=os.path.join("runs", "bench_seeds_online.json"))
    a = p.parse_args()
    absl_logging.set_verbosity(absl_logging.WARNING)
    ns = [int(x) for x in a.ns.split(",")]
    hw = hardware()
    print(f"{hw}; {len(jax.devices())} device(s); load average at start {os.getloadavg()}", flush=True)
    rec = {"hardware": hw, "devices": len(jax.devices()), "loadavg_start": os.getloadavg(), "rows": []}
    measure = a.sequential == "measure"
    rec["update_only"] = []
    if not a.skip_bandit:
        single, multi, w, total, agent = bandit_task(a)
        rec["update_only"] += bench_updates("bandit/qvpo", agent, 1, 2, ns)
        if not a.updates_only:
            rec["rows"] += bench("bandit/qvpo", ns, single, multi, w, total, measure)
    if not a.skip_gym:
        single, multi, w, total, (agent, od, ad) = gym_task(a)
        rec["update_only"] += bench_updates(f"{a.gym_env}/{a.gym_algo}", agent, od, ad, ns)
        if not a.updates_only:
            rec["rows"] += bench(f"{a.gym_env}/{a.gym_algo}", ns, single, multi, w, total, measure)
    rec["loadavg_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(rec, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
