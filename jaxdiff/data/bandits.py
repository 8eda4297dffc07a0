"""Built-in 2D bandits: multimodal behavior distributions over actions in [-1, 1]^2 with known rewards.

The state is a dummy 1-dim zero so that SRPO's state-conditioned code paths run unchanged; every transition
is terminal (a bandit), so IQL's Q regresses the reward itself. The known reward makes evaluation exact:
the "return" of a policy is r(pi(s0)), and the normalised score puts 0 at the behavior's mean reward and 100
at the mean reward of its best 5% of actions (`ref_min_score` / `ref_max_score`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from jaxdiff.data.replay import Transition

SamplerFn = Callable[[np.random.Generator, int], np.ndarray]
RewardFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Bandit:
    name: str
    sample: SamplerFn  # (rng, n) -> actions (n, 2)
    reward: RewardFn  # actions (..., 2) -> rewards (...,); numpy, vectorised
    description: str


def _linear(direction_deg: float) -> RewardFn:
    u = np.array([np.cos(np.deg2rad(direction_deg)), np.sin(np.deg2rad(direction_deg))])
    return lambda a: np.asarray(a) @ u


def _bump(center, width: float) -> RewardFn:
    c = np.asarray(center, dtype=np.float64)
    return lambda a: np.exp(-np.sum((np.asarray(a) - c) ** 2, axis=-1) / (2 * width**2))


def _eight_gaussians(rng, n, weights=None):
    k = rng.choice(8, size=n, p=None if weights is None else np.asarray(weights) / np.sum(weights))
    ang = k * (np.pi / 4)
    centers = 0.8 * np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    return centers + 0.05 * rng.standard_normal((n, 2))


def _rings(rng, n):
    radius = np.where(rng.random(n) < 0.5, 0.35, 0.8)
    ang = rng.uniform(0, 2 * np.pi, n)
    return radius[:, None] * np.stack([np.cos(ang), np.sin(ang)], -1) + 0.03 * rng.standard_normal((n, 2))


def _checkerboard(rng, n):
    # 4x4 board over [-0.8, 0.8]^2, the 8 squares with (i + j) even.
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])
    c = cells[rng.integers(0, len(cells), n)]
    return -0.8 + 0.4 * (c + rng.random((n, 2)))


def _two_spirals(rng, n):
    t = np.sqrt(rng.random(n)) * 3 * np.pi
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    pts = sign[:, None] * np.stack([t * np.cos(t), t * np.sin(t)], -1) / (3 * np.pi) * 0.85
    return pts + 0.02 * rng.standard_normal((n, 2))


def _moons(rng, n):
    upper = rng.random(n) < 0.5
    ang = rng.uniform(0, np.pi, n)
    x = np.where(upper, np.cos(ang), 1 - np.cos(ang))
    y = np.where(upper, np.sin(ang), 0.5 - np.sin(ang))
    pts = np.stack([(x - 0.5) * 0.8, (y - 0.25) * 0.8], -1)
    return pts + 0.03 * rng.standard_normal((n, 2))


# "imbalanced": 4 Gaussian modes at 45, 135, 225, 315 degrees (radius 0.7, std 0.1) with these weights.
IMBALANCED_WEIGHTS = (0.1, 0.25, 0.4, 0.25)


def _imbalanced(rng, n):
    k = rng.choice(4, size=n, p=np.asarray(IMBALANCED_WEIGHTS))
    ang = np.deg2rad(45.0 + 90.0 * k)
    return 0.7 * np.stack([np.cos(ang), np.sin(ang)], -1) + 0.1 * rng.standard_normal((n, 2))


# "mixed-quality": a few good demonstrations and many mediocre ones. Two Gaussian modes (std 0.1) at
# MIXED_GOOD = (0.5, 0.5) (30% of the data) and MIXED_BAD = (-0.5, -0.5) (70%); the reward is a bump of height 1
# on the good mode plus one of height 0.5 on the bad mode (width 0.3), so the midpoint of the modes, and the data
# mean (-0.2, -0.2) that BC's MSE fit converges to, lie off the data with low reward.
MIXED_GOOD, MIXED_BAD, MIXED_GOOD_SHARE = (0.5, 0.5), (-0.5, -0.5), 0.3


def _mixed_quality(rng, n):
    good = rng.random(n) < MIXED_GOOD_SHARE
    centers = np.where(good[:, None], np.asarray(MIXED_GOOD), np.asarray(MIXED_BAD))
    return centers + 0.1 * rng.standard_normal((n, 2))


def _mixed_quality_reward(a):
    return _bump(MIXED_GOOD, 0.3)(a) + 0.5 * _bump(MIXED_BAD, 0.3)(a)


BANDITS: dict[str, Bandit] = {
    b.name: b
    for b in [
        Bandit("imbalanced", _imbalanced, _linear(45.0),
               "4 Gaussians (std 0.1, radius 0.7) at 45 + 90k degrees with weights 10/25/40/25%: the best mode "
               "(45 degrees) is the rarest, the worst (225 degrees) the most common; reward <a, (cos 45, sin 45)>. "
               "With beta -> 0 SRPO stays near the behavior mean (poor, between modes), with no score term it "
               "runs to the corner (1, 1) outside the data, with the toy preset it lands on the best mode"),
        Bandit("mixed-quality", _mixed_quality, _mixed_quality_reward,
               "mixed-quality demonstrations: 30% near a good action (0.5, 0.5), reward ~1, and 70% near a mediocre "
               "one (-0.5, -0.5), reward ~0.5 (Gaussian modes, std 0.1; reward bumps of width 0.3). BC averages the "
               "modes to (-0.2, -0.2), off the data with reward ~0.2; SRPO without its critic (score term only) also "
               "ends between the modes or on the mediocre one; SRPO (preset beta 1.0) picks the good mode"),
        Bandit("8gaussians", _eight_gaussians, _linear(45.0),
               "8 Gaussians (std 0.05) on a circle of radius 0.8; reward <a, (cos 45, sin 45)>: the unconstrained "
               "optimum is the corner (1, 1), the best in-support action the mode at 45 degrees"),
        Bandit("rings", _rings, _bump((0.9, 0.9), 0.35),
               "two rings (radii 0.35, 0.8); reward a Gaussian bump at (0.9, 0.9), outside the support"),
        Bandit("checkerboard", _checkerboard, _linear(30.0),
               "uniform on 8 squares of a 4x4 board; reward linear towards 30 degrees"),
        Bandit("2spirals", _two_spirals, _bump((0.6, 0.6), 0.3),
               "two interleaved spirals; reward a Gaussian bump at (0.6, 0.6)"),
        Bandit("moons", _moons, _linear(-90.0),
               "two half-moons; reward -a_y (lower is better)"),
    ]
}


def names() -> list[str]:
    return [f"bandit-{k}" for k in BANDITS]


def get(name: str) -> Bandit:
    key = name[len("bandit-"):] if name.startswith("bandit-") else name
    if key not in BANDITS:
        raise ValueError(f"unknown toy bandit {name!r}; choose one of {names()}")
    return BANDITS[key]


def make_dataset(name: str, num_samples: int = 100_000, seed: int = 0):
    """OfflineDataset of `num_samples` one-step episodes (obs = [0], done = 1, reward = r(a))."""
    from jaxdiff.data.minari_data import OfflineDataset

    bandit = get(name)
    rng = np.random.default_rng(seed)
    actions = np.clip(bandit.sample(rng, num_samples), -1.0, 1.0).astype(np.float32)
    rewards = bandit.reward(actions).astype(np.float32)
    zeros = np.zeros((num_samples, 1), np.float32)
    data = Transition(obs=zeros, action=actions, reward=rewards, next_obs=zeros, done=np.ones(num_samples, np.float32))
    top = np.sort(rewards)[-max(1, num_samples // 20):]
    return OfflineDataset(
        name=f"bandit-{bandit.name}", task=f"bandit-{bandit.name}", dataset_ids=(), data=data, obs_dim=1, action_dim=2,
        kind="bandit", ref_min_score=float(rewards.mean()), ref_max_score=float(top.mean()),
        reward_info={"transform": "none"}, stats={"episodes": num_samples, "transitions": num_samples, "dropped": 0},
        bandit=bandit,
    )


# An action counts as inside the data's support when at least this share of behavior actions lies within 0.1 of
# it: about 2.5 std of the rarest (best) mode of bandit-imbalanced; the learning tests use the same threshold.
SUPPORT_THRESHOLD = 0.002


def support_mass(actions: np.ndarray, data_actions: np.ndarray, radius: float = 0.1) -> np.ndarray:
    """Fraction of behavior actions within `radius` of each action: ~0 means outside the behavior support."""
    a = np.asarray(actions, np.float64).reshape(-1, 2)
    d = np.linalg.norm(np.asarray(data_actions)[None, :, :] - a[:, None, :], axis=-1)
    return (d < radius).mean(axis=1)
