"""SRPO offline: behavior model -> IQL critic -> policy extraction -> evaluation.

    python experiments/srpo_offline.py                                  # toy 2D bandit, a few minutes on CPU
    python experiments/srpo_offline.py --env=hopper-medium              # Minari mujoco/hopper/medium-v0
    python experiments/srpo_offline.py --env=jaxdiff/hopper/medium-v0   # any local Minari id
    python experiments/srpo_offline.py --env=hopper-medium --stage=policy --beta=0.1 --overwrite  # new (c), reuse (a), (b)
    python experiments/srpo_offline.py ... --resume                     # continue a killed run

Hyperparameters: SRPOConfig defaults (official code) <- the task's preset (beta, tau, policy depth, Q-grad norm)
<- any flag given here. Outputs in --workdir: metrics.jsonl, summary.json, curves_*.png, checkpoints/.
"""
from __future__ import annotations

import json
import sys

from absl import app, flags, logging

flags.DEFINE_string("env", "bandit-imbalanced", "Minari id, D4RL-style short name (hopper-medium, ...) or toy "
                    "bandit (bandit-imbalanced, bandit-8gaussians, bandit-rings, bandit-checkerboard, bandit-2spirals, "
                    "bandit-moons).")
flags.DEFINE_integer("seed", 0, "Training seed.")
flags.DEFINE_string("workdir", None, "Output directory (default runs/srpo_<env>_<seed>).")
flags.DEFINE_enum("stage", "all", ["behavior", "critic", "policy", "all"], "Which stage(s) to run; later stages "
                  "reuse the finished checkpoints of earlier ones in --workdir.")
flags.DEFINE_bool("resume", False, "Continue from the latest checkpoints in --workdir (finished stages are reused).")
flags.DEFINE_bool("overwrite", False, "Delete existing checkpoints of the stages being run and start over.")
flags.DEFINE_integer("behavior_steps", None, "Behavior-model updates (preset: 2M; toy 4000).")
flags.DEFINE_integer("critic_steps", None, "IQL updates (preset: 1.5M; toy 2000).")
flags.DEFINE_integer("policy_steps", None, "Policy-extraction updates (preset: 1M; toy 2000).")
flags.DEFINE_integer("eval_episodes", 20, "Evaluation episodes (fixed seeds eval_seed + i); 0 skips evaluation.")
flags.DEFINE_integer("eval_seed", 10_000, "First evaluation-episode seed (independent of --seed).")
flags.DEFINE_float("beta", None, "SRPO beta (Q-term weight); default: the task preset.")
flags.DEFINE_float("tau", None, "IQL expectile; default: task preset (0.7 locomotion, 0.9 antmaze).")
flags.DEFINE_integer("policy_layers", None, "Hidden layers of the policy MLP; default: task preset (2 / 4).")
flags.DEFINE_enum("weight", None, ["sigma2", "one", "alpha_over_sigma"], "w(t) of the score term; default sigma2 "
                  "(official 'VDS').")
flags.DEFINE_bool("baseline", None, "Use eps_hat - z (the paper's zero-mean baseline); default off (official).")
flags.DEFINE_bool("q_grad_norm", None, "RMS-normalise grad_a Q; default: task preset (antmaze on).")
for _name, _help in [("behavior_batch", "Behavior batch (2048)."), ("critic_batch", "IQL batch (256)."),
                     ("policy_batch", "Policy batch (256)."), ("behavior_width", "LN-ResNet width (256)."),
                     ("behavior_blocks", "LN-ResNet residual blocks (3)."), ("critic_width", "Q/V width (256)."),
                     ("critic_layers", "Q/V hidden layers (2)."), ("policy_width", "Policy width (256).")]:
    flags.DEFINE_integer(_name, None, _help)
for _name in ("behavior_lr", "critic_lr", "policy_lr", "gamma"):
    flags.DEFINE_float(_name, None, f"{_name} (default: SRPOConfig / preset).")
flags.DEFINE_integer("log_every", None, "Updates per jitted chunk = metrics interval (default 1000; toys 250).")
flags.DEFINE_integer("eval_every", None, "Policy-stage evaluation interval, a multiple of --log_every (default: "
                     "100k steps for long runs, else only at the end; toys every chunk).")
flags.DEFINE_integer("checkpoint_every", None, "Checkpoint interval, a multiple of --log_every (default 50000; "
                     "toys 1000). A checkpoint is also written at the end of every stage.")
flags.DEFINE_float("ref_min_score", None, "Return of a random policy, for normalised scores (overrides the dataset's).")
flags.DEFINE_float("ref_max_score", None, "Return of an expert policy, for normalised scores (overrides the dataset's).")
flags.DEFINE_bool("progress", None, "Show progress bars (default: when stderr is a terminal).")
flags.DEFINE_bool("plots", True, "Write learning-curve PNGs (and bandit.png for the toys).")

FLAGS = flags.FLAGS
_CONFIG_FLAGS = ("behavior_steps", "critic_steps", "policy_steps", "beta", "tau", "policy_layers", "weight", "baseline",
                 "q_grad_norm", "behavior_batch", "critic_batch", "policy_batch", "behavior_width", "behavior_blocks",
                 "critic_width", "critic_layers", "policy_width", "behavior_lr", "critic_lr", "policy_lr", "gamma")


def _round_up(x: int, k: int) -> int:
    return max(k, -(-x // k) * k)


def _run() -> dict:
    from jaxdiff.srpo import pipeline

    cfg = pipeline.configure(FLAGS.env, **{k: getattr(FLAGS, k) for k in _CONFIG_FLAGS})
    toy = pipeline.is_bandit(FLAGS.env)
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
    run_cfg = pipeline.RunConfig(
        env=FLAGS.env, seed=FLAGS.seed, workdir=FLAGS.workdir, stage=FLAGS.stage, resume=FLAGS.resume,
        overwrite=FLAGS.overwrite, log_every=log_every, eval_every=eval_every, checkpoint_every=checkpoint_every,
        eval_episodes=FLAGS.eval_episodes, eval_seed=FLAGS.eval_seed, ref_min_score=FLAGS.ref_min_score,
        ref_max_score=FLAGS.ref_max_score, progress_bar=FLAGS.progress, plots=FLAGS.plots,
    )
    return pipeline.run(run_cfg, cfg)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not any(a.startswith(("--verbosity", "-v")) for a in sys.argv[1:]):
        logging.set_verbosity(logging.WARNING)  # quiet orbax's per-checkpoint INFO lines (--verbosity=0 shows them)
    import logging as pylogging

    pylogging.getLogger("jaxdiff.srpo").setLevel(pylogging.INFO)
    try:
        summary = _run()
    except (ValueError, FileNotFoundError) as e:
        logging.error("%s", e)
        sys.exit(1)
    brief = {"workdir": summary["workdir"], "env": summary["env"], "seed": summary["seed"],
             "steps_per_s": {k: round(v.get("steps_per_s", 0.0), 1) for k, v in summary["timing"].items()}}
    if "eval" in summary:
        ev = summary["eval"]
        brief.update(mean_return=ev["mean_return"], std_return=ev["std_return"], normalized_score=ev["normalized_score"])
        if "action" in ev:
            brief.update(action=ev["action"], support_mass=ev["support_mass"])
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    app.run(main)
