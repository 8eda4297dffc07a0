"""The continuous bandit of QVPO's Fig. 2, as a pure-JAX env: one state, 2-D action in [-1, 1]^2, a reward with
three Gaussian peaks of different heights. Every episode is one step (terminated), so Q(s, a) = E[r | a].

Layout (our own; the paper gives no numbers), chosen so that the figure's point shows: two broad, lower peaks near
opposite corners, (-.75, .75) height .5 and (.75, -.75) height .7, both std .3, and the best peak, height 1.0,
std .25, at the centre. An untrained diffusion policy with the official init (x0_hat clipped to [-1, 1] at every
step) puts ~60 % of its samples in the four corner cells and ~1-2 % per central cell (measured, T = 5 and 10), so
the lower peaks are where its mass is and the best one is where it is thinnest. Without the entropy term the policy
sharpens on a corner peak before the critic has seen the centre and stays there; the entropy term's uniform rows
keep samples in the centre, the critic learns it, and the policy moves (tests/test_qvpo_bandit.py,
results/qvpo_bandit.json).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.train.jax_env_loop import JaxEnv

CENTERS = np.array([[-0.75, 0.75], [0.75, -0.75], [0.0, 0.0]], np.float32)
HEIGHTS = np.array([0.5, 0.7, 1.0], np.float32)
WIDTHS = np.array([0.3, 0.3, 0.25], np.float32)  # Gaussian std of each peak
BEST = int(np.argmax(HEIGHTS))


def reward(action: jax.Array) -> jax.Array:
    """r(a) = sum_i h_i exp(-|a - c_i|^2 / (2 w_i^2)); action (..., 2) -> (...)."""
    d2 = jnp.sum((action[..., None, :] - CENTERS) ** 2, axis=-1)
    return jnp.sum(HEIGHTS * jnp.exp(-0.5 * d2 / WIDTHS**2), axis=-1)


def nearest_peak(actions: jax.Array) -> jax.Array:
    """Index of the closest peak centre for each action (..., 2) -> (...)."""
    return jnp.argmin(jnp.sum((actions[..., None, :] - CENTERS) ** 2, axis=-1), axis=-1)


def fraction_near(actions: jax.Array, peak: int = BEST, radius: float | None = None) -> jax.Array:
    """Fraction of actions within `radius` (default: 2 std of that peak) of peak `peak`."""
    radius = 2.0 * float(WIDTHS[peak]) if radius is None else radius
    d = jnp.linalg.norm(actions - CENTERS[peak], axis=-1)
    return jnp.mean((d < radius).astype(jnp.float32))


def make_bandit(noise_std: float = 0.0) -> JaxEnv:
    """obs is the constant [0.]; reward r(a) (+ N(0, noise_std^2) if noise_std > 0); terminated every step."""
    obs = jnp.zeros((1,), jnp.float32)

    def reset(key):
        del key
        return jnp.zeros((), jnp.int32), obs

    def step(state, action, key):
        r = reward(jnp.clip(action, -1.0, 1.0))
        if noise_std > 0:
            r = r + noise_std * jax.random.normal(key, r.shape)
        return state, obs, r, jnp.bool_(True), jnp.bool_(False)

    return JaxEnv(obs_dim=1, action_dim=2, max_episode_steps=1, reset=reset, step=step)


def describe(label: str) -> str:
    """A row label as the figure shows it: a sweep label naming entropy_alpha=0 (or >0) says so in words."""
    import re

    m = re.search(r"entropy_alpha=([0-9.eE+-]+)", label)
    if m is None:
        return label
    return ("WITHOUT entropy term" if float(m.group(1)) == 0 else "WITH entropy term") + f" ({label})"


def plot_samples(rows: dict[str, list[tuple[int, np.ndarray]]], path: str, title: str = "") -> None:
    """One row of scatter plots per run (label -> [(env_step, actions (n, 2)), ...]) over the reward contours.

    Every panel's title names its run (with / without the entropy term, from the label), the env step and the
    fraction of samples within 2 std of the best peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = np.linspace(-1, 1, 121)
    xx, yy = np.meshgrid(g, g)
    zz = np.asarray(reward(jnp.stack([xx, yy], -1).astype(jnp.float32)))
    ncol = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.6 * ncol, 2.7 * len(rows)), squeeze=False)
    for i, (label, snaps) in enumerate(rows.items()):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(snaps):
                ax.axis("off")
                continue
            step, acts = snaps[j]
            ax.contourf(xx, yy, zz, levels=12, cmap="viridis", alpha=0.8)
            ax.scatter(acts[:, 0], acts[:, 1], s=3, c="red", alpha=0.5, linewidths=0)
            ax.set_xlim(-1.05, 1.05)
            ax.set_ylim(-1.05, 1.05)
            frac = float(fraction_near(jnp.asarray(acts)))
            ax.set_title(f"{describe(label)}\nstep {step}: {frac:.0%} near best peak", fontsize=6)
            if j == 0:
                ax.set_ylabel(label, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
