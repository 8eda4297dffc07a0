"""SRPO (Score Regularized Policy Optimization, Chen et al. ICLR 2024) as pure, jittable, vmappable functions.

Stages (each `init(key, obs_dim, action_dim, cfg, ...) -> state`, `update(state, batch, key) -> (state, metrics)`):
    behavior_init / behavior_update      (a) diffusion behavior model (VP-SDE, LN-ResNet, AdamW)
    critic_init / critic_update          (b) IQL critic (twin Q, V, expectile)
    policy_init / policy_update          (c) SRPO extraction (frozen behavior + critic inside the state)
    act(policy_state, obs) -> action     deterministic pi(s) in [-1, 1]
    behavior_sample(state, obs, key)     DPM-Solver samples from the behavior model
Chunks (K updates in one lax.scan, batches drawn inside): behavior_chunk, critic_chunk, policy_chunk, train_chunk.
Host side: run(RunConfig, SRPOConfig) trains/evaluates/checkpoints; load_policy(workdir) -> jitted act(obs).
Many runs: run_many(RunConfig, SRPOConfig, sweep.grid(num_seeds, seed, beta=[...])) vmaps seeds x sweeps and
shards them over devices (jaxdiff.srpo.multi); load_policy(workdir, seed=s[, beta=b] | run=k) picks one run.
Nothing here is jitted: wrap with jax.jit / jax.vmap / lax.scan as you need.
"""
from jaxdiff.srpo import behavior, critic, policy
from jaxdiff.srpo.behavior import BehaviorState
from jaxdiff.srpo.config import TASK_PRESETS, SRPOConfig, make_config
from jaxdiff.srpo.critic import CriticState
from jaxdiff.srpo.multi import run_many
from jaxdiff.srpo.pipeline import RunConfig, configure, evaluate, load_dataset, load_policy, load_policy_state, run
from jaxdiff.srpo.policy import PolicyState
from jaxdiff.srpo.train import behavior_chunk, critic_chunk, policy_chunk, sample_batch, train_chunk

behavior_init = behavior.init
behavior_update = behavior.update
behavior_sample = behavior.sample
critic_init = critic.init
critic_update = critic.update
policy_init = policy.init
policy_update = policy.update
act = policy.act

__all__ = [
    "SRPOConfig", "make_config", "TASK_PRESETS", "configure", "RunConfig",
    "BehaviorState", "CriticState", "PolicyState",
    "behavior_init", "behavior_update", "behavior_sample", "critic_init", "critic_update",
    "policy_init", "policy_update", "act",
    "sample_batch", "train_chunk", "behavior_chunk", "critic_chunk", "policy_chunk",
    "load_dataset", "run", "run_many", "evaluate", "load_policy", "load_policy_state",
    "behavior", "critic", "policy",
]
