"""SRPO pure functions: config/presets, every stage update (with and without jit), chunks, vmap over seeds, and the
Algorithm contract (jit(init) without static args, donation-safe inits, hparams leaves)."""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import srpo
from jaxdiff.algorithm import Transition
from jaxdiff.diffusion import vpsde
from jaxdiff.srpo import behavior, critic, policy, train
from jaxdiff.srpo.config import SRPOConfig, make_config

OBS, ACT, N = 3, 2, 64
CFG = make_config(None, behavior_width=16, behavior_blocks=1, critic_width=16, policy_width=16, behavior_batch=8,
                  critic_batch=8, policy_batch=8, policy_steps=100, beta=0.3)


def _data(key=jax.random.PRNGKey(0), n=N):
    k = jax.random.split(key, 4)
    return Transition(obs=jax.random.normal(k[0], (n, OBS)), action=jax.random.uniform(k[1], (n, ACT), minval=-1, maxval=1),
                      reward=jax.random.normal(k[2], (n,)), next_obs=jax.random.normal(k[3], (n, OBS)),
                      done=(jnp.arange(n) % 5 == 0).astype(jnp.float32))


@functools.lru_cache(maxsize=None)
def _algos(cfg=CFG):
    return srpo.make(cfg, OBS, ACT)


@functools.lru_cache(maxsize=None)
def _states(cfg=CFG, seed=0):
    """(behavior, critic, policy) states; inits jitted (no static arguments) and cached across tests."""
    A = _algos(cfg)
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    b = jax.jit(A.behavior.init)(k[0])
    c = jax.jit(A.critic.init)(k[1])
    return b, c, jax.jit(A.policy.init)(k[2], b, c)


def _variant(fn, use_jit):
    """Run a pure update jitted or eagerly (op by op): both must work and agree. Jitted, it is the donating
    update of test_every_update_with_and_without_jit_and_donated (one compiled program), given a copy of the
    state (the cached states of _states() must survive)."""
    if not use_jit:
        return fn
    jitted = jax.jit(fn, donate_argnums=0)
    return lambda state, *args: jitted(jax.tree.map(jnp.copy, state), *args)


JIT = pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "nojit"])


def _batch(n=8):
    return jax.tree.map(lambda x: x[:n], _data())


# ------------------------------------------------------------------------------------------------ config
def test_presets_and_overrides():
    assert make_config("hopper-medium").beta == 0.05
    assert make_config("halfcheetah-medium-expert").beta == 0.01
    am = make_config("antmaze-large-play")
    assert (am.beta, am.policy_layers, am.tau, am.q_grad_norm) == (0.06, 4, 0.9, True)
    assert make_config("antmaze-large-play", beta=0.5, policy_layers=3).beta == 0.5  # a flag beats the preset
    assert make_config("hopper-expert").beta == 0.05  # no paper preset: the env's -medium one
    d = SRPOConfig()
    assert (d.behavior_batch, d.behavior_steps, d.behavior_weight_decay, d.critic_steps, d.policy_steps) == (
        2048, 2_000_000, 0.01, 1_500_000, 1_000_000)
    with pytest.raises(ValueError, match="weight"):
        make_config(None, weight="bogus")
    with pytest.raises(ValueError, match="unknown SRPOConfig"):
        make_config(None, nonsense=1)
    assert SRPOConfig.from_dict(am.to_dict()) == am


# ------------------------------------------------------------------------------------------------ behavior
def test_behavior_update_trains_params_not_fourier_w(use_jit=True):  # eager: test_every_update_with_and_without_jit
    b, _, _ = _states()
    assert b.constants["GaussianFourierFeatures_0"]["W"].shape == (32,)
    assert "GaussianFourierFeatures_0" not in b.params
    hp = b.opt_state.hyperparams
    np.testing.assert_allclose([hp["learning_rate"], hp["weight_decay"]], [3e-4, 0.01], rtol=1e-6)
    assert set(b.hparams) == {"behavior_lr"} and b.hparams["behavior_lr"].dtype == jnp.float32
    step = _variant(_algos().behavior.update, use_jit)
    b2, m = step(b, _batch(), jax.random.PRNGKey(1))
    assert np.isfinite(m["loss"]) and int(b2.step) == 1
    chex.assert_trees_all_equal(b2.constants, b.constants)
    assert not np.allclose(jax.tree.leaves(b2.params)[0], jax.tree.leaves(b.params)[0])


def test_behavior_eps_is_deterministic_but_training_uses_dropout():
    b, _, _ = _states()
    x, t, s = jnp.ones((4, ACT)), jnp.full((4,), 0.5), jnp.ones((4, OBS))
    e1 = behavior.eps(b.variables, CFG, ACT, x, t, s)
    chex.assert_trees_all_close(e1, behavior.eps(b.variables, CFG, ACT, x, t, s))
    net = behavior.network(CFG, ACT)
    d1 = net.apply(b.variables, x, t, s, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    d2 = net.apply(b.variables, x, t, s, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(d1, d2)


def test_behavior_loss_is_the_eps_loss():
    b, _, _ = _states()
    batch, key = _batch(), jax.random.PRNGKey(3)
    k_loss, k_drop = jax.random.split(key)

    def eps_fn(x, t):
        return behavior.network(CFG, ACT).apply(b.variables, x, t, batch.obs, train=True, rngs={"dropout": k_drop})

    _, m = _algos().behavior.update(b, batch, key)
    np.testing.assert_allclose(m["loss"], vpsde.eps_loss(k_loss, eps_fn, batch.action), rtol=1e-6)


def test_behavior_sample_shape():
    b, _, _ = _states()
    a = jax.jit(behavior.sampler(CFG, ACT, steps=4))(b, jnp.zeros((5, OBS)), jax.random.PRNGKey(0))
    assert a.shape == (5, ACT) and np.all(np.isfinite(a))
    assert _algos().behavior.act(b, jnp.zeros((2, OBS)), jax.random.PRNGKey(1)).shape == (2, ACT)  # 15 steps


# ------------------------------------------------------------------------------------------------ critic
def test_expectile_loss():
    u = jnp.array([1.0, -2.0])
    np.testing.assert_allclose(critic.expectile_loss(u, 0.7), (0.7 * 1 + 0.3 * 4) / 2, rtol=1e-6)


@JIT
def test_critic_update_matches_hand_computed_iql_step(use_jit):
    _, c, _ = _states()
    c = c.replace(q_target=jax.tree.map(lambda x: x * 0.5, c.q_params))  # make target != online
    batch = _batch()
    c2, m = _variant(_algos().critic.update, use_jit)(c, batch, jax.random.PRNGKey(0))
    q_net, v_net = critic.networks(CFG)
    target_q = jnp.min(q_net.apply(c.q_target, batch.obs, batch.action), axis=0)
    v = v_net.apply(c.v_params, batch.obs)
    np.testing.assert_allclose(m["v_loss"], critic.expectile_loss(target_q - v, 0.7), rtol=1e-5)
    y = batch.reward + 0.99 * (1 - batch.done) * v_net.apply(c.v_params, batch.next_obs)  # V(s') before the V step
    qs = q_net.apply(c.q_params, batch.obs, batch.action)
    np.testing.assert_allclose(m["q_loss"], jnp.mean((qs - y) ** 2), rtol=1e-5)
    polyak = jax.tree.map(lambda new, old: 0.005 * new + 0.995 * old, c2.q_params, c.q_target)
    chex.assert_trees_all_close(c2.q_target, polyak, rtol=1e-6)
    hp = c2.hparams
    assert int(c2.step) == 1 and float(hp["tau"]) == pytest.approx(0.7) and float(hp["gamma"]) == pytest.approx(0.99)


# ------------------------------------------------------------------------------------------------ policy
@pytest.mark.parametrize("weight", ["sigma2", "one", "alpha_over_sigma"])
@pytest.mark.parametrize("q_grad_norm", [False, True])
def test_policy_gradient_is_w_eps_minus_beta_g(weight, q_grad_norm):
    cfg = CFG.replace(weight=weight, q_grad_norm=q_grad_norm)
    p = _states()[2]  # these fields change no shapes
    obs, key = _batch().obs, jax.random.PRNGKey(7)
    grads = jax.grad(lambda prm: policy.loss(cfg, ACT, prm, p, obs, key)[0])(p.params)
    # Recompute the pieces by hand: the loss gradient must be (w eps_hat - beta g) da/dtheta, averaged over the batch.
    k_t, k_z = jax.random.split(key)
    a, vjp = jax.vjp(lambda prm: policy.network(cfg, ACT).apply(prm, obs), p.params)
    t = 0.02 + 0.96 * jax.random.uniform(k_t, (obs.shape[0],))
    alpha, sigma = vpsde.alpha_sigma(t)
    z = jax.random.normal(k_z, a.shape)
    eps_hat = behavior.eps(p.behavior, cfg, ACT, alpha[:, None] * a + sigma[:, None] * z, t, obs)
    w = {"sigma2": sigma**2, "one": jnp.ones_like(sigma), "alpha_over_sigma": alpha / sigma}[weight]
    g = jax.grad(lambda x: jnp.sum(jnp.mean(critic.q_values(p.q_params, cfg, obs, x), axis=0)))(a)
    if q_grad_norm:
        g = g / jnp.sqrt(jnp.mean(g**2, axis=-1, keepdims=True))
        np.testing.assert_allclose(jnp.mean(policy.q_and_guidance(cfg, p.q_params, obs, a)[1] ** 2, axis=-1), 1.0,
                                   rtol=1e-5)
    (expected,) = vjp((w[:, None] * eps_hat - 0.3 * g) / obs.shape[0])
    chex.assert_trees_all_close(grads, expected, rtol=1e-4, atol=1e-6)


def test_policy_baseline_subtracts_z():
    _, _, p = _states()
    obs, key = _batch().obs, jax.random.PRNGKey(1)
    l0 = policy.loss(CFG, ACT, p.params, p, obs, key)[1]["kl_term"]
    l1 = policy.loss(CFG.replace(baseline=True), ACT, p.params, p, obs, key)[1]["kl_term"]
    assert not np.isclose(l0, l1)


@JIT
def test_policy_update_keeps_behavior_and_critic_frozen(use_jit):
    _, _, p = _states()
    p2, m = _variant(_algos().policy.update, use_jit)(p, _batch(), jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(p2.behavior, p.behavior)
    chex.assert_trees_all_equal(p2.q_params, p.q_params)
    assert int(p2.step) == 1 and np.isfinite(m["loss"])
    np.testing.assert_allclose(m["lr"], 3e-4, rtol=1e-6)  # cosine schedule starts at the base rate
    a = _algos().policy.act(p2, jnp.zeros((4, OBS)), None)
    assert a.shape == (4, ACT) and np.all(np.abs(a) <= 1)


def test_policy_lr_cosine_decays_to_zero():
    p = _states()[2]
    algo = _algos(CFG.replace(policy_steps=10)).policy
    st, m = jax.jit(train.chunk, static_argnums=0, static_argnames="num_steps")(algo, p, _data(), jax.random.PRNGKey(0),
                                                                                num_steps=10)
    # mean over the 10 steps of 3e-4 * (1 + cos(pi k / 10)) / 2, k = 0..9
    expected = np.mean([3e-4 * 0.5 * (1 + np.cos(np.pi * k / 10)) for k in range(10)])
    np.testing.assert_allclose(m["lr"], expected, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ chunks and vmap
def test_chunk_equals_python_loop_of_updates():
    b, _, _ = _states()
    data, key = _data(), jax.random.PRNGKey(5)
    algo = _algos().behavior
    chunked, metrics = jax.jit(train.chunk, static_argnums=0, static_argnames="num_steps")(algo, b, data, key,
                                                                                         num_steps=3)
    st, losses = b, []
    for k in jax.random.split(key, 3):
        k_batch, k_update = jax.random.split(k)
        st, m = algo.update(st, train.sample_batch(data, k_batch, 8), k_update)
        losses.append(m["loss"])
    chex.assert_trees_all_close(chunked.params, st.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], np.mean(losses), rtol=1e-5)


def test_joint_chunk_equals_the_chunks_one_after_the_other(limit=None):
    """Behavior and critic in one scan: the same states and metrics, bit for bit, as their own chunks (the driver
    test in test_srpo_multi.py covers the pair's hand-over to a stage's own, masked, last chunk)."""
    A, (b, c, _) = _algos(), _states()
    data, kb, kc = _data(), jax.random.PRNGKey(6), jax.random.PRNGKey(7)
    apart = jax.jit(lambda b, c: (srpo.chunk(A.behavior, b, data, kb, 4, limit=limit),
                                  srpo.chunk(A.critic, c, data, kc, 4, limit=limit)))
    (b1, mb1), (c1, mc1) = apart(b, c)
    joint = jax.jit(lambda b, c: srpo.joint_chunk((A.behavior, A.critic), (b, c), data, (kb, kc), 4, limit=limit))
    (b2, c2), (mb2, mc2) = joint(b, c)
    chex.assert_trees_all_equal((b1, c1, mb1, mc1), (b2, c2, mb2, mc2))
    assert int(b2.step) == int(c2.step) == int(b.step) + (limit or 4)
    # a control: swapping the keys must change both results
    (b3, c3), _ = jax.jit(lambda b, c: srpo.joint_chunk((A.behavior, A.critic), (b, c), data, (kc, kb), 4))(b, c)
    def differs(x, y):
        return any(not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(x),
                                                                                    jax.tree.leaves(y)))

    assert differs(b3.params, b1.params) and differs(c3, c1)


def test_vmap_update_over_two_seeds():
    """The README example: one jitted update for a batch of seeds; each lane equals the unbatched run."""
    data, keys = _data(), jax.random.split(jax.random.PRNGKey(0), 2)

    A = _algos()

    def init_and_train(key):
        k_init, k_train = jax.random.split(key)
        state = A.critic.init(k_init)
        return train.chunk(A.critic, state, data, k_train, 5)

    states, metrics = jax.jit(jax.vmap(init_and_train))(keys)
    assert metrics["q_loss"].shape == (2,)
    single, m0 = jax.jit(init_and_train)(keys[1])
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], states.q_params), single.q_params, rtol=1e-5, atol=1e-6)
    assert not np.allclose(metrics["q_loss"][0], metrics["q_loss"][1])

    # policy update vmapped over 2 seeds (keys) and 2 betas (a leaf of the state)
    _, _, p = _states()
    ps = jax.vmap(lambda beta: p.replace(hparams={**p.hparams, "beta": beta}))(jnp.array([0.1, 10.0]))
    ps2, m = jax.jit(jax.vmap(A.policy.update, in_axes=(0, None, 0)))(ps, _batch(), keys)
    assert m["loss"].shape == (2,) and np.all(np.asarray(ps2.step) == 1)


def test_learning_rate_is_a_vmappable_leaf():
    b, _, _ = _states()
    data = _data()

    def with_lr(lr):  # the hparams leaf is the one way to set it: it overwrites the optimizer's copy every step
        st = b.replace(hparams={"behavior_lr": lr})
        return train.chunk(_algos().behavior, st, data, jax.random.PRNGKey(0), 2)[0].params

    out = jax.jit(jax.vmap(with_lr))(jnp.array([0.0, 1e-2]))
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], out), b.params)  # lr 0: unchanged
    assert not np.allclose(jax.tree.leaves(out)[0][1], jax.tree.leaves(b.params)[0])


# ------------------------------------------------------------------------------------------------ Algorithm contract
@pytest.mark.parametrize("name", ["behavior", "critic", "policy", "bc", "awr"])
def test_every_update_with_and_without_jit_and_donated(name, use_jit=True):
    """Each stage's update runs eagerly (the reference) and jitted with the same result, and a state made by an
    eager init can be donated (distinct buffers: critic q_target and the policy's frozen copies do not alias their
    sources). (A use_jit=False variant would compare the eager update with itself.)"""
    A = _algos()
    k = jax.random.split(jax.random.PRNGKey(3), 3)
    b = A.behavior.init(k[0])
    c = A.critic.init(k[1])
    algo = getattr(A, name)
    state = algo.init(k[2], b, c) if name in ("policy", "bc", "awr") else algo.init(k[2])
    # the reference from a copy: an eager update passes unchanged leaves (the Fourier W, frozen parts) through
    ref, m_ref = algo.update(jax.tree.map(jnp.copy, state), _batch(), jax.random.PRNGKey(4))
    fn = jax.jit(algo.update, donate_argnums=0) if use_jit else algo.update
    new, m = fn(state, _batch(), jax.random.PRNGKey(4))
    chex.assert_trees_all_close(new, ref, rtol=1e-5, atol=1e-7)
    assert set(m) == set(m_ref) and all(np.isfinite(v) for v in jax.tree.leaves(m))
    assert all(x.dtype == jnp.float32 and x.shape == () for x in jax.tree.leaves(new.hparams))
    # the caller's behavior / critic buffers survive a donated policy state
    assert np.all(np.isfinite(jax.tree.leaves(b.params)[0])) and np.all(np.isfinite(jax.tree.leaves(c.q_params)[0]))


def test_inits_jit_without_static_args_and_states_are_arrays_only():
    A = _algos()
    for st in (jax.jit(A.behavior.init)(jax.random.PRNGKey(0)), jax.jit(A.critic.init)(jax.random.PRNGKey(0))):
        assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(st))
    b, c, p = _states()
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(p))
    assert set(p.hparams) == {"policy_lr", "beta"} and set(c.hparams) == {"critic_lr", "tau", "gamma"}
    assert p.v_params is None and A.awr.init(jax.random.PRNGKey(0), b, c).v_params is not None


def test_hparams_leaves_drive_the_update():
    """Swept values live in state.hparams: a zero learning rate leaves params unchanged, beta changes the loss."""
    A = _algos()
    _, c, p = _states()
    c0, _ = A.critic.update(c.replace(hparams={**c.hparams, "critic_lr": jnp.float32(0.0)}), _batch(),
                            jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(c0.q_params, c.q_params)
    _, m1 = A.policy.update(p, _batch(), jax.random.PRNGKey(0))
    _, m2 = A.policy.update(p.replace(hparams={**p.hparams, "beta": jnp.float32(5.0)}), _batch(), jax.random.PRNGKey(0))
    assert not np.isclose(m1["loss"], m2["loss"])


def test_short_last_chunk_reuses_the_compiled_chunk():
    """limit: the masked K-step scan applies only the first `limit` updates (same keys as a plain limit-step
    chunk) and the mean of their metrics, so a stage's short last chunk needs no second compile."""
    A, (_, c, _) = _algos(), _states()
    data, key = _data(), jax.random.PRNGKey(4)
    masked = jax.jit(lambda s, lim: srpo.chunk(A.critic, s, data, key, 5, limit=lim))
    plain3 = jax.jit(lambda s: srpo.chunk(A.critic, s, data, key, 3))
    s3, m3 = masked(c, 3)
    r3, n3 = plain3(c)
    chex.assert_trees_all_close((s3, m3), (r3, n3), rtol=1e-5, atol=1e-6)
    s5, _ = masked(c, 5)
    assert int(s3.step) == int(c.step) + 3 and int(s5.step) == int(c.step) + 5
    assert masked._cache_size() == 1  # limits 3 and 5: one program
