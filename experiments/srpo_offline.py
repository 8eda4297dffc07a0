"""SRPO offline: behavior model -> IQL critic -> policy extraction -> evaluation.

    python experiments/srpo_offline.py                                  # toy 2D bandit, 1-3 min on a 2-core CPU
    python experiments/srpo_offline.py --env=hopper-medium              # Minari mujoco/hopper/medium-v0
    python experiments/srpo_offline.py --env=jaxdiff/hopper/medium-v0   # any local Minari id
    python experiments/srpo_offline.py --env=hopper-medium --stage=policy --beta=0.1 --overwrite  # new (c), reuse (a), (b)
    python experiments/srpo_offline.py ... --resume                     # continue a killed run
    python experiments/srpo_offline.py --num_seeds=4                    # 4 seeds in one vmapped process
    python experiments/srpo_offline.py --num_seeds=3 --beta=0.05,0.1,0.2   # 9 runs: 3 behavior models, 3 critics

Hyperparameters: SRPOConfig defaults (official code) <- the task's preset (beta, tau, policy depth, Q-grad norm)
<- any flag given here. Outputs in --workdir: metrics.jsonl, summary.json, curves_*.png, checkpoints/.

Many runs in one process (jaxdiff.srpo.driver, the same code as one run): --num_seeds=N trains seeds --seed .. --seed+N-1 together, and
--beta, --tau, --gamma, --behavior_lr, --critic_lr, --policy_lr take comma-separated lists that are crossed with
the seeds. States are stacked on a run axis, every stage's jitted chunk is vmapped over it, and the runs are
sharded over all visible devices (--shard_batch splits the behavior minibatch over them instead). A stage trains
only its distinct runs: a beta sweep reuses one behavior model and one critic per seed. Outputs: metrics.jsonl
records carry "run" and the run's values, curves_*.png show the mean +- std over seeds per sweep point,
summary.json has per-run scores and per-point aggregates (mean, std, IQM, bootstrap CI), checkpoints are stacked:
jaxdiff.load_policy(workdir, seed=s[, beta=b]) or run=k restores one run. --num_seeds=1 with single values
is the single run: a list of one run point, the same outputs.
"""
from __future__ import annotations

from absl import flags, logging

from jaxdiff.train import cli

flags.DEFINE_string("env", "bandit-imbalanced", "Minari id, D4RL-style short name (hopper-medium, ...) or toy "
                    "bandit (bandit-imbalanced, bandit-8gaussians, bandit-rings, bandit-checkerboard, bandit-2spirals, "
                    "bandit-moons).")
flags.DEFINE_integer("seed", 0, "Training seed; the first of --num_seeds.")
flags.DEFINE_integer("num_seeds", 1, "Seeds trained together in one vmapped process (--seed, --seed+1, ...).")
flags.DEFINE_bool("shard_batch", False, "Data parallel behavior training: split each behavior minibatch over all "
                  "devices (runs replicated) instead of sharding the runs.")
flags.DEFINE_string("workdir", None, "Output directory (default runs/srpo_<env>_<seed>; many runs: "
                    "runs/srpo_<env>_<seed>x<num_seeds>[_<swept names>]).")
flags.DEFINE_enum("stage", "all", ["behavior", "critic", "policy", "all"], "Which stage(s) to run; later stages "
                  "reuse the finished checkpoints of earlier ones in --workdir.")
flags.DEFINE_bool("resume", False, "Continue from the latest checkpoints in --workdir (finished stages are reused).")
flags.DEFINE_bool("overwrite", False, "Delete existing checkpoints of the stages being run and start over.")
flags.DEFINE_integer("behavior_steps", None, "Behavior-model updates (preset: 2M; toy 4000).")
flags.DEFINE_integer("critic_steps", None, "IQL updates (preset: 1.5M; toy 2000).")
flags.DEFINE_integer("policy_steps", None, "Policy-extraction updates (preset: 1M; toy 2000).")
flags.DEFINE_integer("eval_episodes", 20, "Evaluation episodes (fixed seeds eval_seed + i); 0 skips evaluation.")
flags.DEFINE_integer("eval_seed", 10_000, "First evaluation-episode seed (independent of --seed).")
# Numeric hyperparameters held as array leaves of the train states: a comma-separated list is swept (vmapped).
SWEEP_FLAGS = {"beta": "SRPO beta (Q-term weight); default: the task preset.",
               "tau": "IQL expectile; default: task preset (0.7 locomotion, 0.9 antmaze).",
               "gamma": "Discount (0.99).", "behavior_lr": "Behavior-model AdamW learning rate (3e-4; toys 1e-3).",
               "critic_lr": "IQL Q and V learning rate (3e-4).",
               "policy_lr": "Policy learning rate (3e-4, cosine-decayed)."}
for _name, _help in SWEEP_FLAGS.items():
    flags.DEFINE_string(_name, None, _help + " A comma-separated list sweeps it in one vmapped run, crossed with "
                        "--num_seeds.")
flags.DEFINE_integer("policy_layers", None, "Hidden layers of the policy MLP; default: task preset (2 / 4).")
flags.DEFINE_enum("weight", None, ["sigma2", "one", "alpha_over_sigma"], "w(t) of the score term; default sigma2 "
                  "(official 'VDS').")
flags.DEFINE_bool("baseline", None, "Use eps_hat - z (the paper's zero-mean baseline); default off (official).")
flags.DEFINE_bool("q_grad_norm", None, "RMS-normalise grad_a Q; default: task preset (antmaze on).")
flags.DEFINE_enum("behavior_matmul_dtype", None, ["float32", "bfloat16"], "Matmul inputs of the behavior net: "
                  "bfloat16 = bf16 inputs, float32 params and accumulation (default float32; off until measured on "
                  "a GPU).")
for _name, _help in [("behavior_batch", "Behavior batch (2048)."), ("critic_batch", "IQL batch (256)."),
                     ("policy_batch", "Policy batch (256)."), ("behavior_width", "LN-ResNet width (256)."),
                     ("behavior_blocks", "LN-ResNet residual blocks (3)."), ("critic_width", "Q/V width (256)."),
                     ("critic_layers", "Q/V hidden layers (2)."), ("policy_width", "Policy width (256).")]:
    flags.DEFINE_integer(_name, None, _help)
flags.DEFINE_integer("log_every", None, "Updates per jitted chunk = metrics interval (default 1000; toys 250).")
flags.DEFINE_integer("eval_every", None, "Policy-stage evaluation interval, a multiple of --log_every (default: "
                     "100k steps for long runs, else only at the end; toys every chunk).")
flags.DEFINE_integer("checkpoint_every", None, "Checkpoint interval, a multiple of --log_every (default 50000; "
                     "toys 1000). A checkpoint is also written at the end of every stage.")
flags.DEFINE_float("ref_min_score", None, "Return of a random policy, for normalised scores (overrides the dataset's).")
flags.DEFINE_float("ref_max_score", None, "Return of an expert policy, for normalised scores (overrides the dataset's).")
flags.DEFINE_bool("progress", None, "Show progress bars (default: bars when stderr is a terminal, else a "
                  "progress line every ~30 s).")
flags.DEFINE_bool("plots", True, "Write learning-curve PNGs (and bandit.png for the toys).")
flags.DEFINE_bool("behavior_critic_together", True, "Train the behavior and critic stages in one jitted loop when "
                  "both train (identical results; on an accelerator the small critic update overlaps the large "
                  "behavior one). --nobehavior_critic_together trains them one after the other.")
flags.DEFINE_bool("tensorboard", False, "Also write the metrics as TensorBoard event files to <workdir>/tensorboard "
                  "(needs tensorboardX: pip install 'jaxdiff[tensorboard]').")

FLAGS = flags.FLAGS
_CONFIG_FLAGS = ("behavior_steps", "critic_steps", "policy_steps", "policy_layers", "weight", "baseline",
                 "q_grad_norm", "behavior_batch", "critic_batch", "policy_batch", "behavior_width", "behavior_blocks",
                 "critic_width", "critic_layers", "policy_width", "behavior_matmul_dtype")


def _round_up(x: int, k: int) -> int:
    return max(k, -(-x // k) * k)


def parse_sweeps() -> tuple[dict, dict[str, list[float]]]:
    """(single-value overrides, swept lists) from the list-valued flags; ValueError on junk or repeats."""
    from jaxdiff.train import sweep

    overrides, sweeps = {}, {}
    for name in SWEEP_FLAGS:
        text = getattr(FLAGS, name)
        if text is None:
            continue
        vals = sweep.parse_values(text, name)
        if len(set(vals)) != len(vals):
            raise ValueError(f"--{name}={text!r} repeats a value; give each value once")
        if name.endswith("_lr") and any(v <= 0 for v in vals):
            raise cli.FlagError(f"--{name}={text}: a learning rate must be > 0")
        overrides[name] = vals[0]  # the static config's copy; swept runs overwrite the state leaf
        if len(vals) > 1:
            sweeps[name] = vals
    return overrides, sweeps


def check_flags() -> None:
    """Sizes and step counts, before JAX is imported (the library's own checks name Python fields, not flags)."""
    cli.positive(num_seeds=FLAGS.num_seeds, log_every=FLAGS.log_every, policy_layers=FLAGS.policy_layers,
                 **{k: getattr(FLAGS, k) for k in ("behavior_batch", "critic_batch", "policy_batch", "behavior_width",
                                                   "behavior_blocks", "critic_width", "critic_layers",
                                                   "policy_width")})
    cli.non_negative(behavior_steps=FLAGS.behavior_steps, critic_steps=FLAGS.critic_steps,
                     policy_steps=FLAGS.policy_steps, eval_episodes=FLAGS.eval_episodes,
                     eval_every=FLAGS.eval_every, checkpoint_every=FLAGS.checkpoint_every)
    if FLAGS.resume and FLAGS.overwrite:
        raise cli.FlagError("--resume and --overwrite exclude each other: give one")


def _run() -> dict:
    check_flags()
    from jaxdiff import srpo
    from jaxdiff.srpo.data import is_bandit
    from jaxdiff.train import sweep
    overrides, sweeps = parse_sweeps()
    cfg = srpo.configure(FLAGS.env, **{k: getattr(FLAGS, k) for k in _CONFIG_FLAGS}, **overrides)
    toy = is_bandit(FLAGS.env)
    log_every = FLAGS.log_every or (250 if toy else 1000)
    if FLAGS.eval_every is not None:
        eval_every = FLAGS.eval_every
    elif toy:
        eval_every = log_every
    else:
        eval_every = _round_up(100_000, log_every) if cfg.policy_steps > 100_000 else 0
    checkpoint_every = FLAGS.checkpoint_every
    if checkpoint_every is None:
        checkpoint_every = _round_up(1000 if toy else 50_000, log_every)
    run_cfg = srpo.RunConfig(
        env=FLAGS.env, seed=FLAGS.seed, workdir=FLAGS.workdir, stage=FLAGS.stage, resume=FLAGS.resume,
        overwrite=FLAGS.overwrite, log_every=log_every, eval_every=eval_every, checkpoint_every=checkpoint_every,
        eval_episodes=FLAGS.eval_episodes, eval_seed=FLAGS.eval_seed, ref_min_score=FLAGS.ref_min_score,
        ref_max_score=FLAGS.ref_max_score, progress_bar=FLAGS.progress, plots=FLAGS.plots,
        tensorboard=FLAGS.tensorboard, behavior_critic_together=FLAGS.behavior_critic_together,
    )
    points = sweep.grid(FLAGS.num_seeds, FLAGS.seed, **sweeps)  # one run: [{"seed": --seed}]
    if len(points) > 1:
        logging.info("%d runs (%d seeds x %d sweep points) over %s", len(points), FLAGS.num_seeds,
                     len(points) // FLAGS.num_seeds, sweeps or "no sweep")
    return srpo.run(run_cfg, cfg, points, shard_batch=FLAGS.shard_batch)


def _brief(summary: dict) -> dict:
    """What the launcher prints: the run(s), speed and score (per sweep point; one run: its evaluation)."""
    steps_per_s = {k: round(v.get("steps_per_s", 0.0), 1) for k, v in summary["timing"].items()}
    brief = {"workdir": summary["workdir"], "env": summary["env"], "num_runs": summary["num_runs"],
             "seeds": summary["seeds"], "sweep": summary["sweep"], "devices": summary["devices"],
             "steps_per_s": steps_per_s, "groups": []}
    for g in summary["groups"]:
        row = {"point": g["label"], "runs": g["runs"]}
        for key in ("final_eval_return", "final_eval_score"):
            if key in g:
                row[key] = {k: g[key][k] for k in ("mean", "std", "iqm", "ci95")}
        brief["groups"].append(row)
    if summary["num_runs"] == 1 and "eval" in summary["runs"][0]:
        ev = summary["runs"][0]["eval"]
        brief.update(mean_return=ev["mean_return"], std_return=ev["std_return"],
                     normalized_score=ev["normalized_score"])
        for key in ("action", "support_mass", "in_support", "note"):
            if key in ev:
                brief[key] = ev[key]
    return brief


def main(argv):
    del argv  # cli.run refuses extra arguments; bad input (ValueError, FileNotFoundError, ...) is one line, exit 1
    import logging as pylogging

    pylogging.getLogger("jaxdiff.srpo").setLevel(pylogging.INFO)
    summary = _run()
    from jaxdiff.train.logging import dumps

    print(dumps(_brief(summary), indent=1))  # valid JSON: a non-finite score prints as null


if __name__ == "__main__":
    cli.run(main)
