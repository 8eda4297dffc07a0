r"""Online RL launcher: QVPO (and, by one registry entry each, other Algorithms) on gymnasium MuJoCo or the bandit.

  python experiments/qvpo_online.py                      # --env=bandit: the paper's Fig. 2 toy, 1-3 min on a 2-core CPU
  python experiments/qvpo_online.py --env=Hopper-v5      # the paper's protocol: 1M steps, 10k warm-up, eval every 10k
  python experiments/qvpo_online.py --env=Hopper-v5 --total_steps=2000 --warmup_steps=500 --n_d=4   # smoke run
  python experiments/qvpo_online.py --env=Hopper-v5 --resume  # continue from the latest checkpoint in --workdir
  python experiments/qvpo_online.py --num_seeds=5              # 5 seeds (x with/without entropy) in one vmapped run
  python experiments/qvpo_online.py --env=Hopper-v5 --num_seeds=3 --entropy_alpha=0.0,0.02   # 6 runs in one process

Every field of the algorithm's config dataclass is a flag of the same name (e.g. --n_d --k_b --k_t --n_uniform
--diffusion_steps --weight_transform --entropy_alpha --entropy_min --actor_lr); unset flags keep the algorithm's
default, or the env preset's (the bandit uses a small, fast preset); --helpshort explains each, with its default
per algorithm and whether it can be swept. Outputs in --workdir (default
runs/<algo>_<env>_<seed>): metrics.jsonl, summary.json, curves.png, checkpoints/, and for the bandit
bandit_samples.png (policy samples over training, with and without the entropy term).

Many runs in one process (the same driver, jaxdiff.train.online): --num_seeds=N trains seeds --seed .. --seed+N-1 together,
the states stacked and every step vmapped (and sharded over all visible devices). A numeric hyperparameter that
the agent keeps in its state (QVPO: actor_lr critic_lr gamma tau cut entropy_alpha entropy_min ...; SAC: gamma tau;
TD3: gamma tau policy_noise noise_clip exploration_noise) takes a comma-separated list and is swept in the same run,
crossed with the seeds; a list for a size (n_d, batch_size, ...) is refused. Outputs then hold all runs:
metrics.jsonl records carry "run", curves.png shows mean +- std per sweep point, summary.json has per-run scores
and aggregates (mean, std, IQM, 95% bootstrap CI) per sweep point, checkpoints/ is one stacked checkpoint
(`jaxdiff.load_policy(workdir, seed=s[, entropy_alpha=...])` or `run=k` restores one run). One run has the same
layout (one "run" 0). On the bandit with one seed the with/without-entropy comparison is a second run in
<workdir>/no_entropy; with many runs it becomes a sweep point.

Algorithms, flag help and env presets live in jaxdiff/train/online_algos.py (adding an algorithm: one `ALGOS`
entry).
"""
from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from jaxdiff.train import logging as logging_lib  # noqa: E402
from jaxdiff.train import cli, multirun, online, run_points, sweep  # noqa: E402
from jaxdiff.train.online_algos import ALGOS, CONFIG_HELP, PRESETS, Algo  # noqa: E402,F401


# ----------------------------------------------------------------------------------------------------------------
# Flags
# ----------------------------------------------------------------------------------------------------------------

FLAGS = flags.FLAGS
flags.DEFINE_enum("algo", "qvpo", sorted(ALGOS), "Algorithm.")
flags.DEFINE_string("env", "bandit", "'bandit' (pure-JAX toy of the paper's Fig. 2) or a gymnasium id, e.g. Hopper-v5.")
flags.DEFINE_integer("seed", 0, "Seed (network init, replay sampling, env resets); the first of --num_seeds.")
flags.DEFINE_integer("num_seeds", 1, "Seeds trained together in one vmapped process (--seed, --seed+1, ...).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/<algo>_<env>_<seed>).")
flags.DEFINE_bool("resume", False, "Continue from the latest checkpoint in --workdir.")
flags.DEFINE_bool("overwrite", False, "Delete existing checkpoints in --workdir when not resuming.")
flags.DEFINE_bool("bandit_compare", True, "Bandit only: also train without the entropy term and plot both.")
_RUN_FLAGS = {
    "total_steps": (flags.DEFINE_integer, "Env steps in total (default 1M; bandit 600)."),
    "warmup_steps": (flags.DEFINE_integer, "Uniform-random env steps before updates start (default 10k)."),
    "eval_every": (flags.DEFINE_integer, "Env steps between evaluations (default 10k)."),
    "eval_episodes": (flags.DEFINE_integer, "Episodes per evaluation (default 10)."),
    "log_every": (flags.DEFINE_integer, "Env steps between metrics.jsonl records (default 1000)."),
    "checkpoint_every": (flags.DEFINE_integer, "Env steps between checkpoints (default 50k; 0 = only at the end)."),
    "buffer_size": (flags.DEFINE_integer, "Replay capacity (default 1e6)."),
    "save_replay": (flags.DEFINE_bool, "Save the replay buffer in checkpoints (default true)."),
    "truncation_as_terminal": (flags.DEFINE_bool, "Time-outs terminal, as the official code (default false)."),
    "max_episode_steps": (flags.DEFINE_integer, "Override the env's time limit."),
    "progress": (flags.DEFINE_bool, "Force the progress bar on/off (default: a bar when stderr is a terminal, "
                 "else a progress line every ~30 s)."),
    "tensorboard": (flags.DEFINE_bool, "Also write the metrics as TensorBoard event files to <workdir>/tensorboard "
                    "(needs tensorboardX: pip install 'jaxdiff[tensorboard]')."),
}
for _name, (_define, _help) in _RUN_FLAGS.items():
    _define(_name, None, _help)


def _flag_kind(field: dataclasses.Field) -> str:
    """bool | int | float | list | string, from the default's type or, for a None default, the annotation."""
    if field.default is not None and field.default is not dataclasses.MISSING:
        kind = type(field.default)
        return {bool: "bool", int: "int", float: "float", tuple: "list", list: "list"}.get(kind, "string")
    ann = str(field.type)
    for name, kind in (("bool", "bool"), ("tuple", "list"), ("list", "list"), ("float", "float"), ("int", "int")):
        if name in ann:
            return kind
    return "string"


def _define_config_flags() -> None:
    """One flag per field of every registered config dataclass (default None = keep the algorithm's default).

    Algorithms share a flag when their fields share a name (e.g. --actor_lr); it applies to whichever runs."""
    # numbers are read as strings so that a comma-separated list can ask for a sweep (checked in parse_config_flags)
    definers = {"bool": flags.DEFINE_bool, "int": flags.DEFINE_string, "float": flags.DEFINE_string,
                "list": flags.DEFINE_list, "string": flags.DEFINE_string}
    fields: dict[str, dict[str, dataclasses.Field]] = {}  # name -> {algo: field}
    for algo_name, algo in ALGOS.items():
        for f in dataclasses.fields(algo.config_cls):
            if f.name not in _RUN_FLAGS and f.name not in FLAGS:
                fields.setdefault(f.name, {})[algo_name] = f
    for name, per_algo in fields.items():
        kind = _flag_kind(next(iter(per_algo.values())))
        defaults = ", ".join(f"{a} {f.default!r}" for a, f in per_algo.items())
        sweep_algos = [a for a in per_algo if name in ALGOS[a].sweepable]
        if sweep_algos:
            note = f"Sweepable ({', '.join(sweep_algos)}): a comma-separated list runs one vmapped run per value."
        else:
            note = "One value only (compiled into the run; not sweepable)."
        definers[kind](name, None, f"{CONFIG_HELP.get(name, name)} Default: {defaults}. {note}")


_define_config_flags()


def _number(x: str, name: str = "value"):
    try:
        return int(x) if x.strip().lstrip("-").isdigit() else float(x)
    except ValueError:
        raise cli.FlagError(f"--{name}: {x!r} is not a number; give numbers separated by commas, e.g. 256,256") \
            from None


def build_run_config(env: str) -> online.OnlineConfig:
    values = dict(PRESETS.get(env, {}).get("run", {}))
    values.update({k: getattr(FLAGS, k) for k in _RUN_FLAGS if getattr(FLAGS, k) is not None})
    return online.OnlineConfig(seed=FLAGS.seed, **values)


def parse_config_flags(algo: Algo) -> tuple[dict, dict[str, list[float]]]:
    """(single values, sweeps) from the config flags; a numeric flag given as 'a,b,c' becomes a sweep."""
    values, sweeps = {}, {}
    for f in dataclasses.fields(algo.config_cls):
        v = getattr(FLAGS, f.name, None)
        if v is None:
            continue
        kind = _flag_kind(f)
        if kind == "list":
            values[f.name] = tuple(_number(x, f.name) for x in v)
            if any(x < 1 for x in values[f.name]):
                raise cli.FlagError(f"--{f.name}={','.join(v)}: every width must be >= 1")
        elif kind in ("int", "float"):
            try:
                vals = sweep.parse_values(v, f.name)
            except ValueError as e:
                raise cli.FlagError(str(e)) from None
            if kind == "int" and any(not float(x).is_integer() for x in vals):
                raise cli.FlagError(f"--{f.name}={v}: expected whole numbers, e.g. --{f.name}=4")
            low = 0 if f.name == "n_uniform" else 1
            if kind == "int" and any(x < low for x in vals):
                raise cli.FlagError(f"--{f.name}={v}: must be >= {low}")
            if f.name.endswith("_lr") and any(x <= 0 for x in vals):
                raise cli.FlagError(f"--{f.name}={v}: a learning rate must be > 0")
            vals = [int(x) for x in vals] if kind == "int" else vals
            if len(vals) > 1:
                sweeps[f.name] = vals
            values[f.name] = vals[0]  # the config holds the first value; the sweep overwrites it per run
        else:
            values[f.name] = v
    return values, sweeps


def build_algo_config(algo: Algo, algo_name: str, env: str, run: online.OnlineConfig, values: dict | None = None):
    """The algorithm's config: its defaults, the env preset, then the flags given (values), then run-dependent
    fields (algo.prepare)."""
    given = parse_config_flags(algo)[0] if values is None else values
    merged = {**PRESETS.get(env, {}).get(algo_name, {}), **given}
    return algo.prepare(algo.config_cls(**merged), run, set(given))


# ----------------------------------------------------------------------------------------------------------------
# Runs: one driver call per env kind, for one run point or many
# ----------------------------------------------------------------------------------------------------------------


def _env_dims(env: str) -> tuple[int, int]:
    from jaxdiff.envs.evaluate import make_env

    probe = make_env(env)
    dims = int(np.prod(probe.observation_space.shape)), int(np.prod(probe.action_space.shape))
    probe.close()
    return dims


def _train_bandit(algo: Algo, config, run: online.OnlineConfig, workdir: str, points: list[dict],
                  run_info: dict) -> tuple[dict, list]:
    """run_jax on the bandit with policy-sample snapshots every total_steps / 6: (summary, [(step, samples of
    every run (runs, 1000, 2))])."""
    from jaxdiff.envs import bandit

    env = bandit.make_bandit()
    agent = algo.make(config, env.obs_dim, env.action_dim)
    one = algo.samples(config, env.obs_dim, env.action_dim) if algo.samples else agent.explore
    if len(points) == 1:  # unbatched, as a lone run's samples always were
        one_jit = jax.jit(one)
        sampler = lambda st, o, k: one_jit(jax.tree.map(lambda x: x[0], st), o, k)[None]  # noqa: E731
    else:  # every run sampled on the same obs and key
        sampler = jax.jit(jax.vmap(one, in_axes=(0, None, None)))
    obs = jnp.zeros((1000, env.obs_dim))
    snaps = []
    snap_every = max(run.total_steps // 6, 1)

    def on_chunk(step, states):
        if step % snap_every == 0 or step == run.total_steps:
            snaps.append((step, np.asarray(sampler(states, obs, jax.random.PRNGKey(step)))))

    summary = online.run_jax(agent, env, run, workdir, points, env_name="bandit", resume=FLAGS.resume,
                             overwrite=FLAGS.overwrite, run_info=run_info, on_chunk=on_chunk)
    final_agents = summary.pop("final_state").runner.agent
    if not snaps or snaps[-1][0] != summary["env_steps"]:  # e.g. resumed at the end: nothing trained, no chunk ran
        snaps.append((summary["env_steps"], np.asarray(sampler(final_agents, obs, jax.random.PRNGKey(0)))))
    return summary, snaps


def _sample_stats(acts: np.ndarray) -> dict:
    from jaxdiff.envs import bandit

    return {"best_peak_fraction": float(bandit.fraction_near(jnp.asarray(acts))),
            "nearest_peak_counts": np.bincount(np.asarray(bandit.nearest_peak(acts)), minlength=3).tolist(),
            "mean_sample_reward": float(jnp.mean(bandit.reward(jnp.asarray(acts))))}


def _run_bandit(algo: Algo, config, run: online.OnlineConfig, workdir: str, points: list[dict],
                run_info: dict) -> dict:
    """The bandit: one run_jax over the points, or (one seed, no sweep) the run and, for the comparison, the same
    run without the entropy term in workdir/no_entropy; bandit_samples.png shows the policy samples over training."""
    from jaxdiff.envs import bandit

    many = len(points) > 1
    if many:
        summary, snaps = _train_bandit(algo, config, run, workdir, points, run_info)
        per_run = [{"run": k, **p, **_sample_stats(snaps[-1][1][k])} for k, p in enumerate(points)]
        grouped = {multirun.point_label(hp): sweep.aggregate([per_run[i]["best_peak_fraction"] for i in idx])
                   for hp, idx in multirun.groups(points)}
        # figure: one row per sweep point, its first seed
        rows = {f"{multirun.point_label(hp)}, seed {points[idx[0]]['seed']}": [(st, a[idx[0]]) for st, a in snaps]
                for hp, idx in multirun.groups(points)}
        results = {"runs": per_run, "best_peak_fraction": grouped}
        for label, agg in grouped.items():
            print(f"    {label}: best-peak fraction {agg['mean']:.3f} +- {agg['std']:.3f} (n={agg['n']})")
    else:
        variants = {"with entropy term": (config, workdir)}
        if FLAGS.bandit_compare and getattr(config, "entropy_alpha", 0) > 0:
            variants["without entropy term"] = (dataclasses.replace(config, entropy_alpha=0.0),
                                                os.path.join(workdir, "no_entropy"))
        rows, runs, summary = {}, {}, None
        for label, (cfg, wd) in variants.items():
            print(f"--- bandit: {label} -> {wd}")
            info = {**run_info, "agent_config": dataclasses.asdict(cfg), "label": label}
            s, snaps = _train_bandit(algo, cfg, run, wd, points, info)
            rows[label] = [(st, a[0]) for st, a in snaps]
            runs[label] = {"final_eval_return": s["runs"][0].get("final_eval_return"),
                           **_sample_stats(snaps[-1][1][0]), "workdir": wd}
            print(f"    {label}: " + ", ".join(f"{k}={v}" for k, v in runs[label].items() if k != "workdir"))
            summary = summary or s
        results = {"runs": runs}
    fig = os.path.join(workdir, "bandit_samples.png")
    bandit.plot_samples(rows, fig, title=f"{algo.name} on the 3-peak bandit (best peak at "
                                         f"{bandit.CENTERS[bandit.BEST]})")
    summary["bandit"] = {"peaks": {"centers": bandit.CENTERS, "heights": bandit.HEIGHTS, "widths": bandit.WIDTHS},
                         **results, "figure": fig}
    logging_lib.write_json(os.path.join(workdir, "summary.json"), summary)
    print(f"figure: {fig}")
    return summary


def _train(algo: Algo, config, run: online.OnlineConfig, env: str, workdir: str,
           sweeps: dict[str, list[float]]) -> dict:
    """All runs of the flags (seeds x sweep points) through one driver call; prints the scores."""
    many = FLAGS.num_seeds > 1 or bool(sweeps)
    if many and env == "bandit" and FLAGS.bandit_compare and getattr(config, "entropy_alpha", 0) > 0 \
            and "entropy_alpha" not in sweeps:
        sweeps = {**sweeps, "entropy_alpha": [config.entropy_alpha, 0.0]}  # with / without the entropy term
    points = sweep.grid(FLAGS.num_seeds, FLAGS.seed, **sweeps)
    obs_dim, action_dim = (1, 2) if env == "bandit" else _env_dims(env)
    agent = algo.make(config, obs_dim, action_dim)
    try:  # refuse a list for a size before anything compiles
        run_points.check_points(agent, points)
    except ValueError as e:
        raise cli.FlagError(str(e)) from None
    if len(points) > 1:
        print(f"{len(points)} runs ({FLAGS.num_seeds} seeds x {len(points) // FLAGS.num_seeds} sweep points) "
              f"on {len(jax.devices())} device(s): {points}")
    run_info = {"algo": algo.name, "agent_config": dataclasses.asdict(config), "num_seeds": FLAGS.num_seeds}
    if env == "bandit":
        summary = _run_bandit(algo, config, run, workdir, points, run_info)
    else:
        summary = online.run_gym(agent, env, run, workdir, points, resume=FLAGS.resume, overwrite=FLAGS.overwrite,
                                 run_info=run_info)
        summary.pop("final_state", None)
    for g in summary["groups"] if len(points) > 1 else []:
        f, b = g.get("final_eval_return"), g.get("best_eval_return")
        if f:
            print(f"  {g['label']}: final eval {f['mean']:.3f} +- {f['std']:.3f} (IQM {f['iqm']:.3f}, "
                  f"95% CI [{f['ci95'][0]:.3f}, {f['ci95'][1]:.3f}]), best {b['mean']:.3f}, n={f['n']}")
    first = summary["runs"][0]
    keys = ["num_runs", "devices", "resumed_from", "env_steps", "train_steps_per_s", "wall_time_s"]
    scores = {k: first.get(k) for k in ("final_eval_return", "best_eval_return", "best_eval_step")}
    print("summary: " + logging_lib.dumps({**{k: summary.get(k) for k in keys},
                                           **(scores if len(points) == 1 else {})}))  # valid JSON: null, never NaN
    print(f"outputs in {workdir}: {_outputs(workdir)} (metrics field 'run'; checkpoints stacked)")
    return summary



def check_flags(env: str, run: online.OnlineConfig) -> None:
    """Refuse bad run flags before anything is built (cli.FlagError: one line naming the flag and the fix)."""
    if env != "bandit":
        cli.gym_env_id(env, extra=["bandit"])
    cli.positive(num_seeds=FLAGS.num_seeds, total_steps=run.total_steps, eval_every=run.eval_every,
                 eval_episodes=run.eval_episodes, log_every=run.log_every, buffer_size=run.buffer_size,
                 max_episode_steps=run.max_episode_steps)
    cli.non_negative(warmup_steps=run.warmup_steps, checkpoint_every=run.checkpoint_every)
    if run.buffer_size < run.warmup_steps:
        raise cli.FlagError(f"--buffer_size={run.buffer_size} is smaller than --warmup_steps={run.warmup_steps}: "
                            f"the warm-up would overwrite its own data; raise --buffer_size or lower --warmup_steps")
    if FLAGS.resume and FLAGS.overwrite:
        raise cli.FlagError("--resume and --overwrite exclude each other: give one")


def _outputs(workdir: str) -> str:
    names = ["metrics.jsonl", "summary.json", "curves.png", "bandit_samples.png", "checkpoints/"]
    return ", ".join(n for n in names if os.path.exists(os.path.join(workdir, n.rstrip("/"))))


def main(argv):
    del argv
    algo_name, env = FLAGS.algo, FLAGS.env
    algo = ALGOS[algo_name]
    run = build_run_config(env)
    check_flags(env, run)
    values, sweeps = parse_config_flags(algo)
    if values.get("chosen", 1) > values.get("n_d", PRESETS.get(env, {}).get(algo_name, {}).get("n_d", 64)):
        raise cli.FlagError(f"--chosen={values['chosen']} must be <= --n_d (the samples it is chosen from)")
    try:
        config = build_algo_config(algo, algo_name, env, run, values)
    except (ValueError, TypeError) as e:  # the config's own checks, in its field names = the flag names
        raise cli.FlagError(f"bad {algo_name} flags: {e}") from None
    many = FLAGS.num_seeds > 1 or sweeps
    tag = f"{FLAGS.seed}x{FLAGS.num_seeds}" + "".join(f"_{k}" for k in sweeps) if many else str(FLAGS.seed)
    workdir = FLAGS.workdir or os.path.join("runs", f"{algo_name}_{env}_{tag}")
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if FLAGS.resume:
        step = cli.resumable(ckpt_dir, workdir)
        print(f"resuming from step {step} of {workdir}")
    elif not FLAGS.overwrite and os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):  # before anything is built
        raise cli.FlagError(f"--workdir={workdir} already holds a run (checkpoints in {ckpt_dir}): pass --resume to "
                            f"continue it, --overwrite to delete it and start over, or choose another --workdir")
    seeds = f"seeds {FLAGS.seed}..{FLAGS.seed + FLAGS.num_seeds - 1}, sweeps {sweeps}" if many else f"seed {FLAGS.seed}"
    print(f"{algo_name} on {env}, {seeds}, workdir {workdir}\n  run: {run}\n  config: {config}")
    _train(algo, config, run, env, workdir, sweeps)


if __name__ == "__main__":
    cli.run(main)
