"""Generic online runner for any `OnlineAgent` (QVPO, SAC, TD3, ...): nothing algorithm-specific lives here.

Two drivers share one on-device `RunnerState` (agent state + functional replay buffer + key + counters + summed
metrics) and the same outputs (metrics.jsonl, summary.json, curves.png, orbax checkpoints with resume):

* `run_gym`  — a gymnasium env stepped on the host. Per env step the host does `env.step` and two jitted, donated
  dispatches: the replay add (an in-place row write), then `agent.update` (after warm-up) fused with the next
  action from `agent.explore`; only the action comes back to the host.
* `run_jax`  — a pure-JAX env (`JaxEnv`, e.g. `jaxdiff.envs.bandit`): acting, env, replay and updates all run in
  one `lax.scan` per chunk; the host only logs, evaluates and checkpoints between chunks.

Bootstrapping: `Transition.done` is termination only; truncation (time limit) bootstraps from the true final
observation (the training env is a single non-vector env reset by hand, so next_obs is never an autoreset obs).
`truncation_as_terminal=True` reproduces the official QVPO code, which treats time-outs as terminal.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from functools import partial
from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.agent import OnlineAgent
from jaxdiff.data import replay as replay_lib
from jaxdiff.data.replay import ReplayState, Transition
from jaxdiff.train import divergence
from jaxdiff.train import logging as logging_lib
from jaxdiff.train.checkpoint import Checkpointer


# ----------------------------------------------------------------------------------------------------------------
# Configuration and state
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Runner settings (algorithm-independent). Defaults follow the QVPO paper's protocol."""

    seed: int = 0
    total_steps: int = 1_000_000
    warmup_steps: int = 10_000  # uniform-random actions, no updates, for the first warmup_steps env steps
    buffer_size: int = 1_000_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_seed: int = 10_000  # evaluation episodes use seeds eval_seed + i (fixed, independent of training)
    log_every: int = 1_000
    checkpoint_every: int = 50_000  # 0 = only at the end
    save_replay: bool = True  # replay buffer inside checkpoints (exact-data resume) or not (refill on resume)
    truncation_as_terminal: bool = False  # True = official QVPO behaviour (time-outs terminal)
    max_episode_steps: int | None = None  # override the env's time limit (None = env default)
    progress: bool | None = None  # tqdm bar: None = only on a terminal (else a progress line every ~30 s)
    tensorboard: bool = False  # also write the metrics as TensorBoard scalars to <workdir>/tensorboard

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@flax.struct.dataclass
class RunnerState:
    agent: Any
    replay: ReplayState | None  # None in checkpoints saved with save_replay=False
    key: jax.Array  # raw uint32 PRNG key, split once per env step
    env_step: jax.Array  # int32 env steps done
    metrics_sum: dict  # agent.update metrics summed since the last log
    metrics_count: jax.Array  # number of updates summed into metrics_sum


def _metric_zeros(agent: OnlineAgent, agent_state: Any, obs_dim: int, action_dim: int) -> dict:
    z = lambda *s: jnp.zeros(s, jnp.float32)  # noqa: E731
    n = agent.replay_rows
    batch = Transition(z(n, obs_dim), z(n, action_dim), z(n), z(n, obs_dim), z(n))
    _, shapes = jax.eval_shape(agent.update, agent_state, batch, jax.random.PRNGKey(0))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def init_runner(agent: OnlineAgent, key: jax.Array, obs_dim: int, action_dim: int, capacity: int) -> RunnerState:
    k_agent, k_run = jax.random.split(key)
    agent_state = agent.init(k_agent)
    return RunnerState(
        agent=agent_state,
        replay=replay_lib.init(capacity, obs_dim, action_dim),
        key=k_run,
        env_step=jnp.zeros((), jnp.int32),
        metrics_sum=_metric_zeros(agent, agent_state, obs_dim, action_dim),
        metrics_count=jnp.zeros((), jnp.int32),
    )


def reset_metrics(rs: RunnerState) -> RunnerState:
    return rs.replace(
        metrics_sum=jax.tree.map(jnp.zeros_like, rs.metrics_sum), metrics_count=jnp.zeros((), jnp.int32)
    )


def mean_metrics(rs: RunnerState) -> dict:
    """Host-side mean of the metrics summed since the last reset ({} if no update ran)."""
    n = int(rs.metrics_count)
    if n == 0:
        return {}
    return {k: float(v) / n for k, v in jax.device_get(rs.metrics_sum).items()}


# ----------------------------------------------------------------------------------------------------------------
# Pure step functions (jit them with donate_argnums=0)
# ----------------------------------------------------------------------------------------------------------------


def update_step(agent: OnlineAgent, rs: RunnerState, key: jax.Array) -> RunnerState:
    """Sample agent.replay_rows uniformly from the replay buffer, run one agent.update, accumulate metrics."""
    k_s, k_u = jax.random.split(key)
    batch = replay_lib.sample(rs.replay, k_s, agent.replay_rows)
    agent_state, m = agent.update(rs.agent, batch, k_u)
    return rs.replace(
        agent=agent_state,
        metrics_sum=jax.tree.map(lambda a, b: a + b.astype(a.dtype), rs.metrics_sum, m),
        metrics_count=rs.metrics_count + 1,
    )


def unpack(packed: jax.Array, obs_dim: int, action_dim: int) -> tuple[Transition, jax.Array]:
    """Split the host's flat float32 vector [obs, action, reward, next_obs, done, obs_to_act_on]."""
    o, a = obs_dim, action_dim
    tr = Transition(
        obs=packed[:o],
        action=packed[o : o + a],
        reward=packed[o + a],
        next_obs=packed[o + a + 1 : 2 * o + a + 1],
        done=packed[2 * o + a + 1],
    )
    return tr, packed[2 * o + a + 2 :]


def pack(obs, action, reward, next_obs, done, obs_next_act) -> np.ndarray:
    return np.concatenate(
        [np.ravel(obs), np.ravel(action), [reward], np.ravel(next_obs), [float(done)], np.ravel(obs_next_act)]
    ).astype(np.float32)


def host_step(
    agent: OnlineAgent, rs: RunnerState, packed: jax.Array, *, obs_dim: int, action_dim: int, do_update: bool,
    do_act: bool, add_transition: bool = True,
) -> tuple[RunnerState, jax.Array | None]:
    """The fused per-env-step dispatch: replay add -> [update] -> [explore on the next observation].

    Returns (state, action in [-1, 1] or None). With add_transition=False the caller has already added the row
    with `add_step` (see run_gym for why).
    """
    tr, obs_next = unpack(packed, obs_dim, action_dim)
    key, k_upd, k_act = jax.random.split(rs.key, 3)
    if add_transition:
        rs = rs.replace(replay=replay_lib.add(rs.replay, tr))
    rs = rs.replace(key=key, env_step=rs.env_step + 1)
    if do_update:
        rs = update_step(agent, rs, k_upd)
    action = agent.explore(rs.agent, obs_next[None], k_act)[0] if do_act else None
    return rs, action


def add_step(rs: RunnerState, packed: jax.Array, *, obs_dim: int, action_dim: int) -> RunnerState:
    """Replay add alone (jit with donate_argnums=0: an in-place row write)."""
    tr, _ = unpack(packed, obs_dim, action_dim)
    return rs.replace(replay=replay_lib.add(rs.replay, tr))


def first_action(agent: OnlineAgent, rs: RunnerState, obs: jax.Array) -> tuple[RunnerState, jax.Array]:
    key, k_act = jax.random.split(rs.key)
    return rs.replace(key=key), agent.explore(rs.agent, obs[None], k_act)[0]


# ----------------------------------------------------------------------------------------------------------------
# Shared host plumbing: outputs, checkpoints, resume
# ----------------------------------------------------------------------------------------------------------------


class _Outputs:
    def __init__(self, workdir: str, resume: bool, step: int, tensorboard: bool = False):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        if resume:  # drop records written after the checkpoint we resume from (a crash left them behind)
            keep = [r for r in logging_lib.read_metrics(self.metrics_path) if r.get("env_step", 0) <= step]
            with open(self.metrics_path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in keep)
        elif os.path.exists(self.metrics_path):
            os.remove(self.metrics_path)
        self.writer = logging_lib.MetricsWriter(
            self.metrics_path, os.path.join(workdir, "tensorboard") if tensorboard else None)

    def records(self) -> list[dict]:
        return logging_lib.read_metrics(self.metrics_path)

    def finish(self, summary: dict, title: str) -> None:
        self.writer.close()
        recs = self.records()
        keys = ["eval/return_mean", "train/episode_return", "agent/critic_loss", "agent/actor_loss"]
        logging_lib.plot_curves(recs, "env_step", keys, os.path.join(self.workdir, "curves.png"), title=title)
        logging_lib.write_json(os.path.join(self.workdir, "summary.json"), summary)


def _open_checkpoints(workdir: str, resume: bool, overwrite: bool) -> Checkpointer:
    path = os.path.join(workdir, "checkpoints")
    if not resume and os.path.isdir(path) and os.listdir(path):
        if not overwrite:
            raise FileExistsError(f"--workdir={workdir} already holds a run (checkpoints in {path}): pass --resume "
                                  f"to continue it, --overwrite to delete it and start over, or choose another "
                                  f"--workdir")
        import shutil

        shutil.rmtree(path)
    return Checkpointer(path)


def _ckpt_state(rs: RunnerState, save_replay: bool) -> RunnerState:
    return rs if save_replay else rs.replace(replay=None)


def _restore(ckpt: Checkpointer, rs: Any, save_replay: bool) -> tuple[Any, dict]:
    """Restore the newest readable checkpoint into the structure of rs (a RunnerState, or a JaxLoopState whose
    .runner is one); an empty replay buffer is kept when the checkpoint has none."""
    loop = hasattr(rs, "runner")

    def had_replay(meta: dict) -> bool:
        return bool(meta.get("runner", {}).get("save_replay", save_replay))

    def strip(x: Any) -> Any:
        return x.replace(runner=_ckpt_state(x.runner, False)) if loop else _ckpt_state(x, False)

    _, restored, meta = ckpt.restore_latest(lambda meta: rs if had_replay(meta) else strip(rs))
    if not had_replay(meta):
        replay = rs.runner.replay if loop else rs.replay
        restored = (restored.replace(runner=restored.runner.replace(replay=replay)) if loop
                    else restored.replace(replay=replay))
    return restored, meta


# which flag to look at when a metric goes non-finite (first name part found wins)
LR_FLAGS = {"critic": "--critic_lr", "q_": "--critic_lr", "actor": "--actor_lr", "alpha": "--alpha_lr",
            "": "--actor_lr / --critic_lr"}


def check_finite(what: str, step: int, record: dict, agent_state: Any, ckpt: Checkpointer) -> None:
    """Stop the run (DivergenceError) when a logged agent metric or the agent state is NaN / inf."""
    metrics = {k: v for k, v in record.items() if k.startswith("agent/")}
    divergence.check(what, step, metrics, agent_state, last_checkpoint=ckpt.latest_step, directory=ckpt.directory,
                     lr_flags=LR_FLAGS)


def _title(meta: dict, env: str, seed: int) -> str:
    """curves.png's title: algorithm, env, seed and run_info's "label" (e.g. with / without the entropy term)."""
    label = f" ({meta['label']})" if meta.get("label") else ""
    return f"{meta.get('algo', '')} {env} seed {seed}{label}"


def _eval_record(step: int, returns: np.ndarray, lengths: np.ndarray | None = None) -> dict:
    rec = {
        "env_step": step,
        "eval/return_mean": float(np.mean(returns)),
        "eval/return_std": float(np.std(returns)),
        "eval/return_min": float(np.min(returns)),
        "eval/return_max": float(np.max(returns)),
    }
    if lengths is not None:
        rec["eval/length_mean"] = float(np.mean(lengths))
    return rec


def _summary(records: list[dict], extra: dict) -> dict:
    evals = [r for r in records if "eval/return_mean" in r]
    out = dict(extra)
    if evals:
        best = max(evals, key=lambda r: r["eval/return_mean"])
        out.update(
            final_eval_return=evals[-1]["eval/return_mean"],
            final_eval_std=evals[-1]["eval/return_std"],
            best_eval_return=best["eval/return_mean"],
            best_eval_step=best["env_step"],
            eval_curve=[[r["env_step"], r["eval/return_mean"]] for r in evals],
        )
    return out


# ----------------------------------------------------------------------------------------------------------------
# Driver 1: gymnasium env on the host, one fused dispatch per env step
# ----------------------------------------------------------------------------------------------------------------


def run_gym(
    agent: OnlineAgent,
    env_id: str,
    cfg: OnlineConfig,
    workdir: str,
    *,
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    on_log: Callable[[dict], None] | None = None,
    on_eval: Callable[[int, dict, RunnerState], None] | None = None,
) -> dict:
    """Train `agent` online on gymnasium env `env_id`; write outputs under workdir; return the summary dict.

    run_info (e.g. {"algo": "qvpo", "agent_config": {...}}) is stored beside checkpoints and in summary.json.
    on_eval(env_step, eval_record, runner_state) runs after each evaluation, e.g. to keep policy snapshots
    (collect_dataset.py); the runner state is donated to the next step, so copy what you keep before returning.
    """
    from jaxdiff.envs.evaluate import evaluate_policy, make_env, scale_action

    kwargs = {} if cfg.max_episode_steps is None else {"max_episode_steps": cfg.max_episode_steps}
    env = make_env(env_id, **kwargs)
    obs_dim = int(np.prod(env.observation_space.shape))
    action_dim = int(np.prod(env.action_space.shape))
    low, high = env.action_space.low, env.action_space.high

    rs = init_runner(agent, jax.random.PRNGKey(cfg.seed), obs_dim, action_dim, cfg.buffer_size)
    ckpt = _open_checkpoints(workdir, resume, overwrite)
    meta_out = {"runner": cfg.to_dict(), "env": env_id, "driver": "gym", "obs_dim": obs_dim,
                "action_dim": action_dim, **(run_info or {})}
    host = {"episodes": 0, "replay_size": 0}
    resumed_from = None
    if resume and ckpt.latest_step() is not None:
        rs, meta = _restore(ckpt, rs, cfg.save_replay)
        host.update(meta.get("host", {}))
        if not meta.get("runner", {}).get("save_replay", True):
            host["replay_size"] = 0
        resumed_from = int(rs.env_step)
    start = int(rs.env_step)
    out = _Outputs(workdir, resume=resumed_from is not None, step=start, tensorboard=cfg.tensorboard)

    static = dict(obs_dim=obs_dim, action_dim=action_dim)
    # The replay add is its own donated dispatch. Fused with the update, XLA on CPU copied the reward / next_obs /
    # done buffers every step (the sample reads the row just written): 48 ms vs 5 ms per step with a 1e6-row
    # HalfCheetah buffer, bit-identical results. Two dispatches per env step instead of one is the cheaper side.
    add = jax.jit(partial(add_step, **static), donate_argnums=0)
    fns = {
        (u, a): jax.jit(partial(host_step, agent, do_update=u, do_act=a, add_transition=False, **static),
                        donate_argnums=0)
        for u, a in [(False, False), (False, True), (True, True)]
    }
    first = jax.jit(partial(first_action, agent), donate_argnums=0)
    act_eval = jax.jit(agent.act)
    eval_key = jax.random.PRNGKey(cfg.seed + 1_000_003)
    rng = np.random.default_rng([cfg.seed, start])
    update_after = max(cfg.warmup_steps, 1)

    def evaluate(step: int) -> dict:
        st, k_step = rs.agent, jax.random.fold_in(eval_key, step)
        res = evaluate_policy(
            env_id,
            lambda o, i: np.asarray(act_eval(st, jnp.asarray(o), jax.random.fold_in(k_step, i))),
            num_episodes=cfg.eval_episodes,
            seed=cfg.eval_seed,
            max_episode_steps=cfg.max_episode_steps,
        )
        return _eval_record(step, res["returns"], res["lengths"])

    def save(step: int) -> None:
        check_finite(f"{meta_out.get('algo', 'the agent')} on {env_id}", step, {}, rs.agent, ckpt)  # never save NaN
        ckpt.save(step, _ckpt_state(rs, cfg.save_replay), {**meta_out, "host": host, "env_step": step})

    obs, _ = env.reset(seed=cfg.seed if start == 0 else cfg.seed + 7919 * start)
    env.action_space.seed(cfg.seed)
    action = None
    ep_ret, ep_len, recent = 0.0, 0, []
    t_log, step_log = time.perf_counter(), start
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    bar = logging_lib.progress(cfg.total_steps, f"{run_info.get('algo', 'agent') if run_info else 'agent'} {env_id}",
                               initial=start, disable=None if cfg.progress is None else not cfg.progress)
    step = start
    last_eval = None
    while step < cfg.total_steps:
        ts = time.perf_counter()
        if action is None:
            if step < cfg.warmup_steps:
                action = rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)
            else:
                rs, a = first(rs, jnp.asarray(obs, jnp.float32))
                action = np.asarray(a)
        next_obs, r, term, trunc, _ = env.step(scale_action(action, low, high))
        ep_ret += float(r)
        ep_len += 1
        done = bool(term) or (bool(trunc) and cfg.truncation_as_terminal)
        if term or trunc:
            obs_act, _ = env.reset()
            recent.append((ep_ret, ep_len))
            host["episodes"] += 1
            ep_ret, ep_len = 0.0, 0
        else:
            obs_act = next_obs
        packed = jnp.asarray(pack(obs, action, float(r), next_obs, done, obs_act))
        step += 1
        host["replay_size"] = min(host["replay_size"] + 1, rs.replay.capacity)
        do_act = step >= cfg.warmup_steps
        do_update = do_act and host["replay_size"] >= update_after
        rs, a = fns[(do_update, do_act)](add(rs, packed), packed)
        action = np.asarray(a) if do_act else None
        obs = obs_act
        if do_update:
            train_time += time.perf_counter() - ts
            train_steps += 1
        bar.update(1)

        if step % cfg.log_every == 0 or step == cfg.total_steps:
            now = time.perf_counter()
            rec = {"env_step": step, "episodes": host["episodes"], "sps": (step - step_log) / max(now - t_log, 1e-9)}
            rec.update({f"agent/{k}": v for k, v in mean_metrics(rs).items()})
            rec["updates"] = int(rs.agent.step) if hasattr(rs.agent, "step") else None
            if recent:
                rec["train/episode_return"] = float(np.mean([x[0] for x in recent]))
                rec["train/episode_length"] = float(np.mean([x[1] for x in recent]))
                recent = []
            rs = reset_metrics(rs)
            out.writer.write(rec)
            check_finite(f"{meta_out.get('algo', 'the agent')} on {env_id}", step, rec, rs.agent, ckpt)
            if on_log:
                on_log(rec)
            t_log, step_log = now, step
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            last_eval = evaluate(step)
            out.writer.write(last_eval)
            bar.set_postfix(eval=f"{last_eval['eval/return_mean']:.1f}")
            if on_log:
                on_log(last_eval)
            if on_eval:
                on_eval(step, last_eval, rs)
            t_log = time.perf_counter()  # keep eval and hook time out of the steps/s figure
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.total_steps:
            save(step)
            t_log = time.perf_counter()
    bar.close()
    env.close()
    ckpt.close()
    summary = _summary(
        out.records(),
        {
            **meta_out,
            "env_steps": step,
            "resumed_from": resumed_from,
            "wall_time_s": time.perf_counter() - t0,
            "train_steps_per_s": train_steps / train_time if train_time > 0 else None,
            "replay_saved_in_checkpoints": cfg.save_replay,
        },
    )
    out.finish(summary, title=_title(meta_out, env_id, cfg.seed))
    summary["final_state"] = rs  # not written to JSON: lets callers (tests, benchmarks) use the trained agent
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Driver 2: pure-JAX env, everything inside lax.scan
# ----------------------------------------------------------------------------------------------------------------


class JaxEnv(NamedTuple):
    """A functional env. reset(key) -> (env_state, obs); step(env_state, action, key) -> (env_state, next_obs,
    reward, terminated, truncated). Actions are in [-1, 1]. Episodes end by `max_episode_steps` at the latest."""

    obs_dim: int
    action_dim: int
    max_episode_steps: int
    reset: Callable[[jax.Array], tuple[Any, jax.Array]]
    step: Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array]]


@flax.struct.dataclass
class JaxLoopState:
    runner: RunnerState
    env_state: Any
    obs: jax.Array
    ep_return: jax.Array
    ep_len: jax.Array
    done_return_sum: jax.Array  # returns of episodes finished since the last log
    done_count: jax.Array


def jax_init(agent: OnlineAgent, env: JaxEnv, key: jax.Array, capacity: int) -> JaxLoopState:
    k_run, k_env = jax.random.split(key)
    rs = init_runner(agent, k_run, env.obs_dim, env.action_dim, capacity)
    # copies: reset may hand back arrays the env closes over, and the loop state gets donated
    env_state, obs = jax.tree.map(lambda x: jnp.array(x, copy=True), env.reset(k_env))
    f = lambda: jnp.zeros((), jnp.float32)  # noqa: E731
    return JaxLoopState(rs, env_state, obs, f(), jnp.zeros((), jnp.int32), f(), jnp.zeros((), jnp.int32))


def jax_chunk(
    agent: OnlineAgent, env: JaxEnv, ls: JaxLoopState, num_steps: int, *, warmup_steps: int,
    truncation_as_terminal: bool = False, step_flags: jax.Array | None = None,
) -> JaxLoopState:
    """num_steps env steps (act -> env.step -> replay add -> update once warm) as one lax.scan. Pure; jit it.

    step_flags=None decides per step, from the state, whether to act with the policy (after warm-up) and whether
    to update. step_flags (num_steps, 2) bool = (policy_acts, do_update) per step, computed by the caller from
    the same counters (online_multi does, on the host), gives the same result; it exists for `vmap` over runs:
    passed unbatched, the `lax.cond`s stay real branches, whereas a cond on a per-run (batched) flag becomes a
    select that runs both branches — an update on every warm-up step.
    """
    update_after = max(warmup_steps, 1)

    def body(ls: JaxLoopState, flags):
        rs = ls.runner
        key, k_act, k_env, k_reset, k_upd = jax.random.split(rs.key, 5)
        if flags is None:
            policy_acts = rs.env_step >= warmup_steps
        else:
            policy_acts = flags[0]
        a = jax.lax.cond(
            policy_acts,
            lambda: agent.explore(rs.agent, ls.obs[None], k_act)[0],
            lambda: jax.random.uniform(k_act, (env.action_dim,), minval=-1.0, maxval=1.0),
        )
        env_state, next_obs, r, term, trunc = env.step(ls.env_state, a, k_env)
        done = jnp.logical_or(term, jnp.logical_and(trunc, truncation_as_terminal))
        tr = Transition(ls.obs, a, r, next_obs, done.astype(jnp.float32))
        rs = rs.replace(replay=replay_lib.add(rs.replay, tr), key=key, env_step=rs.env_step + 1)
        if flags is None:
            can_update = jnp.logical_and(rs.env_step >= warmup_steps, rs.replay.size >= update_after)
        else:
            can_update = flags[1]
        rs = jax.lax.cond(can_update, lambda r_: update_step(agent, r_, k_upd), lambda r_: r_, rs)
        end = jnp.logical_or(term, trunc)
        reset_state, reset_obs = env.reset(k_reset)
        sel = lambda x, y: jax.tree.map(lambda p, q: jnp.where(end, p, q), x, y)  # noqa: E731
        ep_return = ls.ep_return + r
        return JaxLoopState(
            runner=rs,
            env_state=sel(reset_state, env_state),
            obs=sel(reset_obs, next_obs),
            ep_return=jnp.where(end, 0.0, ep_return),
            ep_len=jnp.where(end, 0, ls.ep_len + 1),
            done_return_sum=ls.done_return_sum + jnp.where(end, ep_return, 0.0),
            done_count=ls.done_count + end.astype(jnp.int32),
        ), None

    ls, _ = jax.lax.scan(body, ls, step_flags, length=num_steps)
    return ls


def jax_evaluate(agent: OnlineAgent, env: JaxEnv, agent_state: Any, key: jax.Array, num_episodes: int) -> jax.Array:
    """Returns of num_episodes episodes run in parallel with agent.act (scan of max_episode_steps). Pure; jit it."""
    k_reset, k_run = jax.random.split(key)
    env_state, obs = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))

    def body(carry, k):
        env_state, obs, ret, alive = carry
        k_act, k_env = jax.random.split(k)
        a = agent.act(agent_state, obs, k_act)
        env_state, obs, r, term, trunc = jax.vmap(env.step)(env_state, a, jax.random.split(k_env, num_episodes))
        ret = ret + r * alive
        alive = alive * (1.0 - jnp.logical_or(term, trunc).astype(jnp.float32))
        return (env_state, obs, ret, alive), None

    init = (env_state, obs, jnp.zeros(num_episodes), jnp.ones(num_episodes))
    (_, _, ret, _), _ = jax.lax.scan(body, init, jax.random.split(k_run, env.max_episode_steps))
    return ret


def run_jax(
    agent: OnlineAgent,
    env: JaxEnv,
    cfg: OnlineConfig,
    workdir: str,
    *,
    env_name: str = "jax_env",
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    on_chunk: Callable[[int, Any], None] | None = None,
) -> dict:
    """Train on a pure-JAX env in jitted lax.scan chunks; host loop only for logs/eval/checkpoints.

    on_chunk(env_step, agent_state) is called after every chunk and once before training (e.g. to snapshot policy
    samples for a figure). Chunk length = gcd(log_every, eval_every, checkpoint_every) capped by what is left.
    """
    ls = jax_init(agent, env, jax.random.PRNGKey(cfg.seed), cfg.buffer_size)
    ckpt = _open_checkpoints(workdir, resume, overwrite)
    meta_out = {"runner": cfg.to_dict(), "env": env_name, "driver": "jax", "obs_dim": env.obs_dim,
                "action_dim": env.action_dim, **(run_info or {})}
    resumed_from = None
    if resume and ckpt.latest_step() is not None:
        ls, _ = _restore(ckpt, ls, True)
        resumed_from = int(ls.runner.env_step)
    start = int(ls.runner.env_step)
    out = _Outputs(workdir, resume=resumed_from is not None, step=start, tensorboard=cfg.tensorboard)

    chunk = math.gcd(cfg.log_every, cfg.eval_every)
    if cfg.checkpoint_every:
        chunk = math.gcd(chunk, cfg.checkpoint_every)
    run_chunk = jax.jit(
        partial(jax_chunk, agent, env, warmup_steps=cfg.warmup_steps,
                truncation_as_terminal=cfg.truncation_as_terminal),
        static_argnums=1,
        donate_argnums=0,
    )
    evaluate = jax.jit(partial(jax_evaluate, agent, env, num_episodes=cfg.eval_episodes))
    eval_key = jax.random.PRNGKey(cfg.seed + 1_000_003)
    bar = logging_lib.progress(cfg.total_steps, f"{meta_out.get('algo', 'agent')} {env_name}", initial=start,
                               disable=None if cfg.progress is None else not cfg.progress)
    if on_chunk and start == 0:
        on_chunk(0, ls.runner.agent)
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    step = start
    while step < cfg.total_steps:
        n = min(chunk, cfg.total_steps - step)
        ts = time.perf_counter()
        ls = run_chunk(ls, n)
        jax.block_until_ready(ls)
        dt = time.perf_counter() - ts
        step += n
        if step > cfg.warmup_steps:
            train_time += dt
            train_steps += n
        bar.update(n)
        if on_chunk:
            on_chunk(step, ls.runner.agent)
        if step % cfg.log_every == 0 or step == cfg.total_steps:
            rs = ls.runner
            rec = {"env_step": step, "sps": n / max(dt, 1e-9), "updates": int(getattr(rs.agent, "step", -1))}
            rec.update({f"agent/{k}": v for k, v in mean_metrics(rs).items()})
            if int(ls.done_count) > 0:
                rec["train/episode_return"] = float(ls.done_return_sum) / int(ls.done_count)
            ls = ls.replace(runner=reset_metrics(rs), done_return_sum=jnp.zeros(()),
                            done_count=jnp.zeros((), jnp.int32))
            out.writer.write(rec)
            check_finite(f"{meta_out.get('algo', 'the agent')} on {env_name}", step, rec, ls.runner.agent, ckpt)
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            ret = np.asarray(evaluate(ls.runner.agent, jax.random.fold_in(eval_key, step)))
            rec = _eval_record(step, ret)
            out.writer.write(rec)
            bar.set_postfix(eval=f"{rec['eval/return_mean']:.3f}")
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.total_steps:
            st = ls if cfg.save_replay else ls.replace(runner=ls.runner.replace(replay=None))
            check_finite(f"{meta_out.get('algo', 'the agent')} on {env_name}", step, {}, ls.runner.agent, ckpt)
            ckpt.save(step, st, {**meta_out, "env_step": step})
    bar.close()
    ckpt.close()
    summary = _summary(
        out.records(),
        {
            **meta_out,
            "env_steps": step,
            "resumed_from": resumed_from,
            "wall_time_s": time.perf_counter() - t0,
            "train_steps_per_s": train_steps / train_time if train_time > 0 else None,
            "replay_saved_in_checkpoints": cfg.save_replay,
        },
    )
    out.finish(summary, title=_title(meta_out, env_name, cfg.seed))
    summary["final_state"] = ls  # not written to JSON: lets callers (tests, figures) use the trained agent
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Loading a trained agent
# ----------------------------------------------------------------------------------------------------------------


def load_checkpoint_meta(workdir: str, step: int | None = None) -> dict:
    """The JSON stored beside a checkpoint: runner config, env, obs/action dims, algo, agent_config, ..."""
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        return ckpt.restore_config(step)
    finally:
        ckpt.close()


def load_agent_state(
    workdir: str, agent: OnlineAgent, step: int | None = None, *, run: int | None = None, seed: int | None = None,
    **where: float,
) -> tuple[Any, dict]:
    """Restore just the agent state of a run (either driver) into the structure of agent.init's output.

    Returns (agent_state, meta). The checkpoint is read without a target, so this works whatever the replay size.
    A multi-run checkpoint (`jaxdiff.train.online_multi`) holds all runs stacked; pick one with run=k (index), or
    seed=s and, when a sweep shares that seed, the swept values (e.g. entropy_alpha=0.0). meta then has "run" and
    "point" added.
    """
    import flax.serialization
    import orbax.checkpoint as ocp

    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if step is None:  # the newest step marked complete whose files are intact (see jaxdiff.train.checkpoint)
        ck = Checkpointer(directory)
        try:
            step = ck.latest_step()
        finally:
            ck.close()
    mngr = ocp.CheckpointManager(directory)
    try:
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(), config=ocp.args.JsonRestore())
        out = mngr.restore(step, args=args)
    finally:
        mngr.close()
    tree, meta = out["state"], dict(out["config"])
    agent_tree = tree["runner"]["agent"] if "runner" in tree else tree["agent"]
    if meta.get("points") is not None:  # stacked runs: keep run k alone
        from jaxdiff.train.multirun import select_run

        k = select_run(meta["points"], run=run, seed=seed, **where)
        agent_tree = jax.tree.map(lambda x: x[k], agent_tree)
        meta.update(run=k, point=meta["points"][k])
    elif run not in (None, 0) or where or (seed is not None and seed != meta.get("runner", {}).get("seed")):
        raise ValueError(f"{workdir} holds a single run (seed {meta.get('runner', {}).get('seed')}); "
                         f"got run={run}, seed={seed}, {where}")
    template = jax.eval_shape(agent.init, jax.random.PRNGKey(0))  # structure only: no op-by-op init of big nets

    def as_state_dict(x):  # orbax hands tuples back as lists and empty nodes as None; flax wants {"0": ...}
        if isinstance(x, (list, tuple)):
            return {str(i): as_state_dict(v) for i, v in enumerate(x)}
        if isinstance(x, dict):
            return {k: as_state_dict(v) for k, v in x.items()}
        return {} if x is None else x

    state = flax.serialization.from_state_dict(template, as_state_dict(agent_tree))
    return jax.tree.map(jnp.asarray, state), meta
