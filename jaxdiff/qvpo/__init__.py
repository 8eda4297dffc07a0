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


def load_policy(workdir: str, step: int | None = None, *, run: int | None = None, seed: int | None = None,
                **where: float):
    """Rebuild a trained QVPO policy from a run directory written by jaxdiff.train.online or online_multi.

    Returns (act, state, bundle): act(obs, key) -> actions in [-1, 1] (best of k_eval, jitted; obs of shape
    (obs_dim,) gives (action_dim,), (B, obs_dim) gives (B, action_dim); numpy, jax arrays or lists; anything else
    is a ValueError naming the expected shapes), the restored QVPOState, and the QVPO bundle (for explore / sample
    / q_min). Actions still need mapping to the env's range (jaxdiff.envs.evaluate.scale_action). A multi-run
    directory holds many runs: pick one with seed=s (plus the swept values when a sweep shares the seed, e.g.
    entropy_alpha=0.0) or run=k; its swept hyperparameters are in state.hparams.
    """
    import jax

    # imported here: the algorithm modules never import the drivers at module level
    from jaxdiff.envs.evaluate import checked_act
    from jaxdiff.train import online

    meta = online.load_checkpoint_meta(workdir, step)
    config = QVPOConfig.from_dict(meta["agent_config"])
    bundle = make_parts(config, int(meta["obs_dim"]), int(meta["action_dim"]))
    state, _ = online.load_agent_state(workdir, bundle.agent, step, run=run, seed=seed, **where)
    act = jax.jit(lambda obs, key: bundle.act(state, obs, key))
    return checked_act(act, int(meta["obs_dim"])), state, bundle


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
    "optimizer",
    "polyak",
    "top_k_samples",
    "transform_weights",
]
