"""SRPO hyperparameters: one frozen dataclass, the paper's per-task presets, and the fields each stage owns.

Defaults are the official code's (thu-ml/SRPO); the paper's variants are options (`weight`, `baseline`).
Resolution order: SRPOConfig defaults <- task preset <- explicit overrides (flags). Numbers that people sweep
(beta, expectile tau, gamma, learning rates) are copied into the train states as array leaves by the stage
`init` functions, so a sweep is a `vmap`; the copies in this dataclass are only their initial values.
"""
from __future__ import annotations

import dataclasses
from typing import Any

WEIGHTS = ("sigma2", "one", "alpha_over_sigma")
STAGES = ("behavior", "critic", "policy")


@dataclasses.dataclass(frozen=True)
class SRPOConfig:
    """SRPO's hyperparameters (the official code's defaults). Sizes and step counts are bound when the stages are
    built (`jaxdiff.srpo.make`); the swept numbers are copied into each state's `hparams` by its `init`."""

    # (a) behavior model: VP-SDE eps-prediction, LN-ResNet, AdamW.
    behavior_steps: int = 2_000_000
    behavior_batch: int = 2048
    behavior_lr: float = 3e-4
    behavior_weight_decay: float = 0.01  # PyTorch AdamW default (optax's adamw default is 1e-4)
    behavior_width: int = 256
    behavior_blocks: int = 3
    behavior_dropout: float = 0.1
    fourier_scale: float = 30.0
    behavior_matmul_dtype: str = "float32"  # "bfloat16": bf16 matmul inputs, float32 params (off until GPU-measured)
    # (b) IQL critic.
    critic_steps: int = 1_500_000
    critic_batch: int = 256
    critic_lr: float = 3e-4
    critic_width: int = 256
    critic_layers: int = 2
    tau: float = 0.7  # expectile
    gamma: float = 0.99
    polyak: float = 0.005
    # (c) SRPO policy extraction.
    policy_steps: int = 1_000_000
    policy_batch: int = 256
    policy_lr: float = 3e-4  # cosine-decayed to 0 over policy_steps
    policy_width: int = 256
    policy_layers: int = 2
    beta: float = 0.05
    weight: str = "sigma2"  # w(t): "sigma2" (official "VDS"), "one" ("stable"), "alpha_over_sigma" ("score")
    baseline: bool = False  # paper: use eps_hat - z (zero-mean baseline); official default off
    q_grad_norm: bool = False  # divide grad_a Q by its RMS over action dims (antmaze)
    t_min: float = 0.02
    t_max: float = 0.98

    def __post_init__(self):
        if self.weight not in WEIGHTS:
            raise ValueError(f"weight must be one of {WEIGHTS}, got {self.weight!r}")
        for f in ("behavior_steps", "critic_steps", "policy_steps"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f} must be >= 0, got {getattr(self, f)}")
        for f in ("behavior_batch", "critic_batch", "policy_batch", "behavior_width", "critic_width", "policy_width"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1, got {getattr(self, f)}")
        if not 0.0 < self.tau < 1.0:
            raise ValueError(f"expectile tau must be in (0, 1), got {self.tau}")
        if self.behavior_matmul_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"behavior_matmul_dtype must be float32 or bfloat16, got {self.behavior_matmul_dtype!r}")
        if not 0.0 <= self.t_min < self.t_max <= 1.0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {self.t_min}, {self.t_max}")

    def replace(self, **kw) -> "SRPOConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SRPOConfig":
        """The config of a saved dict (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Which fields each stage's result depends on (a later stage may reuse an earlier checkpoint only if these match).
STAGE_FIELDS = {
    "behavior": ("behavior_steps", "behavior_batch", "behavior_lr", "behavior_weight_decay", "behavior_width",
                 "behavior_blocks", "behavior_dropout", "fourier_scale", "behavior_matmul_dtype"),
    "critic": ("critic_steps", "critic_batch", "critic_lr", "critic_width", "critic_layers", "tau", "gamma", "polyak"),
    "policy": ("policy_steps", "policy_batch", "policy_lr", "policy_width", "policy_layers", "beta", "weight",
               "baseline", "q_grad_norm", "t_min", "t_max"),
}

# Per-task settings of the paper / official code (D4RL -v2 task names).
_LOCO = dict(policy_layers=2, tau=0.7, q_grad_norm=False)
_ANT = dict(policy_layers=4, tau=0.9, q_grad_norm=True)
TASK_PRESETS: dict[str, dict[str, Any]] = {
    "halfcheetah-medium-expert": dict(beta=0.01, **_LOCO),
    "halfcheetah-medium": dict(beta=0.2, **_LOCO),
    "halfcheetah-medium-replay": dict(beta=0.2, **_LOCO),
    "hopper-medium-expert": dict(beta=0.01, **_LOCO),
    "hopper-medium": dict(beta=0.05, **_LOCO),
    "hopper-medium-replay": dict(beta=0.2, **_LOCO),
    "walker2d-medium-expert": dict(beta=0.1, **_LOCO),
    "walker2d-medium": dict(beta=0.05, **_LOCO),
    "walker2d-medium-replay": dict(beta=0.5, **_LOCO),
    "antmaze-umaze": dict(beta=0.02, **_ANT),
    "antmaze-umaze-diverse": dict(beta=0.04, **_ANT),
    "antmaze-medium-play": dict(beta=0.08, **_ANT),
    "antmaze-medium-diverse": dict(beta=0.05, **_ANT),
    "antmaze-large-play": dict(beta=0.06, **_ANT),
    "antmaze-large-diverse": dict(beta=0.05, **_ANT),
}

# Built-in 2D bandits: CPU-sized networks and step counts so the default run takes a few minutes.
# beta was tuned on bandit-imbalanced with a beta sweep (BUILD_NOTES); rewards are O(1) and unscaled. The
# behavior learning rate is raised to 1e-3 so the small model fits the 2D data in a few thousand steps.
TOY_PRESET: dict[str, Any] = dict(
    behavior_steps=4000, behavior_batch=256, behavior_lr=1e-3, behavior_width=64, behavior_blocks=3,
    critic_steps=2000, critic_batch=256, critic_width=64,
    policy_steps=2000, policy_batch=256, policy_width=64, policy_layers=2,
    beta=0.17, tau=0.7, q_grad_norm=False,
)
# Per-bandit changes to TOY_PRESET. bandit-mixed-quality: the good mode is far (1.4) from the 70% mediocre one,
# so the Q term needs more weight to pull pi(s) across; on 5 seeds beta 0.5-2 picked the good mode, 0.17-0.25 did
# not always (BUILD_NOTES, SRPO section; tests/test_srpo_beats_bc.py).
BANDIT_PRESETS: dict[str, dict[str, Any]] = {
    "bandit-mixed-quality": dict(beta=1.0),
}


def preset_for(task: str | None) -> tuple[dict[str, Any], str]:
    """(preset overrides, a one-line note saying where they came from) for a task key like 'hopper-medium'.

    Datasets the paper did not use fall back to the same environment's '-medium' preset (locomotion), the
    family's umaze preset (antmaze), or the plain defaults, and the note says so.
    """
    if task is None:
        return {}, "no task preset (plain SRPOConfig defaults)"
    if task.startswith("bandit-"):
        extra = BANDIT_PRESETS.get(task, {})
        return {**TOY_PRESET, **extra}, "built-in toy preset" + (f" with {extra}" if extra else "")
    if task in TASK_PRESETS:
        return dict(TASK_PRESETS[task]), f"paper preset for {task}"
    env = task.split("-")[0]
    if env == "antmaze":
        return dict(TASK_PRESETS["antmaze-umaze"]), f"no paper preset for {task}; using antmaze-umaze's (override with --beta)"
    if f"{env}-medium" in TASK_PRESETS:
        return dict(TASK_PRESETS[f"{env}-medium"]), f"no paper preset for {task}; using {env}-medium's (override with --beta)"
    return dict(_LOCO, beta=SRPOConfig.beta), f"no paper preset for {task}; using locomotion defaults (override with --beta)"


def make_config(task: str | None = None, **overrides) -> SRPOConfig:
    """SRPOConfig for a task: defaults <- preset <- overrides (None values in overrides are ignored)."""
    preset, _ = preset_for(task)
    fields = {f.name for f in dataclasses.fields(SRPOConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown SRPOConfig fields {sorted(unknown)}")
    preset.update({k: v for k, v in overrides.items() if v is not None})
    return SRPOConfig(**preset)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything about a run that is not the algorithm."""

    env: str = "bandit-imbalanced"
    seed: int = 0  # the seed of a single run (points=None)
    workdir: str | None = None  # default runs/srpo_<env>_<seed> (many runs: runs/srpo_<env>_<seed>x<n>[_<swept>])
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
    # train the behavior and critic stages in one jitted loop when both train (same results, one dispatch per
    # chunk, the small critic update scheduled with the large behavior one on an accelerator)
    behavior_critic_together: bool = True

    def validate(self) -> None:
        """ValueError naming the flag for settings the driver cannot run."""
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
