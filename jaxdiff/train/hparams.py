"""Swept hyperparameters: the numeric leaves an agent keeps in `state.hparams`, read and written by name.

Every jaxdiff agent keeps the numbers people sweep (QVPO: actor_lr, critic_lr, entropy_alpha, ...; SAC: gamma,
tau; TD3: gamma, tau, noise scales) as float32 leaves of `state.hparams` (a flax struct dataclass or a dict), and
its update reads them from there. So a sweep needs no new code path: `vmap(init)` over seed keys, then overwrite
those leaves with one value per run. Sizes (n_d, T, batch, hidden widths) are bound into the jitted functions when
the agent is made and cannot vary inside one vmapped run; `check_sweepable` says so by name.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp


def hparam_names(agent_state: Any) -> list[str]:
    """Names of the leaves in agent_state.hparams ([] if the agent keeps none)."""
    hp = getattr(agent_state, "hparams", None)
    if isinstance(hp, Mapping):
        return list(hp)
    if dataclasses.is_dataclass(hp):
        return [f.name for f in dataclasses.fields(hp)]
    return []


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
    """A copy of agent_state with hparams[name] = value for each item; works on one state or on stacked runs
    (a value of shape (runs,) per name), keeping each leaf's dtype and shape."""
    if not values:
        return agent_state
    check_sweepable(agent_state, list(values))
    hp = agent_state.hparams
    old = hp if isinstance(hp, Mapping) else {n: getattr(hp, n) for n in values}
    new = {n: jnp.broadcast_to(jnp.asarray(v, jnp.asarray(old[n]).dtype), jnp.shape(old[n])) for n, v in values.items()}
    hp = {**hp, **new} if isinstance(hp, Mapping) else hp.replace(**new)
    return agent_state.replace(hparams=hp)


def get_hparams(agent_state: Any) -> dict:
    """{name: leaf} of agent_state.hparams."""
    hp = agent_state.hparams
    return dict(hp) if isinstance(hp, Mapping) else {n: getattr(hp, n) for n in hparam_names(agent_state)}
