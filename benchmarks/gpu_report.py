r"""One command, every accelerator figure the project needs (issue 12, point 1).

  python benchmarks/gpu_report.py                       # full: paper sizes, <= 8 min on one H200 (budget-guarded)
  python benchmarks/gpu_report.py --smoke               # tiny sizes on CPU, < 1 min, same code paths and outputs
  python benchmarks/gpu_report.py --out_dir=results --matmul_precision=default --budget_s=390

Measures, after compilation and with block_until_ready (median of a few calls):
  * each SRPO stage's updates/s inside the jitted lax.scan chunks the pipeline uses (behavior batch 2048, critic
    256, policy 256), for Hopper (11/3) and HalfCheetah (17/6) shapes;
  * QVPO's update at paper settings (N_d 64, K_t 4, T 20, batch 256), and the whole online step on gymnasium
    Hopper-v5 (env step + act + replay add + update), split into host time (env.step, packing) and device time
    (dispatch, waiting for the action);
  * acting latency at batch 1 (SRPO policy; QVPO best of 4) and SRPO act against DPM-Solver sampling of the
    behavior model (the paper's > 25x), at batch 1 and 256;
  * 1 vs 8 vmapped seeds for the SRPO behavior stage and QVPO's update;
  * trace + compile time of every jitted function.
Each case prints its analytic FLOPs per update (benchmarks/flops.py: matmuls only), the achieved TFLOP/s and its
fraction of the device's peak (benchmarks/device_peaks.py; n/a on CPU), and the projected wall time of the paper
budgets (SRPO 2M behavior / 1.5M critic / 1M policy updates; QVPO 1M env steps). A case that fails is recorded
with its error and the report goes on; cases past --budget_s are recorded as skipped.
Outputs: <out_dir>/gpu_report[_smoke].json and .md (override with --json / --md).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from functools import partial
from typing import Any, Callable, NamedTuple

if __name__ == "__main__" and "--smoke" in sys.argv[1:]:
    # Smoke mode's cost is compilation, not execution (its timings mean nothing): LLVM at -O0 halves XLA's CPU
    # compile time (user CPU 88 s -> 39 s measured). Must be set before jax starts its backend.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flops as F  # noqa: E402
from common import hardware  # noqa: E402
from device_peaks import peaks_for, reference_peak  # noqa: E402

# ================================================================================================================
# Adapter: EVERY call into jaxdiff is in this section (the API is being redesigned; adapt only here).
# Builders return (pure function of arrays, args); the report jits, compiles and times them.
# ================================================================================================================
from jaxdiff import qvpo, srpo  # noqa: E402
from jaxdiff.algorithm import Transition  # noqa: E402
from jaxdiff.envs.evaluate import make_env, scale_action  # noqa: E402
from jaxdiff.srpo import SRPOConfig  # noqa: E402
from jaxdiff.train import online_state as online_lib  # noqa: E402


def srpo_config(smoke: bool) -> SRPOConfig:
    """Paper sizes (the defaults), or tiny ones for --smoke."""
    if not smoke:
        return SRPOConfig()
    return SRPOConfig(behavior_batch=32, behavior_width=16, behavior_blocks=1, critic_batch=32, critic_width=16,
                      policy_batch=32, policy_width=16)


def srpo_sizes(cfg: SRPOConfig, dims: tuple[int, int]) -> dict:
    """Plain layer sizes for benchmarks/flops.py."""
    return dict(obs_dim=dims[0], action_dim=dims[1], behavior_batch=cfg.behavior_batch,
                behavior_width=cfg.behavior_width, behavior_blocks=cfg.behavior_blocks, critic_batch=cfg.critic_batch,
                critic_width=cfg.critic_width, critic_layers=cfg.critic_layers, policy_batch=cfg.policy_batch,
                policy_width=cfg.policy_width, policy_layers=cfg.policy_layers)


def offline_data(rows: int, dims: tuple[int, int], key: jax.Array) -> Transition:
    """A random offline dataset on the device (shapes are all that matter for timing)."""
    o, a = dims
    k = jax.random.split(key, 4)
    return Transition(obs=jax.random.normal(k[0], (rows, o)),
                      action=jax.random.uniform(k[1], (rows, a), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (rows,)), next_obs=jax.random.normal(k[3], (rows, o)),
                      done=jnp.zeros((rows,)))


def srpo_states(cfg: SRPOConfig, dims: tuple[int, int], key: jax.Array) -> dict:
    """Fresh {"behavior", "critic", "policy"} states (the policy on the fresh behavior model and critic)."""
    algos = _srpo_algos(cfg, dims)
    kb, kc, kp = jax.random.split(key, 3)
    b = jax.jit(algos.behavior.init)(kb)
    c = jax.jit(algos.critic.init)(kc)
    p = jax.jit(algos.policy.init)(kp, b, c)
    return {"behavior": b, "critic": c, "policy": p, "algos": algos}


@functools.lru_cache(maxsize=4)
def _srpo_algos(cfg: SRPOConfig, dims: tuple[int, int]):
    return srpo.make(cfg, *dims)


def srpo_stage_chunk(stage: str, states: dict, data: Transition, num_steps: int):
    """(fn(state, data, key), args): `num_steps` updates of one stage in the pipeline's jitted lax.scan chunk."""
    algo = states["algos"].stage(stage)
    return (lambda st, d, k: srpo.chunk(algo, st, d, k, num_steps)), (states[stage], data, jax.random.PRNGKey(2))


def srpo_pair_chunk(states: dict, data: Transition, num_steps: int):
    """(fn(states, data, keys), args): behavior and critic updates in ONE lax.scan (the driver's default when both
    stages train, jaxdiff.srpo.joint_chunk), `num_steps` of each."""
    a = states["algos"]
    keys = (jax.random.PRNGKey(2), jax.random.PRNGKey(3))
    return ((lambda sts, d, ks: srpo.joint_chunk((a.behavior, a.critic), sts, d, ks, num_steps)),
            ((states["behavior"], states["critic"]), data, keys))


def srpo_behavior_seeds_chunk(cfg: SRPOConfig, dims: tuple[int, int], data: Transition, n_seeds: int,
                              num_steps: int):
    """(fn(states, data, keys), args): the behavior chunk vmapped over `n_seeds` stacked seeds, shared data."""
    keys = jax.random.split(jax.random.PRNGKey(5), n_seeds)
    algo = _srpo_algos(cfg, dims).behavior
    init = jax.jit(jax.vmap(algo.init))
    chunk = jax.vmap(lambda st, d, k: srpo.chunk(algo, st, d, k, num_steps), in_axes=(0, None, 0))
    return chunk, (init(keys), data, jax.random.split(jax.random.PRNGKey(6), n_seeds))


def srpo_act(states: dict, obs: jax.Array):
    """(fn(policy_state, obs), args): the deterministic SRPO action pi(s)."""
    algo = states["algos"].policy
    return (lambda st, o: algo.act(st, o, None)), (states["policy"], obs)


def dpm_solver_sample(states: dict, obs: jax.Array, steps: int = 15):
    """(fn(behavior_state, obs, key), args): DPM-Solver samples of the behavior model (`steps` evaluations)."""
    sample = srpo.behavior.sampler(states["algos"].behavior.config, states["algos"].behavior.action_dim, steps=steps)
    return sample, (states["behavior"], obs, jax.random.PRNGKey(4))


def qvpo_config(smoke: bool) -> qvpo.QVPOConfig:
    """Paper settings (N_d 64, K_t 4, T 20, batch 256: the defaults), or tiny ones for --smoke."""
    if not smoke:
        return qvpo.QVPOConfig()
    return qvpo.QVPOConfig(batch_size=16, diffusion_steps=3, n_d=4, k_t=2, k_b=4, k_eval=2, n_uniform=2,
                           actor_hidden=16, critic_hidden=(16, 16))


def qvpo_sizes(cfg: qvpo.QVPOConfig, dims: tuple[int, int]) -> dict:
    """Plain sizes for benchmarks/flops.py."""
    return dict(obs_dim=dims[0], action_dim=dims[1], actor_hidden=cfg.actor_hidden, actor_layers=cfg.actor_layers,
                critic_hidden=tuple(cfg.critic_hidden), T=cfg.diffusion_steps, batch=cfg.batch_size, k_t=cfg.k_t,
                k_b=cfg.k_b, n_d=cfg.n_d, chosen=cfg.chosen, n_uniform=cfg.n_uniform,
                entropy_rows=cfg.n_uniform > 0 and cfg.weight_transform != "none")


def _qvpo_batch(cfg: qvpo.QVPOConfig, dims: tuple[int, int], key: jax.Array) -> Transition:
    return offline_data(2 * cfg.batch_size, dims, key)  # critic half + fresh actor half


@functools.lru_cache(maxsize=2)
def _qvpo_algo_state(cfg: qvpo.QVPOConfig, dims: tuple[int, int]):
    algo = qvpo.make(cfg, *dims)
    return algo, jax.jit(algo.init)(jax.random.PRNGKey(0))


def qvpo_update(cfg: qvpo.QVPOConfig, dims: tuple[int, int]):
    """(fn(state, batch, key), args): one QVPO update."""
    algo, state = _qvpo_algo_state(cfg, dims)
    return algo.update, (state, _qvpo_batch(cfg, dims, jax.random.PRNGKey(1)), jax.random.PRNGKey(2))


def qvpo_seeds_update(cfg: qvpo.QVPOConfig, dims: tuple[int, int], n_seeds: int):
    """(fn(states, batches, keys), args): QVPO's update vmapped over `n_seeds` seeds (one batch per seed)."""
    algo = qvpo.make(cfg, *dims)
    states = jax.jit(jax.vmap(algo.init))(jax.random.split(jax.random.PRNGKey(0), n_seeds))
    batches = jax.vmap(lambda k: _qvpo_batch(cfg, dims, k))(jax.random.split(jax.random.PRNGKey(1), n_seeds))
    return jax.vmap(algo.update), (states, batches, jax.random.split(jax.random.PRNGKey(2), n_seeds))


def qvpo_act(cfg: qvpo.QVPOConfig, dims: tuple[int, int], batch: int = 1):
    """(fn(state, obs, key), args): QVPO's acting path, the best of k_b (4) policy samples by the critic."""
    algo, state = _qvpo_algo_state(cfg, dims)
    return algo.explore, (state, jnp.zeros((batch, dims[0])), jax.random.PRNGKey(3))


class OnlineParts(NamedTuple):
    """What the online-step case needs: the env, its action scaling, the runner state, the two per-step pure
    functions (jit both with donate_argnums=0), the packing of a host transition, and the transfer counts."""

    env: Any
    to_env: Callable[[np.ndarray], np.ndarray]  # [-1, 1] action -> env box
    state: Any
    add: Callable  # (state, packed) -> state: replay add
    step: Callable  # (state, packed) -> (state, action): update + next action
    pack: Callable  # (obs, action, reward, next_obs, done, obs_to_act_on) -> np.ndarray
    rows_needed: int  # replay rows before updates make sense
    transfers_per_step: dict  # host <-> device copies per env step
    dispatches_per_step: int


def qvpo_online(cfg: qvpo.QVPOConfig, env_id: str, capacity: int, seed: int = 0) -> OnlineParts:
    """The pieces `jaxdiff.train.online.run_gym` runs per env step after warm-up, for QVPO on `env_id`."""
    env = make_env(env_id)
    o, a = int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    low, high = env.action_space.low, env.action_space.high
    algo = qvpo.make(cfg, o, a)
    rs = online_lib.init_runner(algo, jax.random.PRNGKey(seed), o, a, capacity)
    static = dict(obs_dim=o, action_dim=a)
    return OnlineParts(
        env=env, to_env=lambda act: scale_action(act, low, high), state=rs,
        add=partial(online_lib.add_step, **static),
        step=partial(online_lib.host_step, algo, do_update=True, do_act=True, **static),
        pack=online_lib.pack, rows_needed=algo.batch_rows,
        transfers_per_step={"host_to_device": 1, "device_to_host": 1}, dispatches_per_step=2)

# ================================================================================================================
# Measurement (no jaxdiff below this line)
# ================================================================================================================

SHAPES = {"hopper": (11, 3), "halfcheetah": (17, 6)}
PAPER_BUDGET = {"behavior": 2_000_000, "critic": 1_500_000, "policy": 1_000_000, "qvpo_env_steps": 1_000_000}
# Per mode: updates per timed chunk, timed calls, acting calls, online steps, dataset / replay rows, seeds, wall
# budget, shapes of the SRPO stages, acting batch sizes. Smoke runs every code path once (one shape, batch 1): its
# cost is compilation, so fewer programs is what keeps it under a minute on an idle 2-core CPU.
SIZES = {
    "full": dict(chunk={"behavior": 100, "critic": 1000, "policy": 500}, repeats=3, act_calls=200, online_steps=200,
                 data_rows=1_000_000, capacity=1_000_000, seeds=8, budget_s=390.0, shapes=("hopper", "halfcheetah"),
                 act_batches=(1, 256)),
    "smoke": dict(chunk={"behavior": 2, "critic": 4, "policy": 4}, repeats=2, act_calls=10, online_steps=5,
                  data_rows=1000, capacity=1000, seeds=8, budget_s=150.0, shapes=("hopper",), act_batches=(1,)),
}


def compile_fn(fn: Callable, args: tuple, donate: bool = False) -> tuple[Any, dict]:
    """AOT-compile jax.jit(fn) for args; returns (compiled, {trace_lower_s, compile_s, xla_flops_per_call})."""
    t0 = time.perf_counter()
    lowered = jax.jit(fn, donate_argnums=(0,) if donate else ()).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    xla = None
    try:  # XLA's own count; it counts a scan body once, so it is low for chunks (a cross-check only)
        ca = compiled.cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        xla = float(ca["flops"]) if ca and "flops" in ca else None
    except Exception:  # noqa: BLE001  backends without cost analysis
        pass
    return compiled, {"trace_lower_s": t1 - t0, "compile_s": t2 - t1, "xla_flops_per_call": xla}


def time_calls(compiled: Any, args: tuple, calls: int, to_host: bool) -> list[float]:
    """Seconds of each of `calls` calls after one warm-up call; to_host copies the outputs back (acting), else
    block_until_ready (training)."""
    sync = (lambda out: jax.tree.map(np.asarray, out)) if to_host else jax.block_until_ready
    sync(compiled(*args))
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        sync(compiled(*args))
        out.append(time.perf_counter() - t)
    return out


def _fmt_time(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "n/a"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


class Report:
    """Runs cases under a wall-time budget, records each (ok / error / skipped) and writes JSON + markdown."""

    def __init__(self, mode: str, budget_s: float, precision: str | None, only: list[str] | None = None):
        dev = jax.devices()[0]
        self.only = only
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.peaks = peaks_for(dev.device_kind, dev.platform)
        self.peak_label, self.peak = reference_peak(self.peaks, precision)
        self.meta = {"mode": mode, "hardware": hardware(), "platform": dev.platform, "device_kind": dev.device_kind,
                     "device_count": jax.device_count(), "jax": jax.__version__, "python": platform.python_version(),
                     "matmul_precision": precision or "default", "peaks_tflops": self.peaks,
                     "reference_peak": self.peak_label, "budget_s": budget_s,
                     "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
        self.cases: list[dict] = []

    def _selected(self, name: str) -> bool:
        return not self.only or any(o in name for o in self.only)

    def _over(self) -> bool:
        return time.perf_counter() - self.t0 > self.budget_s

    def _rates(self, rec: dict, sec: float, updates_per_call: float, flops: float, budget: float | None) -> None:
        rec["seconds_per_call"] = sec
        rec["updates_per_s"] = updates_per_call / sec
        tflops = flops * updates_per_call / sec / 1e12
        rec["tflops_per_s"] = tflops
        for p in ("float32", "tf32", "bf16"):
            v = self.peaks.get(p) if self.peaks else None
            rec[f"frac_peak_{p}"] = tflops / v if v else None
        rec["frac_peak"] = tflops / self.peak if self.peak else None
        if budget:
            rec["paper_budget_updates"] = budget
            rec["projected_wall_s"] = budget / rec["updates_per_s"]

    def case(self, name: str, group: str, build: Callable[[], tuple[Callable, tuple]], *, updates_per_call: float,
             flops_per_update: float, calls: int, budget: float | None = None, to_host: bool = False,
             note: str = "") -> dict:
        """Compile and time one (fn, args) from `build`; a failure is recorded and the report goes on."""
        if not self._selected(name):
            return {}
        rec = {"name": name, "group": group, "status": "skipped", "note": note, "updates_per_call": updates_per_call,
               "flops_per_update": flops_per_update}
        if self._over():
            rec["error"] = f"time budget {self.budget_s:.0f} s spent"
        else:
            try:
                fn, args = build()
                compiled, comp = compile_fn(fn, args)
                rec.update(comp)
                times = time_calls(compiled, args, calls, to_host)
                rec.update(status="ok", calls_timed=len(times))
                self._rates(rec, statistics.median(times), updates_per_call, flops_per_update, budget)
            except Exception as e:  # noqa: BLE001  one failing case must not stop the report
                rec.update(status="error", error=f"{type(e).__name__}: {e}"[:600])
        self._print(rec)
        self.cases.append(rec)
        return rec

    def online_case(self, name: str, build: Callable[[], OnlineParts], *, steps: int, flops_per_step: float,
                    budget: float) -> dict:
        """The gymnasium online step: env.step (host) + pack/copy in + add and update/act dispatches + wait for the
        action, each timed per step; compile times of both jitted functions."""
        if not self._selected(name):
            return {}
        rec = {"name": name, "group": "online", "status": "skipped", "updates_per_call": 1.0,
               "flops_per_update": flops_per_step,
               "note": "per env step: env.step + replay add + update + act (one update per env step)"}
        if self._over():
            rec["error"] = f"time budget {self.budget_s:.0f} s spent"
            self._print(rec)
            self.cases.append(rec)
            return rec
        try:
            parts = build()
            env, rs = parts.env, parts.state
            obs, _ = env.reset(seed=0)
            rng = np.random.default_rng(0)
            a_dim = env.action_space.shape[0]
            packed = jnp.asarray(parts.pack(obs, np.zeros(a_dim), 0.0, obs, False, obs))
            add_c, add_comp = compile_fn(parts.add, (rs, packed), donate=True)
            step_c, step_comp = compile_fn(parts.step, (rs, packed), donate=True)
            rec.update(compile_s=add_comp["compile_s"] + step_comp["compile_s"],
                       trace_lower_s=add_comp["trace_lower_s"] + step_comp["trace_lower_s"],
                       xla_flops_per_call=step_comp["xla_flops_per_call"])
            phases = {"env_step": [], "pack_h2d": [], "dispatch": [], "wait_d2h": []}
            action = rng.uniform(-1, 1, a_dim).astype(np.float32)
            for i in range(parts.rows_needed + 1 + steps):  # warm-up rows (random actions, adds only), then steps
                t0 = time.perf_counter()
                next_obs, r, term, trunc, _ = env.step(parts.to_env(action))
                obs_act = env.reset()[0] if term or trunc else next_obs
                t1 = time.perf_counter()
                packed = jnp.asarray(parts.pack(obs, action, float(r), next_obs, bool(term), obs_act))
                t2 = time.perf_counter()
                rs = add_c(rs, packed)
                if i < parts.rows_needed:
                    action = rng.uniform(-1, 1, a_dim).astype(np.float32)
                    obs = obs_act
                    continue
                rs, a = step_c(rs, packed)
                t3 = time.perf_counter()
                action = np.asarray(a)
                t4 = time.perf_counter()
                obs = obs_act
                if i > parts.rows_needed:  # the first step with updates is a warm-up call
                    for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                        phases[k].append(v)
            mean = {k: float(np.mean(v)) for k, v in phases.items()}
            total = sum(mean.values())
            rec.update(status="ok", calls_timed=steps, phase_us={k: v * 1e6 for k, v in mean.items()},
                       host_share=(mean["env_step"] + mean["pack_h2d"]) / total,
                       transfers_per_step=parts.transfers_per_step, dispatches_per_step=parts.dispatches_per_step)
            self._rates(rec, total, 1.0, flops_per_step, budget)
        except Exception as e:  # noqa: BLE001
            rec.update(status="error", error=f"{type(e).__name__}: {e}"[:600])
        self._print(rec)
        self.cases.append(rec)
        return rec

    def _print(self, r: dict) -> None:
        if r["status"] != "ok":
            print(f"[{r['status']}] {r['name']}: {r.get('error', '')}", flush=True)
            return
        frac = f"{100 * r['frac_peak']:.1f}% of {self.peak_label}" if r.get("frac_peak") is not None else "peak n/a"
        extra = f" host share {100 * r['host_share']:.0f}%" if "host_share" in r else ""
        print(f"{r['name']:34s} compile {r['compile_s']:6.1f} s  {r['seconds_per_call'] * 1e3:9.3f} ms/call  "
              f"{r['updates_per_s']:11.1f} /s  {r['flops_per_update'] / 1e9:9.4g} GFLOP  {r['tflops_per_s']:9.4g} "
              f"TFLOP/s ({frac})  paper budget {_fmt_time(r.get('projected_wall_s'))}{extra}", flush=True)

    def derived(self) -> dict:
        """Ratios across cases: SRPO act vs DPM-Solver, 8 vs 1 seeds, projected paper budgets per algorithm."""
        ok = {c["name"]: c for c in self.cases if c["status"] == "ok"}

        def ratio(a: str, b: str) -> float | None:
            return ok[a]["seconds_per_call"] / ok[b]["seconds_per_call"] if a in ok and b in ok else None

        out = {"srpo_act_speedup_vs_dpm_solver": {f"batch_{n}": ratio(f"dpm_solver15_b{n}", f"srpo_act_b{n}")
                                                  for n in (1, 256)},
               "seeds_8_vs_1_time_per_chunk": {"srpo_behavior": ratio("srpo_behavior_hopper_8seeds",
                                                                      "srpo_behavior_hopper"),
                                               "qvpo_update": ratio("qvpo_update_8seeds", "qvpo_update")},
               "projected_paper_wall_s": {}}
        per_update = {n: c["seconds_per_call"] / c["updates_per_call"] for n, c in ok.items()
                      if c.get("updates_per_call")}
        if {"srpo_behavior_hopper", "srpo_critic_hopper", "srpo_behavior+critic_hopper"} <= set(per_update):
            out["srpo_behavior_critic_apart_over_together"] = (
                (per_update["srpo_behavior_hopper"] + per_update["srpo_critic_hopper"])
                / per_update["srpo_behavior+critic_hopper"])
        for shape in SHAPES:
            stages = [ok.get(f"srpo_{s}_{shape}") for s in ("behavior", "critic", "policy")]
            if all(stages):
                out["projected_paper_wall_s"][f"srpo_{shape}"] = sum(c["projected_wall_s"] for c in stages)
        if "qvpo_online_step_hopper" in ok:
            step = ok["qvpo_online_step_hopper"]
            out["projected_paper_wall_s"]["qvpo_hopper_1M_env_steps"] = step["projected_wall_s"]
            out["online_host_share"] = step["host_share"]
        return out

    def write(self, json_path: str, md_path: str) -> dict:
        """Write the JSON record and the markdown table; returns the record."""
        self.meta["wall_s"] = time.perf_counter() - self.t0
        rec = {"meta": self.meta, "flops_counted": F.__doc__.split("\n\n")[1], "cases": self.cases,
               "derived": self.derived()}
        for p in (json_path, md_path):
            os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(rec, f, indent=2)
        with open(md_path, "w") as f:
            f.write(markdown(rec))
        return rec


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, fmt)


def _x(r: float | None) -> str:
    return "n/a (not run)" if r is None else f"{r:.2f}x"


def markdown(rec: dict) -> str:
    """The report as a markdown table plus the derived ratios."""
    m = rec["meta"]
    lines = [f"# GPU report ({m['mode']})", "",
             f"Device: {m['hardware']}; {m['device_count']} device(s); matmul precision {m['matmul_precision']}; "
             f"peak used: {m['reference_peak']}; started {m['started_utc']} UTC; wall {m['wall_s']:.0f} s.", "",
             "| case | status | compile s | ms / call | updates / s | GFLOP / update | TFLOP/s | % of peak "
             "| paper budget | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in rec["cases"]:
        note = c.get("error", "") if c["status"] != "ok" else c.get("note", "")
        if "host_share" in c:
            ph = c["phase_us"]
            note = (f"host share {100 * c['host_share']:.0f}%: env {ph['env_step']:.0f} us, pack+copy "
                    f"{ph['pack_h2d']:.0f} us, dispatch {ph['dispatch']:.0f} us, wait {ph['wait_d2h']:.0f} us")
        frac = c.get("frac_peak")
        lines.append(
            f"| {c['name']} | {c['status']} | {_num(c.get('compile_s'), '.1f')} | "
            f"{_num(c.get('seconds_per_call', float('nan')) * 1e3, '.3f')} | {_num(c.get('updates_per_s'), ',.1f')} | "
            f"{_num(c['flops_per_update'] / 1e9, '.4g')} | {_num(c.get('tflops_per_s'), '.4g')} | "
            f"{_num(None if frac is None else 100 * frac, '.1f')} | {_fmt_time(c.get('projected_wall_s'))} | "
            f"{note.replace('|', '/')} |")
    d = rec["derived"]
    sp = d["srpo_act_speedup_vs_dpm_solver"]
    sd = d["seeds_8_vs_1_time_per_chunk"]
    lines += ["", f"- SRPO act vs DPM-Solver-15, time per action (paper: > 25x): batch 1 {_x(sp['batch_1'])}, "
                  f"batch 256 {_x(sp['batch_256'])}",
              f"- 8 vmapped seeds / 1 seed (the plain chunk / update), time per call, same updates per seed: "
              f"SRPO behavior "
              f"{_x(sd['srpo_behavior'])}, QVPO update {_x(sd['qvpo_update'])}",
              f"- SRPO behavior + critic, time per update of both, apart / together in one chunk (> 1: the joint "
              f"chunk is faster): {_x(d.get('srpo_behavior_critic_apart_over_together'))}",
              "- Projected paper budgets: " + (", ".join(f"{k} {_fmt_time(v)}" for k, v in
                                                      d["projected_paper_wall_s"].items()) or "n/a"),
              "", "FLOPs: " + rec["flops_counted"].replace("\n", " "), ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    """All cases, most important first (the budget guard skips from the end)."""
    mode = "smoke" if args.smoke else "full"
    z = SIZES[mode]
    rep = Report(mode, args.budget_s if args.budget_s is not None else z["budget_s"], args.matmul_precision,
                 [o for o in (args.only or "").split(",") if o])
    print(f"gpu_report ({mode}) on {rep.meta['hardware']}; peak: "
          + (f"{rep.peak_label} {rep.peak} TFLOP/s" if rep.peak else "n/a (device not in benchmarks/device_peaks.py)"),
          flush=True)
    scfg, qcfg = srpo_config(args.smoke), qvpo_config(args.smoke)
    hop = SHAPES["hopper"]
    qs = qvpo_sizes(qcfg, hop)
    cache: dict = {}

    def srpo_setup(shape: str):
        if shape not in cache:  # built lazily inside a case, so a failure here is recorded like any other
            cache.clear()  # one shape's states and dataset at a time
            dims = SHAPES[shape]
            cache[shape] = (srpo_states(scfg, dims, jax.random.PRNGKey(1)),
                            offline_data(z["data_rows"], dims, jax.random.PRNGKey(0)))
        return cache[shape]

    def srpo_stages(shape: str):
        s = srpo_sizes(scfg, SHAPES[shape])
        fl = {"behavior": F.srpo_behavior_update(s), "critic": F.srpo_critic_update(s),
              "policy": F.srpo_policy_update(s)}
        for stage in ("behavior", "critic", "policy"):
            k = z["chunk"][stage]
            rep.case(f"srpo_{stage}_{shape}", "srpo_train",
                     lambda stage=stage, k=k: srpo_stage_chunk(stage, *srpo_setup(shape), k),
                     updates_per_call=k, flops_per_update=fl[stage], calls=z["repeats"],
                     budget=PAPER_BUDGET[stage], note=f"jitted lax.scan chunk of {k} updates")

    srpo_stages("hopper")
    s_hop = srpo_sizes(scfg, hop)
    k = z["chunk"]["behavior"]
    rep.case("srpo_behavior+critic_hopper", "srpo_train", lambda: srpo_pair_chunk(*srpo_setup("hopper"), k),
             updates_per_call=k, flops_per_update=F.srpo_behavior_update(s_hop) + F.srpo_critic_update(s_hop),
             calls=z["repeats"], budget=PAPER_BUDGET["critic"],
             note=f"behavior + critic in one lax.scan chunk of {k} updates each (budget: the 1.5M joint steps)")
    rep.case("qvpo_update", "qvpo_train", lambda: qvpo_update(qcfg, hop), updates_per_call=1,
             flops_per_update=F.qvpo_update(qs), calls=z["repeats"], budget=PAPER_BUDGET["qvpo_env_steps"],
             note=f"N_d {qcfg.n_d}, K_t {qcfg.k_t}, T {qcfg.diffusion_steps}, batch {qcfg.batch_size}")
    rep.online_case("qvpo_online_step_hopper", lambda: qvpo_online(qcfg, "Hopper-v5", z["capacity"]),
                    steps=z["online_steps"], flops_per_step=F.qvpo_update(qs) + F.qvpo_best_of(1, qcfg.k_b, qs),
                    budget=PAPER_BUDGET["qvpo_env_steps"])
    s_hop = srpo_sizes(scfg, hop)
    for n in z["act_batches"]:
        obs = jnp.zeros((n, hop[0]))
        rep.case(f"srpo_act_b{n}", "acting", lambda obs=obs: srpo_act(srpo_setup("hopper")[0], obs),
                 updates_per_call=n, calls=z["act_calls"], to_host=True,
                 flops_per_update=F.srpo_policy_forward(1, hop[0], hop[1], scfg.policy_width, scfg.policy_layers),
                 note="per action, with the copy back to the host; act(state, obs) takes the whole policy state "
                      "(frozen behavior model and critic included)")
        rep.case(f"dpm_solver15_b{n}", "acting", lambda obs=obs: dpm_solver_sample(srpo_setup("hopper")[0], obs),
                 updates_per_call=n, flops_per_update=F.dpm_solver(1, 15, s_hop), calls=z["act_calls"],
                 to_host=True, note="behavior model, DPM-Solver 15 steps, per action")
        if n == 1:
            rep.case("qvpo_act_best_of_4_b1", "acting", lambda: qvpo_act(qcfg, hop), updates_per_call=1,
                     flops_per_update=F.qvpo_best_of(1, qcfg.k_b, qs), calls=z["act_calls"], to_host=True,
                     note=f"best of {qcfg.k_b} by Q, T {qcfg.diffusion_steps}")
    n_seeds, kb = z["seeds"], z["chunk"]["behavior"]
    rep.case(f"srpo_behavior_hopper_{n_seeds}seeds", "seeds",
             lambda: srpo_behavior_seeds_chunk(scfg, hop, srpo_setup("hopper")[1], n_seeds, kb),
             updates_per_call=n_seeds * kb, flops_per_update=F.srpo_behavior_update(s_hop), calls=z["repeats"],
             budget=PAPER_BUDGET["behavior"] * n_seeds, note=f"{n_seeds} seeds vmapped; budget = all seeds at once")
    rep.case(f"qvpo_update_{n_seeds}seeds", "seeds", lambda: qvpo_seeds_update(qcfg, hop, n_seeds),
             updates_per_call=n_seeds, flops_per_update=F.qvpo_update(qs), calls=z["repeats"],
             budget=PAPER_BUDGET["qvpo_env_steps"] * n_seeds, note=f"{n_seeds} seeds vmapped (updates only)")
    for shape in z["shapes"][1:]:
        srpo_stages(shape)
    return rep.write(args.json or os.path.join(args.out_dir, f"gpu_report{'_smoke' if args.smoke else ''}.json"),
                     args.md or os.path.join(args.out_dir, f"gpu_report{'_smoke' if args.smoke else ''}.md"))


def main(argv: list[str] | None = None) -> dict:
    """Parse flags, set the matmul precision, run every case, write the outputs."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on CPU in < 1 min (CI)")
    ap.add_argument("--out_dir", default="results", help="where gpu_report[_smoke].json / .md go")
    ap.add_argument("--json", default=None, help="JSON path (overrides --out_dir)")
    ap.add_argument("--md", default=None, help="markdown path (overrides --out_dir)")
    ap.add_argument("--budget_s", type=float, default=None,
                    help="stop starting cases after this many seconds (default: full 390, smoke 150)")
    ap.add_argument("--matmul_precision", default=None, choices=["default", "tensorfloat32", "float32", "bfloat16"],
                    help="jax_default_matmul_precision for float32 matmuls (default: JAX's: TF32 on Ampere+ GPUs)")
    ap.add_argument("--only", default=None,
                    help="comma-separated substrings: run only the cases whose name contains one (e.g. a rerun)")
    args = ap.parse_args(argv)
    if args.matmul_precision not in (None, "default"):
        jax.config.update("jax_default_matmul_precision", args.matmul_precision)
    rec = run(args)
    bad = [c["name"] for c in rec["cases"] if c["status"] != "ok"]
    print(f"wall {rec['meta']['wall_s']:.1f} s; {len(rec['cases']) - len(bad)} cases ok"
          + (f", not ok: {', '.join(bad)}" if bad else ""), flush=True)
    return rec


if __name__ == "__main__":
    main()
