"""QVPO (Ding et al., NeurIPS 2024): online diffusion policy, Q-weighted variational loss, entropy term, best-of-K.

Public API (pure functions; nothing jitted inside; vmap init/update over seed keys or hparams):
    config = QVPOConfig(...)
    algo = make(config, obs_dim, action_dim)             # jaxdiff.algorithm.Algorithm: init / update / act / explore
    q = make_parts(config, obs_dim, action_dim)          # full bundle: + sample, q_min, critic/actor losses
    state = q.init(key); state, metrics = q.update(state, batch, key); a = q.act(state, obs, key)
"""
from jaxdiff.qvpo.agent import (
    QVPO,
    QVPOHParams,
    QVPOState,
    best_of_k,
    chain_eps_fn,
    entropy_coef,
    entropy_rows,
    make,
    make_parts,
    make_agent,
    polyak,
    top_k_samples,
    transform_weights,
)
from jaxdiff.qvpo.agent import load_policy as _load_policy
from jaxdiff.qvpo.config import WEIGHT_TRANSFORMS, QVPOConfig


def load_policy(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                **where: float):
    """qvpo.agent.load_policy, with an act(obs, key) that checks its input: obs of shape (obs_dim,) gives actions
    (action_dim,), (B, obs_dim) gives (B, action_dim); numpy, jax arrays or lists; anything else is a ValueError
    naming the expected shapes. Returns (act, state, bundle)."""
    from jaxdiff.envs.evaluate import checked_act
    from jaxdiff.train.online import load_checkpoint_meta

    act, state, bundle = _load_policy(workdir, step, run=run, seed=seed, **where)
    return checked_act(act, int(load_checkpoint_meta(workdir, step)["obs_dim"])), state, bundle

__all__ = [
    "QVPO",
    "QVPOConfig",
    "QVPOHParams",
    "QVPOState",
    "WEIGHT_TRANSFORMS",
    "best_of_k",
    "chain_eps_fn",
    "entropy_coef",
    "entropy_rows",
    "load_policy",
    "make",
    "make_parts",
    "make_agent",
    "polyak",
    "top_k_samples",
    "transform_weights",
]
