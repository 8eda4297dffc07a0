"""Built-in 2D point clouds for diffusion checks, with a mode statistic that a broken model fails."""
from __future__ import annotations

import jax
import jax.numpy as jnp

RADIUS = 0.7  # inside [-1, 1] so DDPM's x0 clipping never touches the data
STD = 0.05


def eight_gaussian_centers(radius: float = RADIUS) -> jax.Array:
    ang = jnp.arange(8) * (2 * jnp.pi / 8)
    return radius * jnp.stack([jnp.cos(ang), jnp.sin(ang)], axis=-1)


def eight_gaussians(key: jax.Array, n: int, radius: float = RADIUS, std: float = STD) -> jax.Array:
    k_c, k_n = jax.random.split(key)
    centers = eight_gaussian_centers(radius)
    idx = jax.random.randint(k_c, (n,), 0, 8)
    return centers[idx] + std * jax.random.normal(k_n, (n, 2))


def two_moons(key: jax.Array, n: int, std: float = 0.03) -> jax.Array:
    k_s, k_u, k_n = jax.random.split(key, 3)
    side = jax.random.bernoulli(k_s, 0.5, (n,))
    u = jax.random.uniform(k_u, (n,)) * jnp.pi
    upper = jnp.stack([jnp.cos(u) - 0.5, jnp.sin(u) - 0.25], -1)
    lower = jnp.stack([0.5 - jnp.cos(u), 0.25 - jnp.sin(u)], -1)
    return 0.6 * jnp.where(side[:, None], upper, lower) + std * jax.random.normal(k_n, (n, 2))


DATASETS = {"8gaussians": eight_gaussians, "moons": two_moons}


def mode_statistics(samples: jax.Array, radius: float = RADIUS, tol: float = 3 * STD) -> dict:
    """For 8-Gaussians samples: fraction within `tol` of the nearest centre, and the smallest share of any mode.

    A good model puts most samples on the modes (`on_mode` near 0.99) and covers all 8 (`min_mode_share` near
    1/8 = 0.125). Blurry samples fail the first, mode collapse fails the second.
    """
    d = jnp.linalg.norm(samples[:, None, :] - eight_gaussian_centers(radius)[None], axis=-1)
    nearest = jnp.argmin(d, axis=-1)
    on_mode = jnp.min(d, axis=-1) < tol
    shares = jnp.bincount(jnp.where(on_mode, nearest, 8), length=9)[:8] / samples.shape[0]
    return {"on_mode": float(on_mode.mean()), "min_mode_share": float(shares.min())}
