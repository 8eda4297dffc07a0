"""Many online runs in one process: seeds x hyperparameter points, vmapped and sharded over devices.

`run_gym_multi` / `run_jax_multi` are `online.run_gym` / `online.run_jax` for a list of run points
(`sweep.grid(num_seeds, base_seed, **sweeps)`, e.g. [{"seed": 0, "entropy_alpha": 0.0}, ...]). The runner states
of all runs are stacked on a leading axis and the single-run pure pieces (`init_runner`, `host_step`,
`first_action`, `jax_init`, `jax_chunk`, `jax_evaluate`) are `jax.vmap`ped over it — not copied — so a gym env
step is still ONE jitted, donated dispatch, now for all runs, and a bandit chunk is one vmapped `lax.scan`.

Run k equals the single run with seed points[k]["seed"] and the point's hyperparameters (tests check it to float
tolerance; vmapped matmuls may round differently, so not bit for bit), because everything random is derived per
run exactly as the single drivers derive it: the runner key PRNGKey(seed) with the same splits, the swept values
written into `state.hparams` after `vmap(init)` (nothing else in the state depends on them), one host env copy per
run reset with the single run's seeds, one host RNG per run for warm-up actions, and the single run's evaluation
key PRNGKey(seed + 1_000_003) and episode seeds.

Gym: the N envs are separate `gymnasium.Env`s stepped and reset by hand, like run_gym's one env (a vector env's
autoreset would hide the true final observation), so termination and truncation are kept apart exactly as there.

Devices: the run axis is padded to a multiple of the device count (`sweep.pad_runs`; padding repeats the last
run, whose copies are dropped) and sharded over a 1-D 'runs' mesh (`sweep.shard_runs`); every jitted step keeps
that sharding (out_shardings), so each device trains its share of runs and nothing crosses devices.
Checkpoints: one orbax checkpoint of the stacked, unpadded state; its JSON holds the points, so
`online.load_agent_state(workdir, agent, run=k)` / `qvpo.load_policy(workdir, seed=s)` restore one run, and
`resume=True` continues all runs from the latest one.
"""
from __future__ import annotations

import math
import os
import time
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxdiff.agent import OnlineAgent
from jaxdiff.train import hparams as hparams_lib
from jaxdiff.train import logging as logging_lib
from jaxdiff.train import multirun, online, sweep
from jaxdiff.train.online import JaxEnv, JaxLoopState, OnlineConfig, RunnerState

EVAL_KEY_OFFSET = 1_000_003  # the single drivers' evaluation key is PRNGKey(seed + this)
CURVE_KEYS = ["eval/return_mean", "train/episode_return", "agent/critic_loss", "agent/actor_loss"]


# ----------------------------------------------------------------------------------------------------------------
# Stacked initial states (pure)
# ----------------------------------------------------------------------------------------------------------------


def point_values(points: list[dict]) -> dict[str, np.ndarray]:
    """{swept name: float32 values over runs} (empty when only seeds vary)."""
    return {n: np.asarray([p[n] for p in points], np.float32) for n in multirun.swept_names(points)}


def check_points(agent: OnlineAgent, points: list[dict]) -> None:
    """Every point has the same names, and every swept name is a hyperparameter in the agent's state."""
    if not points:
        raise ValueError("no runs")
    names = set(points[0])
    if "seed" not in names or any(set(p) != names for p in points):
        raise ValueError(f"run points must all have a seed and the same swept names, got {points}")
    hparams_lib.check_sweepable(jax.eval_shape(agent.init, jax.random.PRNGKey(0)), multirun.swept_names(points))


def init_runs(agent: OnlineAgent, points: list[dict], obs_dim: int, action_dim: int, capacity: int) -> RunnerState:
    """Stacked RunnerStates: `vmap(init_runner)` over the points' seed keys, then the swept hyperparameters."""
    # jitted: the eager vmapped init dispatches op by op, which takes seconds for the diffusion nets
    init = jax.jit(jax.vmap(lambda k: online.init_runner(agent, k, obs_dim, action_dim, capacity)))
    rs = init(sweep.seed_keys(points))
    return rs.replace(agent=hparams_lib.set_hparams(rs.agent, point_values(points)))


def jax_init_runs(agent: OnlineAgent, env: JaxEnv, points: list[dict], capacity: int) -> JaxLoopState:
    """Stacked JaxLoopStates: `vmap(jax_init)` over the points' seed keys, then the swept hyperparameters."""
    ls = jax.jit(jax.vmap(lambda k: online.jax_init(agent, env, k, capacity)))(sweep.seed_keys(points))
    agent_state = hparams_lib.set_hparams(ls.runner.agent, point_values(points))
    return ls.replace(runner=ls.runner.replace(agent=agent_state))


def step_flags(step: int, num_steps: int, warmup_steps: int, replay_size: int, capacity: int):
    """(num_steps, 2) bool (policy_acts, do_update) per env step, as `jax_chunk` would decide them from the
    state, and the replay size after those steps. All runs step together, so one set of flags serves them all."""
    update_after = max(warmup_steps, 1)
    flags = np.zeros((num_steps, 2), bool)
    for i, s in enumerate(range(step, step + num_steps)):
        replay_size = min(replay_size + 1, capacity)
        flags[i] = (s >= warmup_steps, s + 1 >= warmup_steps and replay_size >= update_after)
    return flags, replay_size


# ----------------------------------------------------------------------------------------------------------------
# Placement on devices
# ----------------------------------------------------------------------------------------------------------------


class Placement:
    """The runs' layout: n real runs padded to n_pad (a multiple of the device count), sharded on axis 0."""

    def __init__(self, num_runs: int, devices=None):
        self.mesh = sweep.make_mesh(devices)
        self.n = num_runs
        self.n_pad = sweep.pad_runs(num_runs, self.mesh)
        self.sharding = NamedSharding(self.mesh, PartitionSpec(sweep.RUN_AXIS))

    def put(self, tree: Any) -> Any:
        """Stacked device tree of n runs -> padded and sharded."""
        return sweep.shard_runs(sweep.pad_tree(tree, self.n_pad), self.mesh)

    def put_host(self, x: np.ndarray) -> jax.Array:
        """Per-step host rows (n, ...) -> padded (repeating the last row) and sharded, in one transfer."""
        if self.n_pad > self.n:
            x = np.concatenate([x, np.repeat(x[-1:], self.n_pad - self.n, axis=0)], axis=0)
        return jax.device_put(x, self.sharding)

    def unpad(self, tree: Any) -> Any:
        return tree if self.n_pad == self.n else jax.tree.map(lambda x: x[: self.n], tree)

    def jit(self, fn: Callable, **kwargs) -> Callable:
        """jit whose every output keeps the runs sharding (so donated buffers are reused in place)."""
        return jax.jit(fn, out_shardings=self.sharding, **kwargs)


def to_host(x: jax.Array) -> np.ndarray:
    """A (possibly multi-host) sharded array as a numpy array on this host."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _run_means(rs: RunnerState, n: int) -> list[dict]:
    """Per run: mean of the agent metrics summed since the last reset ({} where no update ran)."""
    sums = {k: to_host(v) for k, v in rs.metrics_sum.items()}
    counts = to_host(rs.metrics_count)
    return [{k: float(v[i]) / int(counts[i]) for k, v in sums.items()} if counts[i] else {} for i in range(n)]


def _zero_metrics(rs: RunnerState) -> RunnerState:
    return rs.replace(metrics_sum=jax.tree.map(jnp.zeros_like, rs.metrics_sum),
                      metrics_count=jnp.zeros_like(rs.metrics_count))


def _check_runs(what: str, step: int, means: list[dict], agent_states: Any, ckpt) -> None:
    """online.check_finite over all runs: metric names say which run went non-finite."""
    record = {f"agent/{name} (run {k})": v for k, m in enumerate(means) for name, v in m.items()}
    online.check_finite(what, step, record, agent_states, ckpt)


def _same_points(meta: dict, points: list[dict], workdir: str) -> None:
    saved = meta.get("points")
    if saved is None or len(saved) != len(points) or any(
            set(a) != set(b) or any(not np.isclose(a[k], b[k]) for k in a) for a, b in zip(saved, points)):
        raise ValueError(f"cannot resume {workdir}: its checkpoint holds runs {saved}, this run asks for {points}")


def _finish(out: online._Outputs, points: list[dict], summary: dict, title: str) -> dict:
    out.writer.close()
    recs = out.records()
    multirun.plot_groups(recs, points, "env_step", CURVE_KEYS, os.path.join(out.workdir, "curves.png"), title=title)
    summary.update(multirun.summarize(recs, points))
    logging_lib.write_json(os.path.join(out.workdir, "summary.json"), summary)
    return summary


def _layout(place: Placement, points: list[dict]) -> dict:
    return {"num_runs": place.n, "seeds": sorted({p["seed"] for p in points}),
            "sweep": {k: sorted({p[k] for p in points}) for k in multirun.swept_names(points)},
            "devices": int(place.mesh.devices.size), "padded_runs": place.n_pad}


# ----------------------------------------------------------------------------------------------------------------
# Driver 1: N gymnasium envs on the host, one vmapped dispatch per env step
# ----------------------------------------------------------------------------------------------------------------


def run_gym_multi(
    agent: OnlineAgent,
    env_id: str,
    cfg: OnlineConfig,
    workdir: str,
    points: list[dict],
    *,
    devices=None,
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> dict:
    """Train one run per point on gymnasium env `env_id`; outputs under workdir; returns the summary dict.

    cfg.seed is not used (each point has its seed). Records in metrics.jsonl carry "run" (index into points) and
    the point's values; summary.json has per-run scores ("runs") and per-sweep-point aggregates ("groups").
    devices: the devices to shard runs over (default jax.devices()).
    """
    from jaxdiff.envs.evaluate import evaluate_policy, make_env, scale_action

    check_points(agent, points)
    n = len(points)
    kwargs = {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
    envs = [make_env(env_id, **kwargs) for _ in range(n)]
    obs_dim = int(np.prod(envs[0].observation_space.shape))
    action_dim = int(np.prod(envs[0].action_space.shape))
    low, high = envs[0].action_space.low, envs[0].action_space.high
    place = Placement(n, devices)

    rs = init_runs(agent, points, obs_dim, action_dim, cfg.buffer_size)
    ckpt = online._open_checkpoints(workdir, resume, overwrite)
    meta_out = {"runner": cfg.to_dict(), "env": env_id, "driver": "gym_multi", "obs_dim": obs_dim,
                "action_dim": action_dim, "points": points, **(run_info or {})}
    host = {"episodes": [0] * n, "replay_size": 0}
    resumed_from = None
    if resume and ckpt.latest_step() is not None:
        _same_points(ckpt.restore_config(), points, workdir)
        rs, meta = online._restore(ckpt, rs, cfg.save_replay)
        host.update(meta.get("host", {}))
        if not meta.get("runner", {}).get("save_replay", True):
            host["replay_size"] = 0
        resumed_from = int(rs.env_step[0])
    start = int(rs.env_step[0])
    out = online._Outputs(workdir, resume=resumed_from is not None, step=start, tensorboard=cfg.tensorboard)
    rs = place.put(rs)

    static = dict(obs_dim=obs_dim, action_dim=action_dim)
    fns = {
        (u, a): place.jit(jax.vmap(partial(online.host_step, agent, do_update=u, do_act=a, **static)),
                          donate_argnums=0)
        for u, a in [(False, False), (False, True), (True, True)]
    }
    first = place.jit(jax.vmap(partial(online.first_action, agent)), donate_argnums=0)
    zero_metrics = place.jit(_zero_metrics, donate_argnums=0)

    def act_eval(states, obs, keys, step, i):  # the single run's key: fold_in(fold_in(eval_key, step), i)
        keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, step), i))(keys)
        return jax.vmap(agent.act)(states, obs, keys)

    act_eval = place.jit(act_eval)
    eval_keys = place.put(jnp.stack([jax.random.PRNGKey(p["seed"] + EVAL_KEY_OFFSET) for p in points]))
    E = cfg.eval_episodes
    seeds = [p["seed"] for p in points]
    rngs = [np.random.default_rng([s, start]) for s in seeds]
    update_after = max(cfg.warmup_steps, 1)

    def evaluate(step: int) -> list[dict]:
        st = rs.agent

        def act_fn(o, i):  # all runs' episodes in one vector env: rows [k * E, (k + 1) * E) belong to run k
            o = place.put_host(np.asarray(o, np.float32).reshape(n, E, obs_dim))
            return to_host(act_eval(st, o, eval_keys, step, i))[:n].reshape(n * E, action_dim)

        res = evaluate_policy(env_id, act_fn, num_episodes=n * E, max_episode_steps=cfg.max_episode_steps,
                              seeds=[cfg.eval_seed + j for _ in range(n) for j in range(E)])
        ret, lens = res["returns"].reshape(n, E), res["lengths"].reshape(n, E)
        return [{"run": k, **points[k], **online._eval_record(step, ret[k], lens[k])} for k in range(n)]

    def save(step: int) -> None:
        _check_runs(f"{meta_out.get('algo', 'the agent')} on {env_id}", step, [], rs.agent, ckpt)  # never save NaN
        state = place.unpad(online._ckpt_state(rs, cfg.save_replay))
        ckpt.save(step, state, {**meta_out, "host": host, "env_step": step})

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
    bar = logging_lib.progress(cfg.total_steps, f"{meta_out.get('algo', 'agent')} {env_id} x{n}", initial=start,
                               disable=None if cfg.progress is None else not cfg.progress)
    step = start
    while step < cfg.total_steps:
        ts = time.perf_counter()
        if actions is None:
            if step < cfg.warmup_steps:
                actions = np.stack([rng.uniform(-1.0, 1.0, action_dim).astype(np.float32) for rng in rngs])
            else:
                rs, a = first(rs, place.put_host(np.asarray(obs, np.float32)))
                actions = to_host(a)[:n]
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
            rows.append(online.pack(obs[k], actions[k], float(r), next_obs, done, obs_act))
            obs[k] = obs_act
        step += 1
        host["replay_size"] = min(host["replay_size"] + 1, cfg.buffer_size)
        do_act = step >= cfg.warmup_steps
        do_update = do_act and host["replay_size"] >= update_after
        rs, a = fns[(do_update, do_act)](rs, place.put_host(np.stack(rows)))
        actions = to_host(a)[:n] if do_act else None
        if do_update:
            train_time += time.perf_counter() - ts
            train_steps += 1
        bar.update(1)

        if step % cfg.log_every == 0 or step == cfg.total_steps:
            now = time.perf_counter()
            sps = (step - step_log) / max(now - t_log, 1e-9)
            means = _run_means(rs, n)
            updates = to_host(rs.agent.step)[:n] if hasattr(rs.agent, "step") else [None] * n
            for k in range(n):
                rec = {"run": k, **points[k], "env_step": step, "episodes": host["episodes"][k], "sps": sps}
                rec.update({f"agent/{m}": v for m, v in means[k].items()})
                rec["updates"] = None if updates[k] is None else int(updates[k])
                if recent[k]:
                    rec["train/episode_return"] = float(np.mean([x[0] for x in recent[k]]))
                    rec["train/episode_length"] = float(np.mean([x[1] for x in recent[k]]))
                out.writer.write(rec)
                if on_log:
                    on_log(rec)
            recent = [[] for _ in range(n)]
            rs = zero_metrics(rs)
            _check_runs(f"{meta_out.get('algo', 'the agent')} on {env_id}", step, means, rs.agent, ckpt)
            t_log, step_log = now, step
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            recs = evaluate(step)
            for rec in recs:
                out.writer.write(rec)
                if on_log:
                    on_log(rec)
            bar.set_postfix(eval=f"{np.mean([r['eval/return_mean'] for r in recs]):.1f}")
            t_log = time.perf_counter()
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.total_steps:
            save(step)
            t_log = time.perf_counter()
    bar.close()
    for env in envs:
        env.close()
    ckpt.close()
    sps = train_steps / train_time if train_time > 0 else None
    summary = {**meta_out, **_layout(place, points), "env_steps": step, "resumed_from": resumed_from,
               "wall_time_s": time.perf_counter() - t0, "train_steps_per_s": sps,
               "train_env_steps_per_s_all_runs": None if sps is None else sps * n,
               "replay_saved_in_checkpoints": cfg.save_replay}
    summary = _finish(out, points, summary, f"{meta_out.get('algo', '')} {env_id}: {n} runs")
    summary["final_state"] = place.unpad(rs)  # not written to JSON: stacked runs, for tests and benchmarks
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Driver 2: pure-JAX env, the scanned chunk vmapped over runs
# ----------------------------------------------------------------------------------------------------------------


def run_jax_multi(
    agent: OnlineAgent,
    env: JaxEnv,
    cfg: OnlineConfig,
    workdir: str,
    points: list[dict],
    *,
    env_name: str = "jax_env",
    devices=None,
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    on_chunk: Callable[[int, Any], None] | None = None,
) -> dict:
    """Train one run per point on a pure-JAX env: `vmap(jax_chunk)` under one jit per chunk, sharded over devices.

    on_chunk(env_step, stacked agent states of the points) runs after every chunk and once before training.
    Outputs as run_gym_multi. cfg.seed is not used (each point has its seed).
    """
    check_points(agent, points)
    n = len(points)
    place = Placement(n, devices)
    ls = jax_init_runs(agent, env, points, cfg.buffer_size)
    ckpt = online._open_checkpoints(workdir, resume, overwrite)
    meta_out = {"runner": cfg.to_dict(), "env": env_name, "driver": "jax_multi", "obs_dim": env.obs_dim,
                "action_dim": env.action_dim, "points": points, **(run_info or {})}
    resumed_from = None
    if resume and ckpt.latest_step() is not None:
        _same_points(ckpt.restore_config(), points, workdir)
        ls, _ = online._restore(ckpt, ls, True)
        resumed_from = int(ls.runner.env_step[0])
    start = int(ls.runner.env_step[0])
    replay_size = int(ls.runner.replay.size[0])  # the same in every run: all runs add one row per env step
    out = online._Outputs(workdir, resume=resumed_from is not None, step=start, tensorboard=cfg.tensorboard)
    ls = place.put(ls)

    chunk = math.gcd(cfg.log_every, cfg.eval_every)
    if cfg.checkpoint_every:
        chunk = math.gcd(chunk, cfg.checkpoint_every)

    def chunk_runs(ls, flags, num_steps):  # flags unbatched: one (policy_acts, do_update) per step for all runs
        one = partial(online.jax_chunk, agent, env, num_steps=num_steps, warmup_steps=cfg.warmup_steps,
                      truncation_as_terminal=cfg.truncation_as_terminal, step_flags=flags)
        return jax.vmap(lambda l: one(ls=l))(ls)

    run_chunk = place.jit(chunk_runs, static_argnums=2, donate_argnums=0)

    def eval_runs(states, keys, step):  # the single run's key: fold_in(eval_key, step)
        keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
        return jax.vmap(partial(online.jax_evaluate, agent, env, num_episodes=cfg.eval_episodes))(states, keys)

    evaluate = place.jit(eval_runs)
    eval_keys = place.put(jnp.stack([jax.random.PRNGKey(p["seed"] + EVAL_KEY_OFFSET) for p in points]))

    def reset_logs(ls: JaxLoopState) -> JaxLoopState:
        return ls.replace(runner=_zero_metrics(ls.runner), done_return_sum=jnp.zeros_like(ls.done_return_sum),
                          done_count=jnp.zeros_like(ls.done_count))

    reset_logs = place.jit(reset_logs, donate_argnums=0)
    bar = logging_lib.progress(cfg.total_steps, f"{meta_out.get('algo', 'agent')} {env_name} x{n}", initial=start,
                               disable=None if cfg.progress is None else not cfg.progress)
    if on_chunk and start == 0:
        on_chunk(0, place.unpad(ls.runner.agent))
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    step = start
    while step < cfg.total_steps:
        m = min(chunk, cfg.total_steps - step)
        flags, replay_size = step_flags(step, m, cfg.warmup_steps, replay_size, cfg.buffer_size)
        ts = time.perf_counter()
        ls = run_chunk(ls, flags, m)
        jax.block_until_ready(ls)
        dt = time.perf_counter() - ts
        step += m
        if step > cfg.warmup_steps:
            train_time += dt
            train_steps += m
        bar.update(m)
        if on_chunk:
            on_chunk(step, place.unpad(ls.runner.agent))
        if step % cfg.log_every == 0 or step == cfg.total_steps:
            rs = ls.runner
            means = _run_means(rs, n)
            updates = to_host(rs.agent.step)[:n] if hasattr(rs.agent, "step") else [-1] * n
            done_sum, done_count = to_host(ls.done_return_sum), to_host(ls.done_count)
            for k in range(n):
                rec = {"run": k, **points[k], "env_step": step, "sps": m / max(dt, 1e-9), "updates": int(updates[k])}
                rec.update({f"agent/{name}": v for name, v in means[k].items()})
                if done_count[k] > 0:
                    rec["train/episode_return"] = float(done_sum[k]) / int(done_count[k])
                out.writer.write(rec)
            ls = reset_logs(ls)
            _check_runs(f"{meta_out.get('algo', 'the agent')} on {env_name}", step, means, ls.runner.agent, ckpt)
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            ret = to_host(evaluate(ls.runner.agent, eval_keys, step))
            recs = [{"run": k, **points[k], **online._eval_record(step, ret[k])} for k in range(n)]
            for rec in recs:
                out.writer.write(rec)
            bar.set_postfix(eval=f"{np.mean([r['eval/return_mean'] for r in recs]):.3f}")
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.total_steps:
            st = ls if cfg.save_replay else ls.replace(runner=ls.runner.replace(replay=None))
            _check_runs(f"{meta_out.get('algo', 'the agent')} on {env_name}", step, [], ls.runner.agent, ckpt)
            ckpt.save(step, place.unpad(st), {**meta_out, "env_step": step})
    bar.close()
    ckpt.close()
    sps = train_steps / train_time if train_time > 0 else None
    summary = {**meta_out, **_layout(place, points), "env_steps": step, "resumed_from": resumed_from,
               "wall_time_s": time.perf_counter() - t0, "train_steps_per_s": sps,
               "train_env_steps_per_s_all_runs": None if sps is None else sps * n,
               "replay_saved_in_checkpoints": cfg.save_replay}
    summary = _finish(out, points, summary, f"{meta_out.get('algo', '')} {env_name}: {n} runs")
    summary["final_state"] = place.unpad(ls)  # not written to JSON: stacked runs, for tests and figures
    return summary
