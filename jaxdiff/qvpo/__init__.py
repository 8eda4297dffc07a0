"""QVPO (Ding et al., NeurIPS 2024): online diffusion policy, Q-weighted variational loss, entropy term, best-of-K.

Public API (pure functions; nothing jitted inside; vmap init/update over seed keys or hparams):
    config = QVPOConfig(...)
    algo = make(config, obs_dim, action_dim)             # jaxdiff.algorithm.Algorithm: init / update / act / explore
    q = make_parts(config, obs_dim, action_dim)          # full bundle: + sample, q_min, critic/actor losses
    state = algo.init(key); state, metrics = algo.update(state, batch, key); a = algo.act(state, obs, key)
    QVPOConfig.sweepable()                               # names held as float32 leaves of state.hparams
"""
from jaxdiff.qvpo.agent import QVPO, make, make_parts
from jaxdiff.qvpo.config import WEIGHT_TRANSFORMS, QVPOConfig, QVPOHParams
from jaxdiff.qvpo.pieces import (
    QVPOState,
    best_of_k,
    chain_eps_fn,
    entropy_coef,
    entropy_rows,
    optimizer,
    polyak,
    top_k_samples,
    transform_weights,
)


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
    "make",
    "make_parts",
    "optimizer",
    "polyak",
    "top_k_samples",
    "transform_weights",
]
