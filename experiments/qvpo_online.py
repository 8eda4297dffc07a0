r"""Online RL launcher: QVPO (and, by one registry entry each, other OnlineAgents) on gymnasium MuJoCo or the bandit.

  python experiments/qvpo_online.py                      # --env=bandit: the paper's Fig. 2 toy, a few minutes on CPU
  python experiments/qvpo_online.py --env=Hopper-v5      # the paper's protocol: 1M steps, 10k warm-up, eval every 10k
  python experiments/qvpo_online.py --env=Hopper-v5 --total_steps=2000 --warmup_steps=500 --n_d=4   # smoke run
  python experiments/qvpo_online.py --env=Hopper-v5 --resume  # continue from the latest checkpoint in --workdir

Every field of the algorithm's config dataclass is a flag of the same name (e.g. --n_d --k_b --k_t --n_uniform
--diffusion_steps --weight_transform --entropy_alpha --entropy_min --actor_lr); unset flags keep the algorithm's
default, or the env preset's (the bandit uses a small, fast preset). Outputs in --workdir (default
runs/<algo>_<env>_<seed>): metrics.jsonl, summary.json, curves.png, checkpoints/, and for the bandit
bandit_samples.png (policy samples over training, with and without the entropy term).

Adding an algorithm: one `ALGOS` entry (config dataclass + make_agent [+ prepare, samples]).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Callable, NamedTuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from jaxdiff import qvpo  # noqa: E402
from jaxdiff.baselines import sac, td3  # noqa: E402
from jaxdiff.train import logging as logging_lib  # noqa: E402
from jaxdiff.train import online  # noqa: E402


# ----------------------------------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------------------------------


class Algo(NamedTuple):
    config_cls: type  # frozen dataclass of hyperparameters, with official defaults
    make_agent: Callable[[Any, int, int], Any]  # (config, obs_dim, action_dim) -> OnlineAgent
    # (config, run_cfg) -> config: fill fields that depend on the run (e.g. schedules over total_steps)
    prepare: Callable[[Any, online.OnlineConfig], Any] = lambda c, r: c
    # (config, obs_dim, action_dim) -> fn(agent_state, obs (n, obs_dim), key) -> actions: raw policy samples for
    # the bandit figure; None = the agent's explore()
    samples: Callable | None = None


def _qvpo_prepare(c: qvpo.QVPOConfig, run: online.OnlineConfig) -> qvpo.QVPOConfig:
    # omega_ent decays over the run's env steps, starting at the first update (official: steps / num_steps)
    updates = {}
    if FLAGS.entropy_horizon is None:
        updates["entropy_horizon"] = float(run.total_steps)
    if FLAGS.entropy_offset is None:
        updates["entropy_offset"] = float(run.warmup_steps)
    return dataclasses.replace(c, **updates)


def _qvpo_samples(c: qvpo.QVPOConfig, obs_dim: int, action_dim: int):
    bundle = qvpo.make(c, obs_dim, action_dim)
    return lambda st, obs, key: bundle.sample(st.actor, obs, key)


ALGOS: dict[str, Algo] = {
    "qvpo": Algo(qvpo.QVPOConfig, qvpo.make_agent, _qvpo_prepare, _qvpo_samples),
    "sac": Algo(sac.SACConfig, sac.make_agent),
    "td3": Algo(td3.TD3Config, td3.make_agent),
}

# Per-env defaults for runner flags and per-algo config fields (flags given on the command line win).
PRESETS: dict[str, dict] = {
    "bandit": {
        "run": dict(total_steps=3000, warmup_steps=1000, eval_every=500, eval_episodes=100, log_every=250,
                    checkpoint_every=1000, buffer_size=3000),
        # small and fast on CPU; the bandit is terminal every step, so k_t only costs time (k_t = 1)
        "qvpo": dict(batch_size=64, n_d=16, diffusion_steps=10, k_t=1, k_eval=8, actor_hidden=64,
                     critic_hidden=(256, 256), critic_lr=1e-3),
    },
}

# ----------------------------------------------------------------------------------------------------------------
# Flags
# ----------------------------------------------------------------------------------------------------------------

FLAGS = flags.FLAGS
flags.DEFINE_enum("algo", "qvpo", sorted(ALGOS), "Algorithm.")
flags.DEFINE_string("env", "bandit", "'bandit' (pure-JAX toy of the paper's Fig. 2) or a gymnasium id, e.g. Hopper-v5.")
flags.DEFINE_integer("seed", 0, "Seed (network init, replay sampling, env resets).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/<algo>_<env>_<seed>).")
flags.DEFINE_bool("resume", False, "Continue from the latest checkpoint in --workdir.")
flags.DEFINE_bool("overwrite", False, "Delete existing checkpoints in --workdir when not resuming.")
flags.DEFINE_bool("bandit_compare", True, "Bandit only: also train without the entropy term and plot both.")
_RUN_FLAGS = {
    "total_steps": (flags.DEFINE_integer, "Env steps in total (default 1M; bandit 3000)."),
    "warmup_steps": (flags.DEFINE_integer, "Uniform-random env steps before updates start (default 10k)."),
    "eval_every": (flags.DEFINE_integer, "Env steps between evaluations (default 10k)."),
    "eval_episodes": (flags.DEFINE_integer, "Episodes per evaluation (default 10)."),
    "log_every": (flags.DEFINE_integer, "Env steps between metrics.jsonl records (default 1000)."),
    "checkpoint_every": (flags.DEFINE_integer, "Env steps between checkpoints (default 50k; 0 = only at the end)."),
    "buffer_size": (flags.DEFINE_integer, "Replay capacity (default 1e6)."),
    "save_replay": (flags.DEFINE_bool, "Save the replay buffer in checkpoints (default true)."),
    "truncation_as_terminal": (flags.DEFINE_bool, "Time-outs terminal, as the official code (default false)."),
    "max_episode_steps": (flags.DEFINE_integer, "Override the env's time limit."),
    "progress": (flags.DEFINE_bool, "Force the progress bar on/off (default: on when stderr is a terminal)."),
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
    definers = {"bool": flags.DEFINE_bool, "int": flags.DEFINE_integer, "float": flags.DEFINE_float,
                "list": flags.DEFINE_list, "string": flags.DEFINE_string}
    seen: set[str] = set()
    for algo_name, algo in ALGOS.items():
        for f in dataclasses.fields(algo.config_cls):
            if f.name in seen or f.name in _RUN_FLAGS or f.name in FLAGS:
                continue
            seen.add(f.name)
            kind = _flag_kind(f)
            note = " (comma-separated)" if kind == "list" else ""
            definers[kind](f.name, None, f"[{algo_name}] default {f.default!r}{note}")


_define_config_flags()


def _number(x: str):
    return int(x) if x.lstrip("-").isdigit() else float(x)


def build_run_config(env: str) -> online.OnlineConfig:
    values = dict(PRESETS.get(env, {}).get("run", {}))
    values.update({k: getattr(FLAGS, k) for k in _RUN_FLAGS if getattr(FLAGS, k) is not None})
    return online.OnlineConfig(seed=FLAGS.seed, **values)


def build_algo_config(algo: Algo, algo_name: str, env: str, run: online.OnlineConfig):
    values = dict(PRESETS.get(env, {}).get(algo_name, {}))
    for f in dataclasses.fields(algo.config_cls):
        v = getattr(FLAGS, f.name, None)
        if v is not None:
            values[f.name] = tuple(_number(x) for x in v) if _flag_kind(f) == "list" else v
    return algo.prepare(algo.config_cls(**values), run)


# ----------------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------------


def _run_bandit(algo: Algo, algo_name: str, config, run: online.OnlineConfig, workdir: str) -> dict:
    from jaxdiff.envs import bandit

    env = bandit.make_bandit()
    variants = {"with entropy term": (config, workdir)}
    has_entropy = hasattr(config, "entropy_alpha") and config.entropy_alpha > 0
    if FLAGS.bandit_compare and has_entropy:
        variants["without entropy term"] = (dataclasses.replace(config, entropy_alpha=0.0),
                                            os.path.join(workdir, "no_entropy"))
    obs = jnp.zeros((1000, env.obs_dim))
    rows, results, summary = {}, {}, None
    for label, (cfg, wd) in variants.items():
        agent = algo.make_agent(cfg, env.obs_dim, env.action_dim)
        sampler = (algo.samples(cfg, env.obs_dim, env.action_dim) if algo.samples
                   else lambda st, o, k: agent.explore(st, o, k))
        sampler = jax.jit(sampler)
        snaps = []
        snap_every = max(run.total_steps // 6, 1)

        def on_chunk(step, st, snaps=snaps, sampler=sampler):
            if step % snap_every == 0 or step == run.total_steps:
                snaps.append((step, np.asarray(sampler(st, obs, jax.random.PRNGKey(step)))))

        print(f"--- bandit: {label} -> {wd}")
        s = online.run_jax(agent, env, run, wd, env_name="bandit", resume=FLAGS.resume, overwrite=FLAGS.overwrite,
                           run_info={"algo": algo_name, "agent_config": dataclasses.asdict(cfg)}, on_chunk=on_chunk)
        s.pop("final_state")
        acts = snaps[-1][1]
        res = {
            "final_eval_return": s.get("final_eval_return"),
            "best_peak_fraction": float(bandit.fraction_near(jnp.asarray(acts))),
            "nearest_peak_counts": np.bincount(np.asarray(bandit.nearest_peak(acts)), minlength=3).tolist(),
            "mean_sample_reward": float(jnp.mean(bandit.reward(jnp.asarray(acts)))),
            "workdir": wd,
        }
        results[label] = res
        rows[label] = snaps
        print(f"    {label}: " + ", ".join(f"{k}={v}" for k, v in res.items() if k != "workdir"))
        if summary is None:
            summary = s
    fig = os.path.join(workdir, "bandit_samples.png")
    best = bandit.CENTERS[bandit.BEST]
    bandit.plot_samples(rows, fig, title=f"{algo_name} on the 3-peak bandit (best peak at {best})")
    summary["bandit"] = {"peaks": {"centers": bandit.CENTERS, "heights": bandit.HEIGHTS, "widths": bandit.WIDTHS},
                         "runs": results, "figure": fig}
    logging_lib.write_json(os.path.join(workdir, "summary.json"), summary)
    print(f"figure: {fig}")
    return summary


def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    algo_name, env = FLAGS.algo, FLAGS.env
    algo = ALGOS[algo_name]
    run = build_run_config(env)
    config = build_algo_config(algo, algo_name, env, run)
    workdir = FLAGS.workdir or os.path.join("runs", f"{algo_name}_{env}_{FLAGS.seed}")
    print(f"{algo_name} on {env}, seed {FLAGS.seed}, workdir {workdir}\n  run: {run}\n  config: {config}")
    if env == "bandit":
        summary = _run_bandit(algo, algo_name, config, run, workdir)
    else:
        from jaxdiff.envs.evaluate import make_env

        probe = make_env(env)
        obs_dim = int(np.prod(probe.observation_space.shape))
        action_dim = int(np.prod(probe.action_space.shape))
        probe.close()
        agent = algo.make_agent(config, obs_dim, action_dim)
        summary = online.run_gym(agent, env, run, workdir, resume=FLAGS.resume, overwrite=FLAGS.overwrite,
                                 run_info={"algo": algo_name, "agent_config": dataclasses.asdict(config)})
        summary.pop("final_state", None)
    keys = ["final_eval_return", "best_eval_return", "best_eval_step", "train_steps_per_s", "wall_time_s"]
    print("summary: " + ", ".join(f"{k}={summary.get(k)}" for k in keys))
    print(f"outputs in {workdir}: metrics.jsonl, summary.json, curves.png, checkpoints/")


if __name__ == "__main__":
    app.run(main)
