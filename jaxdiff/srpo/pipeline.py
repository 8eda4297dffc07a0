"""Host side of SRPO: datasets, the three stages as jitted chunks, eval, logging, checkpoints, resume, load_policy.

Each stage is a short Python loop around one jitted chunk (a lax.scan of `log_every` updates). Chunk k of a
stage always covers steps [k*K, (k+1)*K) and uses the key fold_in(stage_key, k*K), and checkpoints are taken at
chunk boundaries, so a run resumed from its latest checkpoint replays exactly what an uninterrupted run does.
The stage loop (`stage_loop`), the checkpoint plan (`plan_stages`) and the evaluation records are shared with the
multi-run driver `jaxdiff.srpo.multi` (seeds x sweeps vmapped in one process), whose workdirs load_policy also reads.

Workdir layout:
  config.json                 SRPOConfig + run settings + dataset description
  checkpoints/<stage>/<step>  orbax: whole train state + config JSON (stage in behavior, critic, policy)
  metrics.jsonl               one record per chunk (and per evaluation), field "stage"
  summary.json                per-stage final metrics, final evaluation, steps/s per stage ("timing")
  curves_<stage>.png          learning curves; bandit.png for the toy problems
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.data import bandits
from jaxdiff.data.minari_data import OfflineDataset, eval_env_id, load_minari, resolve_name
from jaxdiff.srpo import behavior, critic, policy, train
from jaxdiff.srpo.config import STAGE_FIELDS, SRPOConfig, make_config, preset_for
from jaxdiff.train import divergence
from jaxdiff.train.checkpoint import Checkpointer
from jaxdiff.train.logging import MetricsWriter, plot_curves, progress, read_metrics, write_json

log = logging.getLogger("jaxdiff.srpo")

STAGES = ("behavior", "critic", "policy")
_STAGE_IDS = {"behavior": 0, "critic": 1, "policy": 2}
_CHUNKS = {
    "behavior": jax.jit(train.behavior_chunk, static_argnames="num_steps"),
    "critic": jax.jit(train.critic_chunk, static_argnames="num_steps"),
    "policy": jax.jit(train.policy_chunk, static_argnames="num_steps"),
}
_ACT = jax.jit(policy.act)
CURVES = {"behavior": ("loss", "grad_norm"), "critic": ("q_loss", "v_loss", "q_mean", "v_mean"),
          "policy": ("loss", "kl_term", "q_pi", "eval_return", "eval_score")}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything about a run that is not the algorithm."""

    env: str = "bandit-imbalanced"
    seed: int = 0
    workdir: str | None = None  # default runs/srpo_<env>_<seed>
    stage: str = "all"  # behavior | critic | policy | all
    resume: bool = False
    overwrite: bool = False
    log_every: int = 1000  # chunk size: updates per jitted call, and the metrics interval
    eval_every: int = 0  # policy-stage evaluation interval (0: only at the end); a multiple of log_every
    checkpoint_every: int = 50_000  # a multiple of log_every; a checkpoint is also taken at each stage end
    eval_episodes: int = 20
    eval_seed: int = 10_000  # evaluation episodes use seeds eval_seed + i, independent of the training seed
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    progress_bar: bool | None = None  # None: on when stderr is a terminal
    plots: bool = True  # learning-curve PNGs (and the bandit figure for toys)
    tensorboard: bool = False  # also write the metrics as TensorBoard scalars to <workdir>/tensorboard

    def validate(self) -> None:
        if self.stage not in STAGES + ("all",):
            raise ValueError(f"--stage must be one of behavior, critic, policy, all; got {self.stage!r}")
        if self.log_every < 1:
            raise ValueError(f"--log_every must be >= 1, got {self.log_every}")
        for name in ("eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if v < 0 or v % self.log_every:
                raise ValueError(f"--{name}={v} must be a non-negative multiple of --log_every={self.log_every} "
                                 f"(checkpoints and evaluations happen between jitted chunks)")
        if self.eval_episodes < 0:
            raise ValueError(f"--eval_episodes must be >= 0, got {self.eval_episodes}")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite exclude each other")


def tensorboard_dir(run: RunConfig) -> str | None:
    return os.path.join(run.workdir, "tensorboard") if run.tensorboard else None


def default_workdir(env: str, seed: int) -> str:
    return os.path.join("runs", f"srpo_{re.sub(r'[^A-Za-z0-9_.-]+', '_', env)}_{seed}")


# ----------------------------------------------------------------------------------------------- datasets
def is_bandit(env: str) -> bool:
    return env.startswith("bandit-")


def task_for(env: str) -> str | None:
    """Preset key of an --env value (no data is read)."""
    if is_bandit(env):
        return f"bandit-{bandits.get(env).name}"
    return resolve_name(env)[0]


def load_dataset(env: str, ref_min_score: float | None = None, ref_max_score: float | None = None) -> OfflineDataset:
    """A toy bandit (bandit-<name>) or a Minari dataset / short name, as an OfflineDataset."""
    if is_bandit(env):
        ds = bandits.make_dataset(env)
        if (ref_min_score is None) != (ref_max_score is None):
            raise ValueError("give both --ref_min_score and --ref_max_score, or neither")
        if ref_min_score is not None:
            ds.ref_min_score, ds.ref_max_score = float(ref_min_score), float(ref_max_score)
        return ds
    return load_minari(env, ref_min_score, ref_max_score)


def configure(env: str, **overrides) -> SRPOConfig:
    """SRPOConfig for an --env: defaults <- its task preset <- overrides (None = keep)."""
    return make_config(task_for(env), **overrides)


# ----------------------------------------------------------------------------------------------- keys
def stage_keys(seed: int, stage: str) -> tuple[jax.Array, jax.Array]:
    """(init key, train key) of a stage; independent across stages, so (a) and (b) do not depend on each other."""
    k = jax.random.fold_in(jax.random.PRNGKey(seed), _STAGE_IDS[stage])
    return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)


_INITS = {  # jitted inits (sizes and config static): much faster than flax's op-by-op init of big networks
    "behavior": jax.jit(behavior.init, static_argnums=(1, 2, 3)),
    "critic": jax.jit(critic.init, static_argnums=(1, 2, 3)),
    "policy": jax.jit(policy.init, static_argnums=(1, 2, 3)),
}


def init_states(seed: int, obs_dim: int, action_dim: int, cfg: SRPOConfig, upto: str = "policy") -> dict:
    """Fresh states of all stages up to `upto` (the policy is built from the fresh behavior/critic)."""
    out = {s: _INITS[s](stage_keys(seed, s)[0], obs_dim, action_dim, cfg) for s in ("behavior", "critic")}
    if upto == "policy":
        out["policy"] = _INITS["policy"](stage_keys(seed, "policy")[0], obs_dim, action_dim, cfg, out["behavior"],
                                         out["critic"])
    return out


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate(state: policy.PolicyState, dataset: OfflineDataset, episodes: int, seed: int) -> dict:
    """Deterministic-policy evaluation: known reward for bandits, vectorised gymnasium rollouts otherwise."""
    if dataset.kind == "bandit":
        return bandit_record(np.asarray(_ACT(state, jnp.zeros((1, dataset.obs_dim))))[0], dataset)
    from jaxdiff.envs.evaluate import evaluate_policy

    env_id = eval_env_id(dataset)
    res = evaluate_policy(env_id, lambda obs, step: _ACT(state, jnp.asarray(obs)), num_episodes=episodes, seed=seed)
    return returns_record(res["returns"], res["lengths"], dataset)


def bandit_record(a: np.ndarray, dataset: OfflineDataset) -> dict:
    """Evaluation record of a bandit action (the reward is known, so one 'episode')."""
    r = float(dataset.bandit.reward(a[None])[0])
    mass = float(bandits.support_mass(a, dataset.data.action[:20_000])[0])
    out = {"mean_return": r, "std_return": 0.0, "episodes": 1, "returns": [r], "action": a.tolist(),
           "support_mass": mass, "in_support": mass >= bandits.SUPPORT_THRESHOLD}
    if not out["in_support"]:
        out["note"] = (f"the final action lies outside the data's support (only {mass:.2%} of dataset actions within "
                       f"0.1); the score extrapolates the reward beyond the data")
    return _add_scores(out, dataset)


def returns_record(returns: np.ndarray, lengths: np.ndarray, dataset: OfflineDataset) -> dict:
    """Evaluation record of a batch of episode returns and lengths."""
    out = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "episodes": len(returns),
           "returns": np.asarray(returns).tolist(), "lengths": np.asarray(lengths).tolist()}
    return _add_scores(out, dataset)


def _add_scores(out: dict, dataset: OfflineDataset) -> dict:
    out["normalized_score"] = normalized_score(out["mean_return"], dataset)
    if out["normalized_score"] is not None:
        out["normalized_scores"] = [normalized_score(r, dataset) for r in out["returns"]]
        out["normalized_score_std"] = float(np.std(out["normalized_scores"]))
    return out


def normalized_score(ret: float, dataset: OfflineDataset) -> float | None:
    """100 (return - ref_min) / (ref_max - ref_min), or None when the dataset has no reference scores."""
    if dataset.ref_min_score is None or dataset.ref_max_score is None:
        return None
    return 100.0 * (ret - dataset.ref_min_score) / (dataset.ref_max_score - dataset.ref_min_score)


# ----------------------------------------------------------------------------------------------- checkpoints
def ckpt_dir(workdir: str, stage: str) -> str:
    return os.path.join(workdir, "checkpoints", stage)


def checkpoint_config(cfg: SRPOConfig, run: RunConfig, dataset: OfflineDataset, stage: str) -> dict:
    return {"stage": stage, "srpo": cfg.to_dict(), "run": dataclasses.asdict(run), "dataset": dataset.describe()}


def check_compatible(saved: dict, cfg: SRPOConfig, stage: str, where: str, fields: Any = None) -> None:
    """Raise if the saved checkpoint's settings of the stage (or the given `fields`) differ from cfg's."""
    old = saved.get("srpo", {})
    diff = [f for f in (STAGE_FIELDS[stage] if fields is None else fields) if f in old and old[f] != getattr(cfg, f)]
    if diff:
        pairs = ", ".join(f"{f}: saved {old[f]!r} vs now {getattr(cfg, f)!r}" for f in diff)
        raise ValueError(f"the {stage} checkpoint in {where} was made with different settings ({pairs}); "
                         f"use the same flags, --overwrite, or a new --workdir")


def _total_steps(cfg: SRPOConfig, stage: str) -> int:
    return getattr(cfg, f"{stage}_steps")


def prune_metrics(path: str, stage: str, after_step: int) -> None:
    """Drop this stage's records past `after_step` (they are replayed by the resumed run)."""
    records = read_metrics(path)
    keep = [r for r in records if not (r.get("stage") == stage and r.get("step", 0) > after_step)]
    if len(keep) != len(records):
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in keep)


# ----------------------------------------------------------------------------------------------- plan
def needed_stages(stage: str) -> tuple[str, ...]:
    """Stages that must exist for --stage (the policy needs a behavior model and a critic)."""
    return STAGES if stage in ("all", "policy") else (stage,)


def stages_to_train(stage: str) -> tuple[str, ...]:
    return STAGES if stage == "all" else (stage,)


def _single_run_check(cfg: SRPOConfig) -> Callable[[dict, str, str], None]:
    def check(saved: dict, stage: str, where: str) -> None:
        if saved.get("points") is not None:
            raise ValueError(f"{where} holds a multi-run checkpoint ({len(saved['points'])} runs); continue it with "
                             f"the same --num_seeds and sweep flags, or choose a new --workdir")
        check_compatible(saved, cfg, stage, where)

    return check


def plan_stages(workdir: str, run_cfg: RunConfig, cfg: SRPOConfig,
                check: Callable[[dict, str, str], None]) -> dict[str, tuple[str, int | None]]:
    """Decide, before any work, what each needed stage does: ("fresh", None), ("resume", step) or ("reuse", step).

    check(saved checkpoint config, stage, directory) raises ValueError when a checkpoint cannot be continued or
    reused with the current settings. Deletes the checkpoints of the stages being trained when run_cfg.overwrite.
    """
    to_train = stages_to_train(run_cfg.stage)
    plan: dict[str, tuple[str, int | None]] = {}
    for stage in needed_stages(run_cfg.stage):
        ck = Checkpointer(ckpt_dir(workdir, stage))
        where = ckpt_dir(workdir, stage)
        if stage in to_train and run_cfg.overwrite and ck.has_any():  # damaged steps included
            ck.close()
            shutil.rmtree(where)
            plan[stage] = ("fresh", None)
            continue
        latest = ck.latest_step()  # newest readable; CheckpointError when every step there is damaged
        if stage in to_train:
            if latest is not None and not run_cfg.resume:
                raise ValueError(f"{where} already has a {stage} checkpoint (step {latest}); pass --resume to continue "
                                 f"or reuse it, --overwrite to start over, or choose a new --workdir")
            if latest is not None:
                check(ck.restore_config(latest), stage, where)
            plan[stage] = ("resume", latest) if latest is not None else ("fresh", None)
        else:
            if latest is None or latest < _total_steps(cfg, stage):
                raise ValueError(f"--stage={run_cfg.stage} needs a finished {stage} stage in {workdir} (found "
                                 f"{'none' if latest is None else f'step {latest}'}); run --stage={stage} first")
            check(ck.restore_config(latest), stage, where)
            plan[stage] = ("reuse", latest)
        ck.close()
    if run_cfg.resume and all(mode == "fresh" for mode, _ in plan.values()):
        raise ValueError(f"--resume: nothing to resume in --workdir={workdir} (no checkpoints in "
                         f"{os.path.join(workdir, 'checkpoints')}); check --workdir, or drop --resume to start a "
                         f"new run")
    return plan


# ----------------------------------------------------------------------------------------------- stage loop
ChunkFn = Callable[[Any, int, int], tuple[Any, dict]]
RecordsFn = Callable[[int, int, float, dict, Any], list[dict]]


def stage_loop(stage: str, state: Any, start: int, total: int, run: RunConfig, chunk: ChunkFn, to_records: RecordsFn,
               writer: MetricsWriter, ckpt: Checkpointer, save: Callable[[int, Any], None],
               eval_fn: Callable[[Any], Any] | None = None) -> tuple[Any, dict, dict, Any]:
    """The host loop of one stage, shared by the single-run and the multi-run drivers.

    chunk(state, step, n) -> (state, host metrics) runs the n updates after `step`; to_records(step, n, seconds,
    metrics, eval or None) -> metrics.jsonl records; save(step, state) checkpoints. Evaluation every
    run.eval_every steps and at the end (if eval_fn), checkpoints every run.checkpoint_every and at the end.
    Returns (state, last metrics, timing, last evaluation).
    """
    step = start
    K = run.log_every
    last: dict = {}
    last_eval = None
    chunk_times: list[tuple[int, float]] = []
    t_stage = time.perf_counter()
    bar = progress(total, desc=stage, initial=step, disable=None if run.progress_bar is None else not run.progress_bar)
    while step < total:
        n = min(K, total - step)
        t0 = time.perf_counter()
        state, last = chunk(state, step, n)  # host values: the chunk has finished
        dt = time.perf_counter() - t0
        chunk_times.append((n, dt))
        step += n
        bar.update(n)
        try:  # before evaluating or saving: the last checkpoint stays finite
            divergence.check(f"the SRPO {stage} stage", step, last, state, last_checkpoint=ckpt.latest_step,
                             directory=ckpt.directory, lr_flags={"": f"--{stage}_lr"})
        except divergence.DivergenceError:
            for record in to_records(step, n, dt, last, None):  # the non-finite values, as null, for the record
                writer.write(record)
            bar.close()
            raise
        ev = None
        if eval_fn is not None and ((run.eval_every and step % run.eval_every == 0) or step == total):
            ev = last_eval = eval_fn(state)
        for record in to_records(step, n, dt, last, ev):
            writer.write(record)
        bar.set_postfix({k: f"{float(np.mean(v)):.3g}" for k, v in list(last.items())[:3]})
        if (run.checkpoint_every and step % run.checkpoint_every == 0) or step == total:
            save(step, state)
    if total == 0 or ckpt.latest_step() is None:
        save(step, state)
    bar.close()
    timing = {"time_s": time.perf_counter() - t_stage, "chunks": len(chunk_times)}
    if chunk_times:
        steady = chunk_times[1:] if len(chunk_times) > 1 else chunk_times
        timing["steps_per_s"] = sum(n for n, _ in steady) / max(sum(t for _, t in steady), 1e-9)
        timing["first_chunk_s"] = chunk_times[0][1]
    return state, last, timing, last_eval


def _train_stage(stage: str, state: Any, data: Any, cfg: SRPOConfig, run: RunConfig, ckpt: Checkpointer,
                 writer: MetricsWriter, ckpt_config: dict,
                 eval_fn: Callable[[Any], dict] | None = None) -> tuple[Any, dict, dict, dict | None]:
    _, train_key = stage_keys(run.seed, stage)
    chunk_fn = _CHUNKS[stage]

    def chunk(st, step, n):
        st, metrics = chunk_fn(st, data, jax.random.fold_in(train_key, step), num_steps=n)
        return st, {k: float(v) for k, v in jax.device_get(metrics).items()}

    def to_records(step, n, dt, last, ev):
        record = {"stage": stage, "step": step, **last, "steps_per_s": n / dt}
        if ev is not None:
            record.update(eval_return=ev["mean_return"], eval_score=ev["normalized_score"])
        return [record]

    return stage_loop(stage, state, int(state.step), _total_steps(cfg, stage), run, chunk, to_records, writer, ckpt,
                      lambda step, st: ckpt.save(step, st, ckpt_config), eval_fn)


# ----------------------------------------------------------------------------------------------- run
def run(run_cfg: RunConfig, cfg: SRPOConfig | None = None, dataset: OfflineDataset | None = None) -> dict:
    """Run (or resume) the requested stages; returns the summary dict that is also written to summary.json."""
    run_cfg.validate()
    workdir = run_cfg.workdir or default_workdir(run_cfg.env, run_cfg.seed)
    run_cfg = dataclasses.replace(run_cfg, workdir=workdir)
    if dataset is None:
        dataset = load_dataset(run_cfg.env, run_cfg.ref_min_score, run_cfg.ref_max_score)
    if cfg is None:
        cfg = configure(run_cfg.env)
    _, preset_note = preset_for(dataset.task)
    os.makedirs(workdir, exist_ok=True)
    needed = needed_stages(run_cfg.stage)

    plan = plan_stages(workdir, run_cfg, cfg, _single_run_check(cfg))

    write_json(os.path.join(workdir, "config.json"),
               {"srpo": cfg.to_dict(), "run": dataclasses.asdict(run_cfg), "dataset": dataset.describe(),
                "preset": preset_note})
    summary_path = os.path.join(workdir, "summary.json")
    summary: dict = {}
    if os.path.exists(summary_path):  # entries of stages that are retrained below are dropped
        with open(summary_path) as f:
            summary = json.load(f)
    summary.update(env=run_cfg.env, seed=run_cfg.seed, workdir=workdir, dataset=dataset.describe(),
                   config=cfg.to_dict(), preset=preset_note)
    summary.setdefault("stages", {})
    summary.setdefault("timing", {})
    notes = []
    if dataset.ref_min_score is None:
        notes.append(f"dataset {dataset.name} has no ref_min_score/ref_max_score, so no normalised score; pass "
                     f"--ref_min_score and --ref_max_score (e.g. random and expert policy returns) to get one")
        log.warning(notes[-1])
    summary["notes"] = notes

    metrics_path = os.path.join(workdir, "metrics.jsonl")
    for stage, (mode, latest) in plan.items():
        if mode == "fresh":
            prune_metrics(metrics_path, stage, 0)
            summary["stages"].pop(stage, None)
            summary["timing"].pop(stage, None)
            summary.pop("eval", None)
        elif mode == "resume":
            prune_metrics(metrics_path, stage, latest)
    writer = MetricsWriter(metrics_path, tensorboard_dir(run_cfg))
    data = jax.device_put(dataset.data)
    fresh = init_states(run_cfg.seed, dataset.obs_dim, dataset.action_dim, cfg, upto="critic")
    states: dict[str, Any] = {}
    final_eval = None  # the policy stage's evaluation at its last step, when it trains in this invocation

    def eval_fn(st):
        return evaluate(st, dataset, run_cfg.eval_episodes, run_cfg.eval_seed)

    for stage in needed:
        mode, latest = plan[stage]
        if stage == "policy":
            target = _INITS["policy"](stage_keys(run_cfg.seed, "policy")[0], dataset.obs_dim, dataset.action_dim,
                                      cfg, states["behavior"], states["critic"])
        else:
            target = fresh[stage]
        ck = Checkpointer(ckpt_dir(workdir, stage))
        if mode in ("resume", "reuse"):
            # resume: the newest step that reads back (older ones when it does not); reuse: the finished one
            got, target = ck.restore(target, None if mode == "resume" else latest)
            if got != latest:
                prune_metrics(metrics_path, stage, got)
            log.info("%s: restored step %d from %s", stage, got, ckpt_dir(workdir, stage))
        if mode == "reuse" or int(target.step) >= _total_steps(cfg, stage):
            states[stage] = target
            ck.close()
            continue
        state, last, timing, last_eval = _train_stage(
            stage, target, data, cfg, run_cfg, ck, writer, checkpoint_config(cfg, run_cfg, dataset, stage),
            eval_fn if (stage == "policy" and run_cfg.eval_episodes > 0) else None)
        ck.close()
        states[stage] = state
        if last_eval is not None:
            final_eval = last_eval
        summary["stages"][stage] = {"steps": int(state.step), "final_metrics": last}
        summary["timing"][stage] = timing
        write_json(summary_path, summary)
    writer.close()

    records = read_metrics(metrics_path) if run_cfg.plots else []
    for stage in needed if run_cfg.plots else ():
        keys = [k for k in CURVES[stage] if any(k in r for r in records if r.get("stage") == stage)]
        plot_curves([r for r in records if r.get("stage") == stage], "step", keys,
                    os.path.join(workdir, f"curves_{stage}.png"), title=f"SRPO {stage} - {run_cfg.env}")
    if "policy" in states:
        if run_cfg.eval_episodes > 0:
            summary["eval"] = {**(final_eval or eval_fn(states["policy"])), "seed": run_cfg.eval_seed}
            ev = summary["eval"]
            log.info("final evaluation: return %.3f +- %.3f, normalised score %s", ev["mean_return"], ev["std_return"],
                     "n/a" if ev["normalized_score"] is None else f"{ev['normalized_score']:.1f}")
            if "note" in ev:
                log.warning("%s", ev["note"])
        if dataset.kind == "bandit" and run_cfg.plots:
            from jaxdiff.srpo.plots import bandit_figure

            bandit_figure(states["behavior"], states["policy"], dataset, os.path.join(workdir, "bandit.png"))
    write_json(summary_path, summary)
    return summary


# ----------------------------------------------------------------------------------------------- loading
def load_policy_state(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                      **where: float) -> policy.PolicyState:
    """The PolicyState of the latest (or given) policy checkpoint in `workdir`.

    A multi-run workdir (jaxdiff.srpo.multi) holds all runs stacked; pick one with seed=s (plus the swept values
    when a sweep shares that seed, e.g. beta=0.1) or run=k (index into summary.json's "runs"). Its swept
    hyperparameters are in the state (beta) and in state.cfg.
    """
    ck = Checkpointer(ckpt_dir(workdir, "policy"))
    try:
        if ck.latest_step() is None:
            raise FileNotFoundError(f"no policy checkpoint in {ckpt_dir(workdir, 'policy')}; run --stage=policy first")
        saved = ck.restore_config(step)
        if saved.get("points") is not None:
            from jaxdiff.srpo import multi

            return multi.restore_run(ck, saved, step, run=run, seed=seed, **where)
        if run not in (None, 0) or where or (seed is not None and seed != saved["run"]["seed"]):
            raise ValueError(f"{workdir} holds a single run (seed {saved['run']['seed']}); got run={run}, seed={seed}"
                             + (f", {where}" if where else ""))
        cfg = SRPOConfig.from_dict(saved["srpo"])
        obs_dim, action_dim = saved["dataset"]["obs_dim"], saved["dataset"]["action_dim"]
        target = jax.eval_shape(lambda: init_states(saved["run"]["seed"], obs_dim, action_dim, cfg)["policy"])
        _, state = ck.restore(target, step)  # target: shapes only, no compute
        return state
    finally:
        ck.close()


def load_policy(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                **where: float) -> Callable[[Any], jax.Array]:
    """act(obs) -> actions in [-1, 1] from a run's policy checkpoint (the policy call is jitted).

    obs: one observation (obs_dim,) -> (action_dim,), or a batch (B, obs_dim) -> (B, action_dim); numpy, jax
    arrays or lists. Any other shape is a ValueError naming the expected ones (jaxdiff.envs.evaluate.obs_batch).
    Multi-run workdirs: choose the run with seed=s (and swept values, e.g. beta=0.1) or run=k, as in
    load_policy_state. Map actions to the env's box with jaxdiff.envs.evaluate.scale_action (identity for [-1, 1]).
    """
    from jaxdiff.envs.evaluate import checked_act

    state = load_policy_state(workdir, step, run=run, seed=seed, **where)
    ck = Checkpointer(ckpt_dir(workdir, "policy"))
    try:
        obs_dim = int(ck.restore_config(step)["dataset"]["obs_dim"])
    finally:
        ck.close()
    return checked_act(jax.jit(lambda obs: policy.act(state, obs)), obs_dim)
