"""QVPO hyperparameters. Defaults are the official code's (`main.py --weighted --aug`, see spec/qvpo.md).

`QVPOConfig` holds everything; `QVPOHParams` is the part that lives in the state as float32 leaves (vmappable,
settable with jaxdiff.train.hparams.set_hparams); `QVPOConfig.sweepable()` names it.
"""
from __future__ import annotations

import dataclasses

import flax.struct
import jax

from jaxdiff.train import hparams as hparams_lib

MATMUL_DTYPES = ("float32", "bfloat16")  # = jaxdiff.nets.MATMUL_DTYPES (no nets import in config)
WEIGHT_TRANSFORMS = ("qadv", "qcut", "none")
INITS = ("qvpo", "torch")


@dataclasses.dataclass(frozen=True)
class QVPOConfig(hparams_lib.ConfigRecord):
    """Every QVPO setting. Sizes and choices are bound when the algorithm is made; the numeric hyperparameters
    below them become the float32 leaves of `QVPOState.hparams` (see `sweepable`)."""

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
    # bf16 inputs (float32 accumulation, params, optimizer) for the sampling chains' matmuls, the bulk of QVPO's
    # FLOPs; off until measured on a GPU (BUILD_NOTES, issue 12)
    matmul_dtype: str = "float32"
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
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got {self.matmul_dtype!r}")
        object.__setattr__(self, "critic_hidden", tuple(int(h) for h in self.critic_hidden))

    @classmethod
    def sweepable(cls) -> tuple[str, ...]:
        """Names that can take one value per run in one vmapped process: the fields of `QVPOHParams`."""
        return hparams_lib.field_names(QVPOHParams)


@flax.struct.dataclass
class QVPOHParams:
    """Numeric hyperparameters as float32 leaves of the state, so a sweep is a vmap over them (like seeds).

    The update reads every one from here: actor_lr / critic_lr are copied into the optimizer states
    (optax.inject_hyperparams) before each step, the rest are used directly.
    """

    actor_lr: jax.Array
    critic_lr: jax.Array
    gamma: jax.Array
    tau: jax.Array
    cut: jax.Array
    entropy_alpha: jax.Array
    entropy_min: jax.Array
    entropy_horizon: jax.Array
    entropy_offset: jax.Array

    @classmethod
    def from_config(cls, c: QVPOConfig) -> "QVPOHParams":
        """The config's values of these names, as float32 scalars."""
        return hparams_lib.from_config(cls, c)
