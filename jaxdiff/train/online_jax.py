"""Online training on a pure-JAX env (`JaxEnv`, e.g. `jaxdiff.envs.bandit`): one driver for one run or many.

`run_jax(algo, env, cfg, workdir, points)` trains one run per point (None = [{"seed": cfg.seed}]): acting, env,
replay and updates of all runs run in one jitted `lax.scan` per chunk (`jax_env_loop.jax_chunk` mapped over the
stacked runs with `over_runs`: one run without vmap), sharded over devices; the host only logs, evaluates and
checkpoints between chunks. Outputs as `online_gym.run_gym`. Resume continues bit-exactly.
"""
from __future__ import annotations

import math
import time
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.algorithm import Algorithm
from jaxdiff.train import logging as logging_lib
from jaxdiff.train import online_io
from jaxdiff.train import run_points as rp
from jaxdiff.train.jax_env_loop import JaxEnv, JaxLoopState, jax_chunk, jax_evaluate, jax_init, step_flags
from jaxdiff.train.online_state import OnlineConfig, reset_metrics


def _reset_logs(ls: JaxLoopState) -> JaxLoopState:
    return ls.replace(runner=reset_metrics(ls.runner), done_return_sum=jnp.zeros_like(ls.done_return_sum),
                      done_count=jnp.zeros_like(ls.done_count))


def run_jax(
    algo: Algorithm,
    env: JaxEnv,
    cfg: OnlineConfig,
    workdir: str,
    points: list[dict] | None = None,
    *,
    env_name: str = "jax_env",
    devices=None,
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    on_log: Callable[[dict], None] | None = None,
    on_chunk: Callable[[int, Any], None] | None = None,
) -> dict:
    """Train one run per point on a pure-JAX env in jitted lax.scan chunks; returns the summary dict.

    points: run points (`sweep.grid`); None = [{"seed": cfg.seed}]. on_log(record) runs for every record written.
    on_chunk(env_step, stacked algorithm states of the runs) is called after every chunk and once before
    training (e.g. to snapshot policy samples for a figure). Chunk length = gcd(log_every, eval_every,
    checkpoint_every) capped by what is left. The summary's "final_state" is the stacked JaxLoopState.
    """
    points = rp.default_points(points, cfg.seed)
    rp.check_points(algo, points)
    n = len(points)
    place = rp.Placement(n, devices)
    ls = place.init(lambda k: jax_init(algo, env, k, cfg.buffer_size), points)
    ls = ls.replace(runner=ls.runner.replace(agent=place.with_point_values(ls.runner.agent, points)))
    ckpt = online_io.open_checkpoints(workdir, resume, overwrite)
    meta_out = {"runner": cfg.to_dict(), "env": env_name, "driver": "jax", "obs_dim": env.obs_dim,
                "action_dim": env.action_dim, "points": points, **(run_info or {})}
    what = f"{meta_out.get('algo', 'the agent')} on {env_name}"
    resumed_from = None
    if resume and ckpt.latest_step() is not None:
        ls, _ = online_io.restore(ckpt, place.stack(ls), points, workdir)
        ls = place.start(ls)
        resumed_from = int(place.host(ls.runner.env_step)[0])
    start = int(place.host(ls.runner.env_step)[0])
    replay_size = int(place.host(ls.runner.replay.size)[0])  # the same in every run: one row per env step each
    out = online_io.Outputs(workdir, resume=resumed_from is not None, step=start, tensorboard=cfg.tensorboard)

    chunk = math.gcd(cfg.log_every, cfg.eval_every)
    if cfg.checkpoint_every:
        chunk = math.gcd(chunk, cfg.checkpoint_every)
    one_chunk = partial(jax_chunk, algo, env, truncation_as_terminal=cfg.truncation_as_terminal)
    # flags unbatched (in_axes None): one (policy_acts, do_update) per step for all runs, real branches
    run_chunk = place.jit(place.map(one_chunk, in_axes=(0, None)), donate_argnums=0)

    def eval_one(state, key, step):  # run k's key: fold_in(eval_key_k, step)
        return jax_evaluate(algo, env, state, jax.random.fold_in(key, step), num_episodes=cfg.eval_episodes)

    evaluate = place.jit(place.map(eval_one, in_axes=(0, 0, None)))
    eval_keys = place.start(online_io.eval_keys(points))
    reset_logs = place.jit(_reset_logs, donate_argnums=0)
    runs = "" if n == 1 else f" x{n}"
    bar = logging_lib.progress(cfg.total_steps, f"{meta_out.get('algo', 'agent')} {env_name}{runs}", initial=start,
                               disable=None if cfg.progress is None else not cfg.progress)
    if on_chunk and start == 0:
        on_chunk(0, place.stack(ls.runner.agent))
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    step = start
    while step < cfg.total_steps:
        m = min(chunk, cfg.total_steps - step)
        flags, replay_size = step_flags(step, m, cfg.warmup_steps, replay_size, cfg.buffer_size)
        ts = time.perf_counter()
        ls = run_chunk(ls, flags)
        jax.block_until_ready(ls)
        dt = time.perf_counter() - ts
        step += m
        if step > cfg.warmup_steps:
            train_time += dt
            train_steps += m
        bar.update(m)
        if on_chunk:
            on_chunk(step, place.stack(ls.runner.agent))
        if step % cfg.log_every == 0 or step == cfg.total_steps:
            rs = ls.runner
            means = rp.run_means(place, rs.metrics_sum, rs.metrics_count, n)
            updates = place.host(rs.agent.step) if hasattr(rs.agent, "step") else [-1] * n
            done_sum, done_count = place.host(ls.done_return_sum), place.host(ls.done_count)
            for k in range(n):
                rec = {"run": k, **points[k], "env_step": step, "sps": m / max(dt, 1e-9), "updates": int(updates[k])}
                rec.update({f"agent/{name}": v for name, v in means[k].items()})
                if done_count[k] > 0:
                    rec["train/episode_return"] = float(done_sum[k]) / int(done_count[k])
                out.write(rec)
                if on_log:
                    on_log(rec)
            ls = reset_logs(ls)
            online_io.check_runs(what, step, means, ls.runner.agent, ckpt)
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            ret = place.host(evaluate(ls.runner.agent, eval_keys, step))
            recs = [{"run": k, **points[k], **online_io.eval_record(step, ret[k])} for k in range(n)]
            for rec in recs:
                out.write(rec)
                if on_log:
                    on_log(rec)
            bar.set_postfix(eval=f"{np.mean([r['eval/return_mean'] for r in recs]):.3f}")
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.total_steps:
            online_io.check_runs(what, step, [], ls.runner.agent, ckpt)  # never save a non-finite state
            state = ls if cfg.save_replay else online_io.without_replay(ls)
            ckpt.save(step, place.stack(state), {**meta_out, "env_step": step})
            online_io.save_policy(workdir, algo, place.stack(ls.runner.agent), points, step)
    bar.close()
    ckpt.close()
    summary = {**meta_out, **online_io.run_fields(place.layout(points), n, step, resumed_from, time.perf_counter() - t0,
                                                  train_steps, train_time, cfg.save_replay)}
    summary = out.finish(points, summary, online_io.title(meta_out, env_name, points))
    summary["final_state"] = place.stack(ls)  # not written to JSON: stacked runs, for tests and figures
    return summary
