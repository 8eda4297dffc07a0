"""The shape every online algorithm in jaxdiff has: a bundle of pure functions with static sizes bound in.

`jaxdiff.qvpo`, `jaxdiff.baselines.sac` and `jaxdiff.baselines.td3` each provide `make_agent(config, obs_dim,
action_dim) -> OnlineAgent`; `jaxdiff.train.online` runs any of them. Nothing here is jitted: the caller
chooses jit / vmap / scan. Actions are always normalised to [-1, 1]; env-range mapping happens at the env edge.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from jaxdiff.data.replay import Transition


class OnlineAgent(NamedTuple):
    # init(key) -> state: params, target params, optimiser states, step counter; no hidden PRNG state.
    init: Callable[[jax.Array], Any]
    # explore(state, obs (B, obs_dim), key) -> actions (B, action_dim) in [-1, 1], for data collection.
    explore: Callable[[Any, jax.Array, jax.Array], jax.Array]
    # act(state, obs (B, obs_dim), key) -> actions (B, action_dim) in [-1, 1], for evaluation.
    act: Callable[[Any, jax.Array, jax.Array], jax.Array]
    # update(state, batch: Transition, key) -> (state, metrics: dict of scalar arrays). One gradient step.
    update: Callable[[Any, Transition, jax.Array], tuple[Any, dict]]
    # Replay rows one `update` call consumes: the runner samples this many uniformly and passes them as `batch`.
    # (QVPO takes 2 x its batch size: one half for the critic, a fresh half for the actor, as the official code.)
    replay_rows: int = 256
