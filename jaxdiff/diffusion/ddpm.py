"""Discrete DDPM: schedules, forward noising, (weighted) noise-prediction loss, ancestral sampler, best-of-N.

Pure functions over an explicit `Schedule` pytree; `eps_fn(x_t, t) -> eps` takes integer steps t of shape
(batch,). Nothing here is jitted: the caller decides.
"""
from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


def cosine_betas(T: int, s: float = 0.008) -> np.ndarray:
    """Cosine schedule exactly as the QVPO / Diffusion-QL code builds it.

    Note the grid: x = linspace(0, T+1, T+1), i.e. a step of (T+1)/T rather than 1 (1.05 for T=20). That is a
    quirk of the reference code, reproduced on purpose so that the betas match it.
    """
    steps = T + 1
    x = np.linspace(0, steps, steps, dtype=np.float64)
    ac = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    ac = ac / ac[0]
    return np.clip(1 - ac[1:] / ac[:-1], 0.0, 0.999).astype(np.float32)


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> np.ndarray:
    return np.linspace(beta_start, beta_end, T, dtype=np.float32)


def vp_betas(T: int, b_min: float = 0.1, b_max: float = 10.0) -> np.ndarray:
    """Discretised VP-SDE schedule (Diffusion-QL's vp_beta_schedule)."""
    t = np.arange(1, T + 1, dtype=np.float64)
    alpha = np.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T**2)
    return (1 - alpha).astype(np.float32)


BETA_SCHEDULES = {"cosine": cosine_betas, "linear": linear_betas, "vp": vp_betas}


@flax.struct.dataclass
class Schedule:
    """Per-step constants of a DDPM with T steps (all arrays of shape (T,))."""

    betas: jax.Array
    alphas_cumprod: jax.Array
    sqrt_alphas_cumprod: jax.Array
    sqrt_one_minus_alphas_cumprod: jax.Array
    sqrt_recip_alphas_cumprod: jax.Array
    sqrt_recipm1_alphas_cumprod: jax.Array
    posterior_log_variance_clipped: jax.Array
    posterior_mean_coef1: jax.Array
    posterior_mean_coef2: jax.Array

    @property
    def T(self) -> int:
        return self.betas.shape[0]


def make_schedule(T: int = 20, kind: str = "cosine") -> Schedule:
    if kind not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {kind!r}; choose one of {sorted(BETA_SCHEDULES)}")
    betas = BETA_SCHEDULES[kind](T).astype(np.float64)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.concatenate([[1.0], ac[:-1]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    f = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return Schedule(
        betas=f(betas),
        alphas_cumprod=f(ac),
        sqrt_alphas_cumprod=f(np.sqrt(ac)),
        sqrt_one_minus_alphas_cumprod=f(np.sqrt(1.0 - ac)),
        sqrt_recip_alphas_cumprod=f(np.sqrt(1.0 / ac)),
        sqrt_recipm1_alphas_cumprod=f(np.sqrt(1.0 / ac - 1.0)),
        posterior_log_variance_clipped=f(np.log(np.maximum(post_var, 1e-20))),
        posterior_mean_coef1=f(betas * np.sqrt(ac_prev) / (1.0 - ac)),
        posterior_mean_coef2=f((1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)),
    )


def q_sample(sched: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; t integer, shape x0.shape[:-1]."""
    return sched.sqrt_alphas_cumprod[t][..., None] * x0 + sched.sqrt_one_minus_alphas_cumprod[t][..., None] * noise


def eps_loss(
    key: jax.Array, sched: Schedule, eps_fn: EpsFn, x0: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """mean over rows and dims of w_row * (eps(x_t, t) - eps)^2 with t ~ U{0..T-1} per row.

    `weights` has shape x0.shape[:-1] (None = all ones); this is QVPO's Q-weighted variational loss when the
    weights are the per-sample Q advantages.
    """
    k_t, k_n = jax.random.split(key)
    t = jax.random.randint(k_t, x0.shape[:-1], 0, sched.T)
    noise = jax.random.normal(k_n, x0.shape, x0.dtype)
    err = (eps_fn(q_sample(sched, x0, t, noise), t) - noise) ** 2
    if weights is not None:
        err = err * weights[..., None]
    return jnp.mean(err)


def ancestral_sample(
    key: jax.Array,
    sched: Schedule,
    eps_fn: EpsFn,
    shape: tuple[int, ...],
    clip: float | None = 1.0,
    x_init: jax.Array | None = None,
) -> jax.Array:
    """DDPM reverse process t = T-1..0 as a lax.scan, with x0 clipping to [-clip, clip].

    Noise keys are split up front (key -> T+1 keys: one for x_T, one per step) so the scan is reproducible and
    equals a Python loop using the same keys (see tests/test_diffusion_core.py).
    """
    keys = jax.random.split(key, sched.T + 1)
    x = jax.random.normal(keys[0], shape) if x_init is None else x_init
    batch = shape[:-1]

    def step(x, inp):
        t, k = inp
        eps = eps_fn(x, jnp.full(batch, t, jnp.int32))
        x0 = sched.sqrt_recip_alphas_cumprod[t] * x - sched.sqrt_recipm1_alphas_cumprod[t] * eps
        if clip is not None:
            x0 = jnp.clip(x0, -clip, clip)
        mean = sched.posterior_mean_coef1[t] * x0 + sched.posterior_mean_coef2[t] * x
        noise = jax.random.normal(k, shape)
        std = jnp.where(t > 0, jnp.exp(0.5 * sched.posterior_log_variance_clipped[t]), 0.0)
        return mean + std * noise, None

    ts = jnp.arange(sched.T - 1, -1, -1, dtype=jnp.int32)
    x, _ = jax.lax.scan(step, x, (ts, keys[1:]))
    return jnp.clip(x, -clip, clip) if clip is not None else x


def best_of_n(candidates: jax.Array, scores: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pick the highest-scoring candidate per row.

    candidates: (..., N, dim); scores: (..., N). Returns (best (..., dim), index (...,)).
    """
    idx = jnp.argmax(scores, axis=-1)
    best = jnp.take_along_axis(candidates, idx[..., None, None], axis=-2)[..., 0, :]
    return best, idx
