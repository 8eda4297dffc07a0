"""QVPO hyperparameters. Defaults are the official code's (`main.py --weighted --aug`, see spec/qvpo.md)."""
from __future__ import annotations

import dataclasses

WEIGHT_TRANSFORMS = ("qadv", "qcut", "none")
INITS = ("qvpo", "torch")


@dataclasses.dataclass(frozen=True)
class QVPOConfig:
    # --- sizes (static: bound into the jitted functions) ---
    batch_size: int = 256  # critic batch; the actor gets a FRESH batch of the same size
    diffusion_steps: int = 20  # T
    beta_schedule: str = "cosine"
    n_d: int = 64  # policy samples per state for the actor target (official --train_sample)
    chosen: int = 1  # top-k of the n_d samples kept per state (official --chosen)
    k_b: int = 4  # behaviour (exploration) action = best of k_b by the online critic (--behavior_sample)
    k_t: int = 4  # critic target action = best of k_t target-policy samples by the target critic (--target_sample)
    k_eval: int = 32  # evaluation action = best of k_eval by the online critic (--eval_sample)
    n_uniform: int = 10  # uniform actions per kept sample for the entropy term (0 = none, static)
    weight_transform: str = "qadv"  # qadv: max(Q(a*) - V, 0); qcut: max(Q(a*), cut); none: 1
    actor_hidden: int = 256
    actor_layers: int = 3
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    grad_clip: float = 2.0  # global-norm clip before Adam (both nets)
    adam_eps: float = 1e-5
    param_init: str = "qvpo"  # qvpo: the official code's N(0, (1/(2 sqrt(fan_in)))^2) weights, zero biases; torch: U(+-1/sqrt(fan_in))
    fast_mish: bool = True  # same function as Mish, one exp instead of three transcendentals (nets.mish_fast)
    # --- numeric hyperparameters (become float32 leaves of QVPOState.hparams: vmappable for sweeps) ---
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    cut: float = 1.0  # qcut's floor c
    entropy_alpha: float = 0.02  # omega_ent at the start; 0 switches the entropy term off (as the official code)
    entropy_min: float = 0.002  # floor of the linear decay
    entropy_horizon: float = 1_000_000.0  # env steps over which omega decays (official: --num_steps)
    entropy_offset: float = 0.0  # env step of the first update (the launcher sets it to warmup_steps); see entropy_coef

    def __post_init__(self):
        if self.weight_transform not in WEIGHT_TRANSFORMS:
            raise ValueError(f"weight_transform must be one of {WEIGHT_TRANSFORMS}, got {self.weight_transform!r}")
        if self.param_init not in INITS:
            raise ValueError(f"param_init must be one of {INITS}, got {self.param_init!r}")
        if not 1 <= self.chosen <= self.n_d:
            raise ValueError(f"need 1 <= chosen <= n_d, got chosen={self.chosen}, n_d={self.n_d}")
        for name in ("batch_size", "diffusion_steps", "n_d", "k_b", "k_t", "k_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.n_uniform < 0:
            raise ValueError("n_uniform must be >= 0")
        object.__setattr__(self, "critic_hidden", tuple(int(h) for h in self.critic_hidden))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QVPOConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
