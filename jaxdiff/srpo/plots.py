"""The toy-bandit figure: dataset, reward contours, behavior-model samples, and the extracted policy's action."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.data import bandits
from jaxdiff.srpo.behavior import BehaviorState
from jaxdiff.srpo.policy import PolicyState


def bandit_figure(algos, behavior_state: BehaviorState, policy_state: PolicyState, dataset, path: str,
                  num_samples: int = 2000, seed: int = 0):
    """Dataset actions and behavior samples over the reward map with the policy's action; the title says whether
    that action lies inside the data's support (bandits.SUPPORT_THRESHOLD). algos: the run's jaxdiff.srpo.SRPO
    (its behavior act samples the model). Saves to path, returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = jnp.zeros((num_samples, dataset.obs_dim))
    samples = np.asarray(jax.jit(algos.behavior.act)(behavior_state, obs, jax.random.PRNGKey(seed)))
    a_pi = np.asarray(algos.policy.act(policy_state, jnp.zeros((1, dataset.obs_dim)), None))[0]
    mass = float(bandits.support_mass(a_pi, dataset.data.action[:20_000])[0])
    where = ("inside the data's support" if mass >= bandits.SUPPORT_THRESHOLD
             else "OUTSIDE the data's support")
    grid = np.linspace(-1.1, 1.1, 200)
    gx, gy = np.meshgrid(grid, grid)
    rewards = dataset.bandit.reward(np.stack([gx, gy], -1))
    data = np.asarray(dataset.data.action[:num_samples])
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.8), layout="constrained")
    for ax, pts, title in ((axes[0], data, "dataset actions"), (axes[1], samples, "behavior model (DPM-Solver, 15 steps)")):
        cs = ax.contourf(gx, gy, rewards, levels=20, cmap="viridis", alpha=0.55)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="k", alpha=0.35)
        ax.scatter([a_pi[0]], [a_pi[1]], marker="*", s=320, c="red", edgecolors="white", linewidths=1.2,
                   label=f"SRPO action, r={float(dataset.bandit.reward(a_pi[None])[0]):.3f}, {where}")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(cs, ax=axes, label="reward", shrink=0.85)
    fig.suptitle(f"SRPO on {dataset.name} (beta={float(policy_state.hparams['beta']):g}): final action {where} "
                 f"({mass:.1%} of data within 0.1)", color="black" if mass >= bandits.SUPPORT_THRESHOLD else "red")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig


def bandit_runs_figure(actions: list, points: list[dict], dataset, path: str, num_samples: int = 2000) -> None:
    """Many runs on one bandit: dataset actions over the reward map and each run's final action, one colour per
    sweep point (seeds of a point share its colour), so a beta sweep shows how far each beta leaves the data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxdiff.train import multirun

    grid = np.linspace(-1.1, 1.1, 200)
    gx, gy = np.meshgrid(grid, grid)
    fig, ax = plt.subplots(figsize=(6.2, 5.2), layout="constrained")
    cs = ax.contourf(gx, gy, dataset.bandit.reward(np.stack([gx, gy], -1)), levels=20, cmap="viridis", alpha=0.55)
    data = np.asarray(dataset.data.action[:num_samples])
    ax.scatter(data[:, 0], data[:, 1], s=2, c="k", alpha=0.3)
    for i, (hp, idx) in enumerate(multirun.groups(points)):
        a = np.asarray([actions[k] for k in idx])
        ax.scatter(a[:, 0], a[:, 1], marker="*", s=220, color=f"C{i % 10}", edgecolors="white", linewidths=1.0,
                   label=f"{multirun.point_label(hp)} (n={len(idx)})")
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(cs, ax=ax, label="reward", shrink=0.85)
    ax.set_title(f"SRPO on {dataset.name}: final actions of {len(points)} runs")
    fig.savefig(path, dpi=110)
    plt.close(fig)
