"""Continuous-time VP-SDE with a linear beta schedule, noise prediction, and a DPM-Solver sampler.

Pure functions; nothing here is jitted. `eps_fn(x_t, t) -> eps` is any callable (usually a closure over a
network's params and the conditioning state), with t of shape (batch,).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

BETA_0 = 0.1
BETA_1 = 20.0

EpsFn = Callable[[jax.Array, jax.Array], jax.Array]


def log_alpha(t: jax.Array, beta_0: float = BETA_0, beta_1: float = BETA_1) -> jax.Array:
    """log alpha_t = -0.25 t^2 (beta_1 - beta_0) - 0.5 t beta_0."""
    return -0.25 * t**2 * (beta_1 - beta_0) - 0.5 * t * beta_0


def alpha_sigma(t: jax.Array, beta_0: float = BETA_0, beta_1: float = BETA_1) -> tuple[jax.Array, jax.Array]:
    """(alpha_t, sigma_t) with sigma_t = sqrt(1 - alpha_t^2)."""
    la = log_alpha(t, beta_0, beta_1)
    # -expm1(2 la) = 1 - alpha^2, accurate for t near 0.
    return jnp.exp(la), jnp.sqrt(-jnp.expm1(2.0 * la))


def log_snr(t: jax.Array, beta_0: float = BETA_0, beta_1: float = BETA_1) -> jax.Array:
    """lambda_t = log(alpha_t / sigma_t)."""
    la = log_alpha(t, beta_0, beta_1)
    return la - 0.5 * jnp.log(-jnp.expm1(2.0 * la))


def inverse_log_snr(lam: jax.Array, beta_0: float = BETA_0, beta_1: float = BETA_1) -> jax.Array:
    """t such that lambda_t = lam (closed form for the linear schedule)."""
    la = -0.5 * jnp.logaddexp(0.0, -2.0 * lam)
    return -2.0 * la / (0.5 * beta_0 + jnp.sqrt(0.25 * beta_0**2 - (beta_1 - beta_0) * la))


def perturb(key: jax.Array, x0: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x_t = alpha_t x0 + sigma_t z; returns (x_t, z). t has shape x0.shape[:-1]."""
    z = jax.random.normal(key, x0.shape, x0.dtype)
    alpha, sigma = alpha_sigma(t)
    return alpha[..., None] * x0 + sigma[..., None] * z, z


def eps_loss(key: jax.Array, eps_fn: EpsFn, x0: jax.Array, t_min: float = 1e-3) -> jax.Array:
    """E ||eps(alpha_t x0 + sigma_t z, t) - z||^2: sum over dims, mean over batch; t ~ U(t_min, 1)."""
    k_t, k_z = jax.random.split(key)
    t = jax.random.uniform(k_t, x0.shape[:-1], minval=t_min, maxval=1.0)
    x_t, z = perturb(k_z, x0, t)
    return jnp.mean(jnp.sum((eps_fn(x_t, t) - z) ** 2, axis=-1))


def score(eps_fn: EpsFn, x_t: jax.Array, t: jax.Array) -> jax.Array:
    """grad_x log p_t(x) ~= -eps(x_t, t) / sigma_t."""
    _, sigma = alpha_sigma(t)
    return -eps_fn(x_t, t) / sigma[..., None]


def solver_times(
    steps: int, t_start: float = 1.0, t_end: float = 1e-3, skip: str = "logSNR",
    beta_0: float = BETA_0, beta_1: float = BETA_1,
) -> jax.Array:
    """steps+1 decreasing times from t_start to t_end, uniform in time or in log-SNR."""
    if skip == "time_uniform":
        return jnp.linspace(t_start, t_end, steps + 1)
    if skip == "logSNR":
        lam = lambda t: log_snr(jnp.asarray(t), beta_0, beta_1)  # noqa: E731
        return inverse_log_snr(jnp.linspace(lam(t_start), lam(t_end), steps + 1), beta_0, beta_1)
    raise ValueError(f"unknown skip type {skip!r}; use 'logSNR' or 'time_uniform'")


def dpm_solver_sample(
    key: jax.Array,
    eps_fn: EpsFn,
    shape: tuple[int, ...],
    steps: int = 15,
    order: int = 3,
    t_end: float = 1e-3,
    skip: str = "logSNR",
    x_init: jax.Array | None = None,
    beta_0: float = BETA_0,
    beta_1: float = BETA_1,
) -> jax.Array:
    """Multistep DPM-Solver (Lu et al. 2022, noise-prediction form) from t=1 to t_end, one NFE per step.

    The first steps warm up at lower order (there are not yet enough past evaluations), and with fewer than
    10 steps the last steps lower their order too (the reference implementation's `lower_order_final`), which
    keeps few-step sampling stable. Runs as a lax.scan; `shape` is (batch, dim).
    """
    if order not in (1, 2, 3):
        raise ValueError(f"DPM-Solver order must be 1, 2 or 3, got {order}")
    if steps < 1:
        raise ValueError(f"DPM-Solver needs at least one step, got {steps}")
    x = jax.random.normal(key, shape) if x_init is None else x_init
    ts = solver_times(steps, 1.0, t_end, skip, beta_0, beta_1)
    lams = log_snr(ts, beta_0, beta_1)
    batch = shape[:-1]

    def eps_at(x, t):
        return eps_fn(x, jnp.broadcast_to(t, batch))

    def step(carry, i):
        x, e_prev1, e_prev2 = carry  # eps evaluated at ts[i-1] and ts[i-2] (zeros before they exist)
        t_s, t_t = ts[i], ts[i + 1]
        lam_s, lam_t = lams[i], lams[i + 1]
        e0 = eps_at(x, t_s)
        h = lam_t - lam_s
        alpha_s, _ = alpha_sigma(t_s, beta_0, beta_1)
        alpha_t, sigma_t = alpha_sigma(t_t, beta_0, beta_1)
        phi1 = jnp.expm1(h)
        base = (alpha_t / alpha_s) * x - sigma_t * phi1 * e0
        # Second order: previous point s1 = ts[i-1].
        lam_1 = lams[jnp.maximum(i - 1, 0)]
        r0 = (lam_s - lam_1) / h
        d1_0 = (e0 - e_prev1) / jnp.where(r0 == 0, 1.0, r0)
        x2 = base - 0.5 * sigma_t * phi1 * d1_0
        # Third order: s2 = ts[i-2].
        lam_2 = lams[jnp.maximum(i - 2, 0)]
        r1 = (lam_1 - lam_2) / h
        d1_1 = (e_prev1 - e_prev2) / jnp.where(r1 == 0, 1.0, r1)
        d1 = d1_0 + r0 / jnp.where(r0 + r1 == 0, 1.0, r0 + r1) * (d1_0 - d1_1)
        d2 = (d1_0 - d1_1) / jnp.where(r0 + r1 == 0, 1.0, r0 + r1)
        phi2 = phi1 / h - 1.0
        phi3 = phi2 / h - 0.5
        x3 = base - sigma_t * phi2 * d1 - sigma_t * phi3 * d2
        # Effective order: warm-up at the start, lower-order finish for short schedules.
        eff = jnp.minimum(order, i + 1)
        if steps < 10:
            eff = jnp.minimum(eff, steps - i)
        x_next = jnp.where(eff >= 3, x3, jnp.where(eff == 2, x2, base))
        return (x_next, e0, e_prev1), None

    zeros = jnp.zeros_like(x)
    (x, _, _), _ = jax.lax.scan(step, (x, zeros, zeros), jnp.arange(steps))
    return x

