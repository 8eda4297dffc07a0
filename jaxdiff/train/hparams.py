"""Hyperparameters held in a state: the one container type and the one way to read and set them.

Every jaxdiff algorithm keeps the numbers people sweep (learning rates, gamma, tau, noise scales, entropy weights)
as float32 leaves of `state.hparams` and its update reads them from there. The container is a `flax.struct.dataclass`
whose fields are those names (QVPOHParams, SACHParams, TD3HParams) or, for SRPO's stages, a dict (SRPO, BC and AWR
share one PolicyState class with different hyperparameters: {"policy_lr", "beta"}, {"policy_lr"}, ...).
Learning rates are copied into the optimizer state (`jaxdiff.algorithm.set_learning_rate`) before each step. So a sweep needs no new code path: `vmap(init)` over
seed keys, then `set_hparams` with one value per run. Sizes (n_d, T, batch, hidden widths) are bound into the
functions when the algorithm is made and cannot vary inside one vmapped run; `check_sweepable` says so by name.

    state = algo.init(key)
    state = set_hparams(state, {"actor_lr": 1e-3})                  # one run
    states = set_hparams(jax.vmap(algo.init)(keys), {"tau": [0.005, 0.05]})   # stacked runs, one value each
    get_hparams(states)["tau"]                                      # (2,)
    algo.config.sweepable()                                         # the names, asked of the config class

This module imports nothing but jax and the standard library, so algorithm modules may use it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp


def field_names(container: Any) -> tuple[str, ...]:
    """Names of an hparams container (a flax struct dataclass class or instance, or a dict), in field order."""
    if isinstance(container, Mapping):
        return tuple(container)
    if not dataclasses.is_dataclass(container):
        raise TypeError(f"hparams must be a flax.struct.dataclass or a dict, got {type(container).__name__}")
    return tuple(f.name for f in dataclasses.fields(container))


def _get(hp: Any, name: str) -> Any:
    return hp[name] if isinstance(hp, Mapping) else getattr(hp, name)


def from_config(cls: type, config: Any, **values: float) -> Any:
    """An hparams container of class `cls` with float32 scalar leaves: values[name] where given, else the
    config's attribute of the same name (for values the config does not hold as a plain number, e.g. SAC's
    target_entropy = -action_dim when the config says None)."""
    return cls(**{n: jnp.asarray(values[n] if n in values else getattr(config, n), jnp.float32)
                  for n in field_names(cls)})


def hparam_names(agent_state: Any) -> list[str]:
    """Names of the leaves in agent_state.hparams ([] if the state keeps none, e.g. a toy test agent)."""
    hp = getattr(agent_state, "hparams", None)
    return [] if hp is None else list(field_names(hp))


def check_sweepable(agent_state: Any, names: list[str], what: str = "this agent") -> None:
    """Raise a clear ValueError if any name is not a hyperparameter held in the state (so cannot be vmapped)."""
    ok = hparam_names(agent_state)
    bad = [n for n in names if n not in ok]
    if bad:
        raise ValueError(
            f"cannot sweep {', '.join(bad)} for {what} in one vmapped run: only the numeric hyperparameters held in "
            f"the agent state can take a list ({', '.join(ok) or 'none'}); sizes and other settings are bound into "
            f"the compiled functions, so give one value and launch one process per value")


def set_hparams(agent_state: Any, values: Mapping[str, Any]) -> Any:
    """A copy of agent_state with hparams.<name> = value for each item; works on one state or on stacked runs
    (a value of shape (runs,) per name, or a scalar broadcast to every run), keeping each leaf's dtype and shape.
    Unknown names raise the ValueError of `check_sweepable`."""
    if not values:
        return agent_state
    check_sweepable(agent_state, list(values))
    hp = agent_state.hparams
    new = {}
    for n, v in values.items():
        old = _get(hp, n)
        # jnp.array copies: the state must not share a buffer with the caller's value (donation would delete it)
        new[n] = jnp.broadcast_to(jnp.array(v, old.dtype), old.shape)
    return agent_state.replace(hparams={**hp, **new} if isinstance(hp, Mapping) else hp.replace(**new))


def get_hparams(agent_state: Any) -> dict:
    """{name: leaf} of agent_state.hparams (arrays of shape (runs,) for stacked states; {} if it keeps none)."""
    hp = getattr(agent_state, "hparams", None)
    return {} if hp is None else {n: _get(hp, n) for n in field_names(hp)}


class ConfigRecord:
    """to_dict / from_dict for the frozen config dataclasses of the online algorithms (QVPO, SAC, TD3): the run
    directory's JSON record of a config, and the config rebuilt from it."""

    def to_dict(self) -> dict:
        """Plain-JSON view (the run directory's config record)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of `to_dict`; unknown keys are ignored (older or newer run records)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
