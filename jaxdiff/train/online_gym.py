"""Online training on gymnasium envs stepped on the host: one driver for one run or many.

`run_gym(algo, env_id, cfg, workdir, points)` trains one run per point ({"seed": s, swept name: value, ...};
None = the single run [{"seed": cfg.seed}]). Runs are stacked on axis 0 and every pure step of
`jaxdiff.train.online_state` is mapped over them with `over_runs` (one run: no vmap, bit-identical to the
unbatched functions). Per env step the host steps N separate `gymnasium.Env`s by hand (a vector env's autoreset
would hide the true final observation) and does two jitted, donated dispatches for all runs: the replay add, then
[update] + the next actions; only the actions come back to the host.

Bootstrapping: `Transition.done` is termination only; truncation (time limit) bootstraps from the true final
observation. `truncation_as_terminal=True` reproduces the official QVPO code, which treats time-outs as terminal.
Everything random is derived per run from its seed alone: PRNGKey(seed) for the runner, the env reset seeds, a
host RNG for warm-up actions, PRNGKey(seed + 1_000_003) for evaluation, so run k equals a lone run of its point.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Callable

import jax
import numpy as np

from jaxdiff.algorithm import Algorithm
from jaxdiff.train import logging as logging_lib
from jaxdiff.train import online_io
from jaxdiff.train import online_state as st
from jaxdiff.train import run_points as rp


def run_gym(
    algo: Algorithm,
    env_id: str,
    cfg: st.OnlineConfig,
    workdir: str,
    points: list[dict] | None = None,
    *,
    devices=None,
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    on_log: Callable[[dict], None] | None = None,
    on_eval: Callable[[int, list[dict], st.RunnerState], None] | None = None,
) -> dict:
    """Train one run per point on gymnasium env `env_id`; write outputs under workdir; return the summary dict.

    points: run points (`sweep.grid`); None = [{"seed": cfg.seed}]. devices: the devices to shard runs over
    (default jax.devices()). run_info (e.g. {"algo": "qvpo", "agent_config": {...}}) is stored beside checkpoints
    and in summary.json. on_log(record) runs for every record written. on_eval(env_step, eval_records (one per
    run), runner_state (stacked)) runs after each evaluation, e.g. to keep policy snapshots
    (collect_dataset.py); the state is donated to the next step, so copy what you keep before returning.
    The summary's "final_state" (not in summary.json) is the stacked RunnerState of the runs.
    """
    from jaxdiff.envs.evaluate import evaluate_policy, make_env, scale_action

    points = rp.default_points(points, cfg.seed)
    rp.check_points(algo, points)
    n = len(points)
    kwargs = {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
    envs = [make_env(env_id, **kwargs) for _ in range(n)]
    obs_dim = int(np.prod(envs[0].observation_space.shape))
    action_dim = int(np.prod(envs[0].action_space.shape))
    low, high = envs[0].action_space.low, envs[0].action_space.high
    place = rp.Placement(n, devices)

    rs = place.init(lambda k: st.init_runner(algo, k, obs_dim, action_dim, cfg.buffer_size), points)
    rs = rs.replace(agent=place.with_point_values(rs.agent, points))
    ckpt = online_io.open_checkpoints(workdir, resume, overwrite)
    meta_out = {"runner": cfg.to_dict(), "env": env_id, "driver": "gym", "obs_dim": obs_dim,
                "action_dim": action_dim, "points": points, **(run_info or {})}
    what = f"{meta_out.get('algo', 'the agent')} on {env_id}"
    host = {"episodes": [0] * n, "replay_size": 0}
    resumed_from = None
    if resume and ckpt.latest_step() is not None:
        rs, meta = online_io.restore(ckpt, place.stack(rs), points, workdir)
        rs = place.start(rs)
        host.update(meta.get("host", {}))
        if not meta.get("runner", {}).get("save_replay", True):
            host["replay_size"] = 0
        resumed_from = int(place.host(rs.env_step)[0])
    start = int(place.host(rs.env_step)[0])
    out = online_io.Outputs(workdir, resume=resumed_from is not None, step=start, tensorboard=cfg.tensorboard)

    static = dict(obs_dim=obs_dim, action_dim=action_dim)
    add = place.jit(place.map(partial(st.add_step, **static)), donate_argnums=0)
    fns = {(u, a): place.jit(place.map(partial(st.host_step, algo, do_update=u, do_act=a, **static)),
                             donate_argnums=0)
           for u, a in [(False, False), (False, True), (True, True)]}
    first = place.jit(place.map(partial(st.first_action, algo)), donate_argnums=0)
    zero_metrics = place.jit(st.reset_metrics, donate_argnums=0)

    def act_eval(state, obs, key, step, i):  # run k's key: fold_in(fold_in(eval_key_k, step), i)
        return algo.act(state, obs, jax.random.fold_in(jax.random.fold_in(key, step), i))

    act_eval = place.jit(place.map(act_eval, in_axes=(0, 0, 0, None, None)))
    eval_keys = place.start(online_io.eval_keys(points))
    E = cfg.eval_episodes
    seeds = [p["seed"] for p in points]
    rngs = [np.random.default_rng([s, start]) for s in seeds]
    update_after = max(cfg.warmup_steps, 1)

    def evaluate(step: int) -> list[dict]:
        states = rs.agent

        def act_fn(o, i):  # all runs' episodes in one vector env: rows [k * E, (k + 1) * E) belong to run k
            o = place.put_host(np.asarray(o, np.float32).reshape(n, E, obs_dim))
            return place.host(act_eval(states, o, eval_keys, step, i)).reshape(n * E, action_dim)

        res = evaluate_policy(env_id, act_fn, num_episodes=n * E, max_episode_steps=cfg.max_episode_steps,
                              seeds=[cfg.eval_seed + j for _ in range(n) for j in range(E)])
        ret, lens = res["returns"].reshape(n, E), res["lengths"].reshape(n, E)
        return [{"run": k, **points[k], **online_io.eval_record(step, ret[k], lens[k])} for k in range(n)]

    def save(step: int) -> None:
        online_io.check_runs(what, step, [], rs.agent, ckpt)  # never save a non-finite state
        state = place.stack(rs if cfg.save_replay else online_io.without_replay(rs))
        ckpt.save(step, state, {**meta_out, "host": host, "env_step": step})
        online_io.save_policy(workdir, algo, place.stack(rs.agent), points, step)

    obs = []
    for env, s in zip(envs, seeds):
        obs.append(env.reset(seed=s if start == 0 else s + 7919 * start)[0])
        env.action_space.seed(s)
    actions = None
    ep_ret, ep_len = np.zeros(n), np.zeros(n, np.int64)
    recent: list[list] = [[] for _ in range(n)]
    t_log, step_log = time.perf_counter(), start
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    runs = "" if n == 1 else f" x{n}"
    bar = logging_lib.progress(cfg.total_steps, f"{meta_out.get('algo', 'agent')} {env_id}{runs}", initial=start,
                               disable=None if cfg.progress is None else not cfg.progress)
    step = start
    while step < cfg.total_steps:
        ts = time.perf_counter()
        if actions is None:
            if step < cfg.warmup_steps:
                actions = np.stack([rng.uniform(-1.0, 1.0, action_dim).astype(np.float32) for rng in rngs])
            else:
                rs, a = first(rs, place.put_host(np.asarray(obs, np.float32)))
                actions = place.host(a)
        rows = []
        for k, env in enumerate(envs):
            next_obs, r, term, trunc, _ = env.step(scale_action(actions[k], low, high))
            ep_ret[k] += float(r)
            ep_len[k] += 1
            done = bool(term) or (bool(trunc) and cfg.truncation_as_terminal)
            if term or trunc:
                obs_act, _ = env.reset()
                recent[k].append((ep_ret[k], ep_len[k]))
                host["episodes"][k] += 1
                ep_ret[k], ep_len[k] = 0.0, 0
            else:
                obs_act = next_obs
            rows.append(st.pack(obs[k], actions[k], float(r), next_obs, done, obs_act))
            obs[k] = obs_act
        step += 1
        host["replay_size"] = min(host["replay_size"] + 1, cfg.buffer_size)
        do_act = step >= cfg.warmup_steps
        do_update = do_act and host["replay_size"] >= update_after
        packed = place.put_host(np.stack(rows))
        rs, a = fns[(do_update, do_act)](add(rs, packed), packed)
        actions = place.host(a) if do_act else None
        if do_update:
            train_time += time.perf_counter() - ts
            train_steps += 1
        bar.update(1)

        if step % cfg.log_every == 0 or step == cfg.total_steps:
            now = time.perf_counter()
            sps = (step - step_log) / max(now - t_log, 1e-9)
            means = rp.run_means(place, rs.metrics_sum, rs.metrics_count, n)
            updates = place.host(rs.agent.step) if hasattr(rs.agent, "step") else [None] * n
            for k in range(n):
                rec = {"run": k, **points[k], "env_step": step, "episodes": host["episodes"][k], "sps": sps}
                rec.update({f"agent/{m}": v for m, v in means[k].items()})
                rec["updates"] = None if updates[k] is None else int(updates[k])
                if recent[k]:
                    rec["train/episode_return"] = float(np.mean([x[0] for x in recent[k]]))
                    rec["train/episode_length"] = float(np.mean([x[1] for x in recent[k]]))
                out.write(rec)
                if on_log:
                    on_log(rec)
            recent = [[] for _ in range(n)]
            rs = zero_metrics(rs)
            online_io.check_runs(what, step, means, rs.agent, ckpt)
            t_log, step_log = now, step
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            recs = evaluate(step)
            for rec in recs:
                out.write(rec)
                if on_log:
                    on_log(rec)
            bar.set_postfix(eval=f"{np.mean([r['eval/return_mean'] for r in recs]):.1f}")
            if on_eval:
                on_eval(step, recs, place.stack(rs))
            t_log = time.perf_counter()  # keep eval and hook time out of the steps/s figure
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.total_steps:
            save(step)
            t_log = time.perf_counter()
    bar.close()
    for env in envs:
        env.close()
    ckpt.close()
    summary = {**meta_out, **online_io.run_fields(place.layout(points), n, step, resumed_from, time.perf_counter() - t0,
                                                  train_steps, train_time, cfg.save_replay)}
    summary = out.finish(points, summary, online_io.title(meta_out, env_id, points))
    summary["final_state"] = place.stack(rs)  # not written to JSON: stacked runs, for tests and benchmarks
    return summary
