"""QVPO pure pieces: weight transforms, entropy rows, best-of-K gathers, the omega schedule, losses, vmap/jit."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_batch

from jaxdiff import nets, qvpo

TINY = qvpo.QVPOConfig(batch_size=8, n_d=4, k_b=2, k_t=2, k_eval=3, diffusion_steps=3, actor_hidden=16,
                       actor_layers=2, critic_hidden=(16, 16), n_uniform=2)
OBS, ACT = 5, 2



# ---------------------------------------------------------------------------------------------- weight transforms
def test_weight_transforms():
    q = jnp.array([[3.0], [0.5], [-2.0]])
    v = jnp.array([[1.0], [1.0], [-3.0]])
    np.testing.assert_allclose(qvpo.transform_weights("qadv", q, v), [[2.0], [0.0], [1.0]])
    np.testing.assert_allclose(qvpo.transform_weights("qcut", q, v, 1.0), [[3.0], [1.0], [1.0]])
    np.testing.assert_allclose(qvpo.transform_weights("qcut", q, v, 0.25), [[3.0], [0.5], [0.25]])
    np.testing.assert_allclose(qvpo.transform_weights("none", q, v), np.ones((3, 1)))
    with pytest.raises(ValueError):
        qvpo.transform_weights("exp", q, v)
    with pytest.raises(ValueError):
        qvpo.QVPOConfig(weight_transform="exp")
    with pytest.raises(ValueError):
        qvpo.QVPOConfig(n_d=4, chosen=5)


# ---------------------------------------------------------------------------------------------- entropy term
def test_entropy_rows_weighting():
    B, k, n_u = 3, 2, 5
    obs = jnp.arange(B * OBS, dtype=jnp.float32).reshape(B, OBS)
    w = jnp.array([[1.0, 2.0], [0.0, 0.5], [4.0, 3.0]])
    o, u, rw = qvpo.entropy_rows(jax.random.PRNGKey(0), obs, w, jnp.float32(0.1), n_u, ACT)
    assert o.shape == (B * k * n_u, OBS) and u.shape == (B * k * n_u, ACT) and rw.shape == (B * k * n_u,)
    assert float(u.min()) >= -1.0 and float(u.max()) <= 1.0
    assert float(jnp.std(u)) > 0.3  # genuinely spread over the box
    # row (b, j, i) carries state b and weight omega * w[b, j]
    o, rw = o.reshape(B, k, n_u, OBS), rw.reshape(B, k, n_u)
    for b in range(B):
        for j in range(k):
            np.testing.assert_allclose(o[b, j], np.broadcast_to(obs[b], (n_u, OBS)))
            np.testing.assert_allclose(rw[b, j], np.full(n_u, 0.1 * float(w[b, j])), rtol=1e-6)


def test_entropy_coef_schedule():
    hp = qvpo.QVPOHParams.from_config(qvpo.QVPOConfig(entropy_horizon=1000.0, entropy_offset=100.0))
    coef = lambda s: float(qvpo.entropy_coef(jnp.int32(s), hp))  # noqa: E731
    # official: omega is set AFTER each update from that update's env step, so update 0 uses exactly alpha and
    # update k >= 1 uses alpha (1 - (offset + k - 1) / horizon)
    assert coef(0) == np.float32(0.02)
    assert coef(1) == pytest.approx(0.02 * 0.9)  # env step 100 of 1000
    assert coef(2) == pytest.approx(0.02 * (1 - 101 / 1000))
    assert coef(401) == pytest.approx(0.02 * 0.5)
    assert coef(801) == pytest.approx(0.002)  # 0.02 * 0.1 = floor
    assert coef(10_000) == pytest.approx(0.002)  # floor, never negative
    # monotone non-increasing
    vals = [coef(s) for s in range(0, 1000, 50)]
    assert all(a >= b - 1e-9 for a, b in zip(vals, vals[1:]))
    # alpha = 0 switches the term off altogether (official: min(alpha, max(0.002, ...)))
    hp0 = qvpo.QVPOHParams.from_config(qvpo.QVPOConfig(entropy_alpha=0.0))
    assert float(qvpo.entropy_coef(jnp.int32(5), hp0)) == 0.0
    # jit-able with a traced step
    assert float(jax.jit(qvpo.entropy_coef)(jnp.int32(401), hp)) == pytest.approx(0.01)


def _official_omega_sequence(alpha, warmup, num_steps, n_updates):
    """The official main.py loop, transcribed: agent.entropy_alpha starts at args.entropy_alpha and is reset after
    each agent.train(steps, ...) call, for steps = warmup, warmup + 1, ..."""
    used, current = [], alpha
    for steps in range(warmup, warmup + n_updates):
        used.append(current)  # the value agent.train sees
        current = min(alpha, max(0.002, alpha - steps / num_steps * alpha))
    return used


@pytest.mark.parametrize("offset", [0.0, 10_000.0])
def test_entropy_coef_matches_official_loop(offset):
    # a library config (offset 0, as a user who never heard of the launcher) and the launcher's (offset = warmup)
    cfg = qvpo.QVPOConfig(entropy_horizon=20_000.0, entropy_offset=offset)
    hp = qvpo.QVPOHParams.from_config(cfg)
    ks = np.array([0, 1, 2, 3, 500, 5000, 9999, 15_000])
    ours = np.asarray(jax.vmap(lambda k: qvpo.entropy_coef(k, hp))(jnp.asarray(ks, jnp.int32)))
    ref = _official_omega_sequence(0.02, int(offset), 20_000, int(ks.max()) + 1)
    np.testing.assert_allclose(ours, np.asarray(ref)[ks], rtol=1e-6)
    assert ours[0] == np.float32(0.02)  # the first update uses exactly entropy_alpha


def test_first_update_uses_exactly_entropy_alpha_through_the_library():
    q = qvpo.make_parts(TINY, OBS, ACT)
    st = q.init(jax.random.PRNGKey(0))
    # jitted: the schedule is the same traced or eager, and an eager QVPO update costs ~30 s of op-by-op compiles
    _, m = jax.jit(q.update)(st, random_batch(jax.random.PRNGKey(1), 2 * TINY.batch_size, OBS, ACT),
                             jax.random.PRNGKey(2))
    assert float(m["entropy_coef"]) == np.float32(TINY.entropy_alpha)


# ---------------------------------------------------------------------------------------------- official init
def _dense_leaves(params):
    flat = jax.tree_util.tree_leaves_with_path(params)
    kernels = [x for p, x in flat if "kernel" in jax.tree_util.keystr(p)]
    biases = [x for p, x in flat if "bias" in jax.tree_util.keystr(p)]
    return kernels, biases


def test_official_qvpo_init_is_the_default():
    assert qvpo.QVPOConfig().param_init == "qvpo"
    cfg = qvpo.QVPOConfig(actor_hidden=256, critic_hidden=(256, 256, 256))
    st = qvpo.make_parts(cfg, 11, 3).init(jax.random.PRNGKey(0))
    for tree in (st.actor, st.critic):
        kernels, biases = _dense_leaves(tree)
        assert kernels and all(float(jnp.abs(b).max()) == 0.0 for b in biases)  # zero biases
        for k in kernels:
            fan_in = k.shape[-2]
            std = 1.0 / (2.0 * np.sqrt(fan_in))
            assert float(jnp.std(k)) == pytest.approx(std, rel=0.1), k.shape
            # NOT truncated at 2 std (the official redraw loop never writes back): a 256 x 256 normal has ~1200
            # values beyond 2 std
            if k.size >= 256 * 256:
                assert float(jnp.mean(jnp.abs(k) > 2 * std)) > 0.03
    # the noise net's output at init: std ~0.009 (official init) vs ~0.035 (PyTorch default)
    def out_std(init):
        c = dataclasses.replace(cfg, param_init=init)
        net = nets.MishMLPNoiseNet(3, hidden=256, n_hidden=3, param_init=init)
        p = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 3)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, 11)))
        k = jax.random.split(jax.random.PRNGKey(2), 3)
        x = jax.random.normal(k[0], (4096, 3))
        s = jax.random.normal(k[1], (4096, 11))
        t = jax.random.randint(k[2], (4096,), 0, c.diffusion_steps)
        return float(jnp.std(net.apply(p, x, t, s)))
    assert 0.005 < out_std("qvpo") < 0.015 and 0.02 < out_std("torch") < 0.06
    # the PyTorch default stays available
    kernels, biases = _dense_leaves(qvpo.make_parts(dataclasses.replace(cfg, param_init="torch"), 11, 3).init(
        jax.random.PRNGKey(0)).actor)
    assert all(float(jnp.abs(b).max()) > 0 for b in biases)
    with pytest.raises(ValueError):
        qvpo.QVPOConfig(param_init="xavier")


# ---------------------------------------------------------------------------------------------- best-of-K
def test_best_of_k_gather():
    B, K = 4, 5
    obs = jnp.arange(B, dtype=jnp.float32)[:, None] * jnp.ones((1, OBS))

    def sample_fn(key, obs_rows):  # distinct deterministic candidates per row
        n = obs_rows.shape[0]
        return jnp.stack([jnp.arange(n, dtype=jnp.float32), obs_rows[:, 0]], axis=1) + jax.random.uniform(key, (n, 2))

    def score_fn(obs_rows, acts):  # best candidate differs per state: -(a0 - target(s))^2
        target = obs_rows[:, 0] * K + (obs_rows[:, 0] * 7) % K
        return -((acts[:, 0] - target) ** 2)

    key = jax.random.PRNGKey(3)
    for fn in (qvpo.best_of_k, jax.jit(qvpo.best_of_k, static_argnums=(1, 2, 4))):
        best, best_q, acts, scores = fn(key, sample_fn, score_fn, obs, K)
        assert best.shape == (B, 2) and best_q.shape == (B,) and acts.shape == (B, K, 2) and scores.shape == (B, K)
        ref_acts = np.asarray(sample_fn(key, jnp.repeat(obs, K, axis=0)))
        ref_scores = np.asarray(score_fn(jnp.repeat(obs, K, axis=0), jnp.asarray(ref_acts)))
        for b in range(B):
            rows = slice(b * K, (b + 1) * K)  # state-major layout: row b*K + j
            j = int(np.argmax(ref_scores[rows]))
            np.testing.assert_allclose(best[b], ref_acts[rows][j])
            np.testing.assert_allclose(best_q[b], ref_scores[rows][j])
            np.testing.assert_allclose(acts[b], ref_acts[rows])
            assert float(best[b, 1]) == pytest.approx(float(obs[b, 0]), abs=1.0)  # came from this state's rows


def test_top_k_samples():
    acts = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)
    q = jnp.array([[0.1, 0.9, 0.5, 0.3], [2.0, -1.0, 3.0, 0.0]])
    a1, q1 = qvpo.top_k_samples(acts, q, 1)
    np.testing.assert_allclose(a1[:, 0, 0], [1.0, 6.0])
    np.testing.assert_allclose(q1[:, 0], [0.9, 3.0])
    a2, q2 = qvpo.top_k_samples(acts, q, 2)
    np.testing.assert_allclose(a2[..., 0], [[1.0, 2.0], [6.0, 4.0]])
    np.testing.assert_allclose(q2, [[0.9, 0.5], [3.0, 2.0]])


# ---------------------------------------------------------------------------------------------- nets fast path
def test_fast_mish_and_broadcast_time_embedding_match_reference():
    x = jnp.linspace(-30, 30, 2001)
    np.testing.assert_allclose(nets.mish_fast(x), nets.mish(x), atol=2e-6, rtol=1e-5)
    g_ref = jax.vmap(jax.grad(nets.mish))(x)
    g_fast = jax.vmap(jax.grad(nets.mish_fast))(x)
    np.testing.assert_allclose(g_fast, g_ref, atol=1e-5)
    ref = nets.MishMLPNoiseNet(ACT, hidden=16)
    fast = nets.MishMLPNoiseNet(ACT, hidden=16, activation=nets.mish_fast)
    xt, s = jnp.ones((6, ACT)) * 0.3, jnp.linspace(-1, 1, 6 * OBS).reshape(6, OBS)
    p = ref.init(jax.random.PRNGKey(0), xt, jnp.zeros((6,), jnp.int32), s)
    t = jnp.full((6,), 7, jnp.int32)
    out = ref.apply(p, xt, t, s)
    np.testing.assert_allclose(fast.apply(p, xt, t, s), out, atol=1e-5)
    np.testing.assert_allclose(ref.apply(p, xt, t[:1], s), out, atol=1e-6)  # one shared step, broadcast
    # the sampling chain's eps_fn (obs projection hoisted out of the chain) is the same function
    for net in (ref, fast):
        np.testing.assert_allclose(qvpo.chain_eps_fn(net, p, s, ACT)(xt, t), net.apply(p, xt, t, s), atol=1e-5)
    deep = nets.MishMLPNoiseNet(ACT, hidden=8, n_hidden=4)
    pd = deep.init(jax.random.PRNGKey(1), xt, t, s)
    np.testing.assert_allclose(qvpo.chain_eps_fn(deep, pd, s, ACT)(xt, t), deep.apply(pd, xt, t, s), atol=1e-5)


# ---------------------------------------------------------------------------------------------- losses and update
@pytest.fixture(scope="module")
def tiny():
    q = qvpo.make_parts(TINY, OBS, ACT)
    return q, q.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def jit_update(tiny):
    return jax.jit(tiny[0].update)


def test_actor_batch_rows_and_weights(tiny):
    q, st = tiny
    obs = jax.random.normal(jax.random.PRNGKey(1), (TINY.batch_size, OBS))
    x0, rows_obs, row_w, denom, aux = q.actor_batch(st, st.critic, obs, jax.random.PRNGKey(2))
    B, n_u = TINY.batch_size, TINY.n_uniform
    assert x0.shape == (B * (1 + n_u), ACT) and rows_obs.shape == (B * (1 + n_u), OBS)
    assert float(denom) == B * (1 + n_u)
    w = row_w[:B]
    assert bool(jnp.all(w >= 0))  # qadv
    omega = float(aux["entropy_coef"])
    expected = omega * np.asarray(w)[:, None, None] * np.ones((1, 1, n_u))
    np.testing.assert_allclose(row_w[B:].reshape(B, 1, n_u), expected, rtol=1e-6)
    # the kept action is the best of n_d by the critic's min, and is a real policy sample in [-1, 1]
    assert float(jnp.max(jnp.abs(x0))) <= 1.0
    q_kept = q.q_min(st.critic, obs, x0[:B])
    np.testing.assert_allclose(float(jnp.mean(q_kept)), float(aux["q_best"]), rtol=1e-5)
    assert float(aux["q_best"]) >= float(aux["v_hat"])
    # alpha = 0: uniform rows carry zero weight and the mean is over the policy rows only (as official)
    st0 = st.replace(hparams=st.hparams.replace(entropy_alpha=jnp.float32(0.0)))
    _, _, row_w0, denom0, _ = q.actor_batch(st0, st.critic, obs, jax.random.PRNGKey(2))
    assert float(denom0) == B and float(jnp.abs(row_w0[B:]).max()) == 0.0


def test_unweighted_mode_is_official(tiny):
    """weight_transform='none' (official: no --weighted): weight 1, NO uniform rows, mean over the B policy rows."""
    _, st = tiny
    cfg = dataclasses.replace(TINY, weight_transform="none")
    q = qvpo.make_parts(cfg, OBS, ACT)
    obs = jax.random.normal(jax.random.PRNGKey(1), (TINY.batch_size, OBS))
    x0, rows_obs, row_w, denom, _ = q.actor_batch(st, st.critic, obs, jax.random.PRNGKey(2))
    B = TINY.batch_size
    assert x0.shape == (B, ACT) and rows_obs.shape == (B, OBS) and float(denom) == B
    np.testing.assert_array_equal(row_w, np.ones(B))
    # the loss is then the plain (unweighted) mean eps loss over the policy rows
    from jaxdiff.diffusion import ddpm
    sched = ddpm.make_schedule(cfg.diffusion_steps, cfg.beta_schedule)
    net = nets.MishMLPNoiseNet(ACT, hidden=cfg.actor_hidden, n_hidden=cfg.actor_layers, activation=nets.mish_fast,
                               param_init=cfg.param_init)
    key = jax.random.PRNGKey(3)
    ref = ddpm.eps_loss(key, sched, lambda x, t: net.apply(st.actor, x, t, rows_obs), x0)
    np.testing.assert_allclose(q.actor_loss(st.actor, x0, rows_obs, row_w, denom, key), ref, rtol=1e-6)


def test_critic_target_uses_done_and_gamma(tiny):
    q, st = tiny
    b = random_batch(jax.random.PRNGKey(4), TINY.batch_size, OBS, ACT)
    y = q.critic_targets(st, b, jax.random.PRNGKey(5))
    terminal = np.asarray(b.done) == 1
    np.testing.assert_allclose(np.asarray(y)[terminal], np.asarray(b.reward)[terminal], rtol=1e-6)
    st_g0 = st.replace(hparams=st.hparams.replace(gamma=jnp.float32(0.0)))
    np.testing.assert_allclose(q.critic_targets(st_g0, b, jax.random.PRNGKey(5)), b.reward, rtol=1e-6)


def test_update_moves_params_and_targets(tiny, jit_update):
    q, st = tiny
    b = random_batch(jax.random.PRNGKey(6), 2 * TINY.batch_size, OBS, ACT)
    key = jax.random.PRNGKey(7)
    s1, m1 = jit_update(st, b, key)
    for k in m1:
        assert np.isfinite(float(m1[k])), k
    assert int(s1.step) == 1
    leaves = lambda t: jax.tree.leaves(t)  # noqa: E731
    assert any(not np.allclose(a, b_) for a, b_ in zip(leaves(s1.actor), leaves(st.actor)))
    assert any(not np.allclose(a, b_) for a, b_ in zip(leaves(s1.critic), leaves(st.critic)))
    # Polyak: target moved by tau of the way
    for t0, t1, o1 in zip(leaves(st.critic_target), leaves(s1.critic_target), leaves(s1.critic)):
        np.testing.assert_allclose(t1, t0 + TINY.tau * (o1 - t0), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError):
        q.update(st, random_batch(key, TINY.batch_size, OBS, ACT), key)  # needs 2 x batch_size rows
    a = jax.jit(q.act)(s1, b.obs[:3], key)
    e = jax.jit(q.explore)(s1, b.obs[:3], key)
    assert a.shape == e.shape == (3, ACT) and float(jnp.max(jnp.abs(a))) <= 1.0


def test_config_roundtrip():
    c = dataclasses.replace(TINY, k_b=7)
    assert qvpo.QVPOConfig.from_dict(c.to_dict()) == c
    assert qvpo.QVPOConfig.sweepable() == tuple(f.name for f in dataclasses.fields(qvpo.QVPOHParams))
    assert {"actor_lr", "critic_lr", "gamma", "tau", "entropy_alpha"} <= set(qvpo.QVPOConfig.sweepable())
