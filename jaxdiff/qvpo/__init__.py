"""QVPO (Ding et al., NeurIPS 2024): online diffusion policy, Q-weighted variational loss, entropy term, best-of-K.

Public API (pure functions; nothing jitted inside; vmap init/update over seed keys or hparams):
    config = QVPOConfig(...)
    agent = make_agent(config, obs_dim, action_dim)      # OnlineAgent: init / explore / act / update, replay_rows
    q = make(config, obs_dim, action_dim)                # full bundle: + sample, q_min, critic/actor losses
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
    load_policy,
    make,
    make_agent,
    polyak,
    top_k_samples,
    transform_weights,
)
from jaxdiff.qvpo.config import WEIGHT_TRANSFORMS, QVPOConfig

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
    "make_agent",
    "polyak",
    "top_k_samples",
    "transform_weights",
]
