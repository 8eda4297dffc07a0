"""Learning check on the 3-peak continuous bandit: QVPO's samples end on the highest peak, and they do not when Q
plays no part in the actor's loss (uniform weights over all n_d samples, i.e. plain self-distillation).

Small and fast: T = 5, n_d = 8, batch 64, 1000 warm-up + 1000 update steps, each run one jitted lax.scan.
Measured (seeds 0-2, this config): fraction of samples within 2 std of the best peak 0.77-0.93 with the
Q-weighting, 0.03-0.32 without.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import qvpo
from jaxdiff.envs import bandit
from jaxdiff.train import online

TOTAL, WARMUP = 2000, 1000
CFG = qvpo.QVPOConfig(batch_size=64, n_d=8, k_b=4, k_t=1, k_eval=8, actor_hidden=64, critic_hidden=(256, 256),
                      diffusion_steps=5, critic_lr=1e-3, entropy_horizon=TOTAL, entropy_offset=WARMUP)


def _train(cfg: qvpo.QVPOConfig, seed: int = 0):
    q = qvpo.make(cfg, 1, 2)
    env = bandit.make_bandit()
    ls = online.jax_init(q.agent, env, jax.random.PRNGKey(seed), TOTAL)
    run = jax.jit(partial(online.jax_chunk, q.agent, env, warmup_steps=WARMUP), static_argnums=1)
    ls = run(ls, TOTAL)
    samples = q.sample(ls.runner.agent.actor, jnp.zeros((500, 1)), jax.random.PRNGKey(123))
    return ls, samples


@pytest.mark.slow
def test_bandit_qvpo_finds_highest_peak_and_fails_without_q_weighting():
    ls, a = _train(CFG)
    rs = ls.runner
    assert int(rs.env_step) == TOTAL and int(rs.agent.step) == TOTAL - WARMUP + 1
    assert int(rs.replay.size) == TOTAL
    frac = float(bandit.fraction_near(a))
    counts = np.bincount(np.asarray(bandit.nearest_peak(a)), minlength=3)
    assert frac > 0.6, (frac, counts)
    assert counts[bandit.BEST] > 0.9 * len(a), counts
    # the critic has learnt where the best peak is
    q = qvpo.make(CFG, 1, 2)
    q_peaks = np.asarray(q.q_min(rs.agent.critic, jnp.zeros((3, 1)), jnp.asarray(bandit.CENTERS)))
    assert int(np.argmax(q_peaks)) == bandit.BEST, q_peaks

    # negative control: no Q in the actor loss (weight 1 for every one of the n_d samples)
    _, a0 = _train(qvpo.QVPOConfig(**{**CFG.to_dict(), "weight_transform": "none", "chosen": CFG.n_d}))
    frac0 = float(bandit.fraction_near(a0))
    assert frac0 < 0.5, frac0
    assert frac > frac0 + 0.3
