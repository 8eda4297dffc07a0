"""SRPO (Score Regularized Policy Optimization, Chen et al. ICLR 2024) as pure, jittable, vmappable Algorithms.

    algos = srpo.make(cfg, obs_dim, action_dim)         # SRPO(behavior, critic, policy, bc, awr)
    b = algos.behavior.init(key)                        # (a) diffusion behavior model (VP-SDE, LN-ResNet, AdamW)
    c = algos.critic.init(key)                          # (b) IQL critic (twin Q, V, expectile)
    p = algos.policy.init(key, b, c)                    # (c) SRPO extraction (frozen copies of b and c inside)
    p, metrics = algos.policy.update(p, batch, key)     # batch: srpo.Transition (jaxdiff.algorithm.Transition)
    actions = algos.policy.act(p, obs, key)             # deterministic pi(s) in [-1, 1]
    state, metrics = srpo.chunk(algos.critic, c, data, key, num_steps)   # K updates, batches drawn inside, a scan
Swept hyperparameters (beta, tau, gamma, learning rates) are float32 leaves of `state.hparams`.
Host side: run(RunConfig, SRPOConfig, points=None) trains / evaluates / checkpoints one run, or many with
points = sweep.grid(num_seeds, seed, beta=[...]) (seeds x sweeps vmapped and sharded over devices);
load_policy(workdir[, seed=s, beta=b | run=k]) -> act(obs, key=None) (= jaxdiff.load_policy). Nothing here is jitted at import.
"""
from jaxdiff.algorithm import Algorithm, Transition
from jaxdiff.srpo import baselines, behavior, critic, policy
from jaxdiff.srpo.behavior import BehaviorState
from jaxdiff.srpo.config import STAGES, TASK_PRESETS, RunConfig, SRPOConfig, make_config
from jaxdiff.srpo.critic import CriticState
from jaxdiff.srpo.data import configure, evaluate_runs, load_dataset
from jaxdiff.srpo.driver import run, run_many
from jaxdiff.saving import load_policy  # the one loader of every algorithm: act(obs, key=None)
from jaxdiff.srpo.load import load_policy_state, restore_run
from jaxdiff.srpo.policy import PolicyState
from jaxdiff.srpo.stages import SRPO, init_states, make, stage_keys
from jaxdiff.srpo.train import chunk, joint_chunk, sample_batch, train_chunk

__all__ = [
    "SRPO", "make", "Algorithm", "Transition", "SRPOConfig", "make_config", "TASK_PRESETS", "configure",
    "RunConfig", "STAGES", "BehaviorState", "CriticState", "PolicyState", "init_states", "stage_keys",
    "sample_batch", "chunk", "joint_chunk", "train_chunk", "load_dataset", "evaluate_runs", "run", "run_many", "load_policy",
    "load_policy_state", "restore_run", "behavior", "critic", "policy", "baselines",
]
