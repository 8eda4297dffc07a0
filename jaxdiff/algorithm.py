"""The one shape every jaxdiff algorithm has: `Algorithm`, a bundle of pure functions with the sizes bound in.

    algo = jaxdiff.qvpo.make(QVPOConfig(), obs_dim, action_dim)   # or sac.make / td3.make / srpo.make(...).policy
    state = algo.init(key)                                       # eager or jitted; donation-safe
    state, metrics = algo.update(state, batch, key)              # batch: Transition with algo.batch_rows rows
    actions = algo.act(state, obs, key)                          # obs (B, obs_dim) -> (B, action_dim) in [-1, 1]

Rules every algorithm keeps (tests/test_algorithm_interface.py checks them for all of them):
- Sizes (widths, batch, T, N_d, ...) are bound when the algorithm is built. A state is arrays only: no static
  fields hidden in pytree aux data, so `jax.jit(algo.init)` needs no static arguments.
- Every numeric hyperparameter that can be swept is a float32 leaf of `state.hparams`, and the update reads it from
  there; learning rates go through `optax.inject_hyperparams` (`set_learning_rate` copies the hparams leaf into
  the optimizer state before each step), so `jaxdiff.train.hparams.set_hparams` is the one way to set them.
- `init` returns distinct buffers (targets are copies, frozen inputs are copied), so
  `jax.jit(algo.update, donate_argnums=0)` works on a state made by an eager `init`.
- Nothing is jitted inside: the caller chooses jit / vmap / scan.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxdiff.data.replay import Transition

__all__ = ["Algorithm", "Transition", "copy_tree", "set_learning_rate"]


class Algorithm(NamedTuple):
    """Pure functions of one algorithm (or one SRPO stage) with its static sizes bound.

    name: registry name ("qvpo", "sac", "td3", "srpo_behavior", "srpo_critic", "srpo_policy", ...).
    config: the frozen config dataclass it was built from (has `to_dict`).
    init(key) -> state. SRPO's policy stage takes its frozen inputs too: init(key, behavior_state, critic_state).
    update(state, batch: Transition, key) -> (state, metrics: dict of scalar arrays). One gradient step.
    act(state, obs (B, obs_dim), key) -> actions (B, action_dim) in [-1, 1]: the evaluation action.
    explore(state, obs, key) -> actions: the data-collection action (== act where the algorithm has no other).
    batch_rows: rows one `update` consumes (QVPO: 2 x batch, a critic half and a fresh actor half).
    """

    name: str
    config: Any
    obs_dim: int
    action_dim: int
    init: Callable[..., Any]
    update: Callable[[Any, Transition, jax.Array], tuple[Any, dict]]
    act: Callable[[Any, jax.Array, jax.Array], jax.Array]
    explore: Callable[[Any, jax.Array, jax.Array], jax.Array]
    batch_rows: int

    @property
    def replay_rows(self) -> int:
        """Alias of batch_rows (the online drivers' historical name)."""
        return self.batch_rows


def copy_tree(tree: Any) -> Any:
    """Distinct buffers with the same values: a target network or a frozen input kept in a state must not alias
    the buffers it came from, or donating the state deletes them / donates one buffer twice."""
    return jax.tree.map(jnp.copy, tree)


def set_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
    """opt_state of an `optax.inject_hyperparams` optimizer with its learning_rate replaced by `lr` (an hparams
    leaf). Finds the injected state at the top level or as the first element of a chain."""
    if hasattr(opt_state, "hyperparams"):
        hp = dict(opt_state.hyperparams)
        hp["learning_rate"] = jnp.asarray(lr, jnp.asarray(hp["learning_rate"]).dtype)
        return opt_state._replace(hyperparams=hp)
    if isinstance(opt_state, tuple) and opt_state and hasattr(opt_state[0], "hyperparams"):
        return (set_learning_rate(opt_state[0], lr), *opt_state[1:])
    raise TypeError("set_learning_rate needs the state of an optax.inject_hyperparams optimizer "
                    f"(or a chain starting with one), got {type(opt_state).__name__}")
