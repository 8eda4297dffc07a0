"""QVPO, SAC and TD3 through the one `Algorithm` interface, used the way a client embeds them in its own code:
an eager `init`, then `jax.jit(update, donate_argnums=0)`, vmap over stacked states, lax.scan over updates, and
the hyperparameters (learning rates included) set as leaves with jaxdiff.train.hparams."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import random_batch

from jaxdiff import qvpo
from jaxdiff.algorithm import set_learning_rate
from jaxdiff.baselines import sac, td3
from jaxdiff.train import hparams as hparams_lib

OBS, ACT = 3, 2
QVPO_CFG = qvpo.QVPOConfig(batch_size=4, n_d=3, k_b=2, k_t=2, k_eval=2, diffusion_steps=2, actor_hidden=8,
                           actor_layers=2, critic_hidden=(8, 8), n_uniform=2)
CASES = {  # module, tiny config, the params fields a learning rate moves
    "qvpo": (qvpo, QVPO_CFG, ("actor", "critic")),
    "sac": (sac, sac.SACConfig(batch_size=8, hidden=(8, 8), alpha_lr=1e-2),
            ("actor_params", "critic_params", "log_alpha")),
    "td3": (td3, td3.TD3Config(batch_size=8, hidden=(8, 8)), ("actor_params", "critic_params")),
}



def _donating_update(algo):
    """The client's jitted update (donating the state): one compiled program per algorithm, shared by the tests
    (jax caches it by function); callers pass states they no longer need, or copies."""
    return jax.jit(algo.update, donate_argnums=0)


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


def _assert_close(a, b, **tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **tol)


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """(Algorithm, names of the params fields its learning rates move) for each of QVPO, SAC, TD3."""
    mod, cfg, moved = CASES[request.param]
    return mod.make(cfg, OBS, ACT), moved


def test_make_returns_the_interface_and_names_its_sweepable_hparams(case):
    algo, _ = case
    assert algo.name in CASES and (algo.obs_dim, algo.action_dim) == (OBS, ACT)
    assert not hasattr(CASES[algo.name][0], "make_agent")  # one constructor name
    state = algo.init(jax.random.PRNGKey(0))
    names = type(algo.config).sweepable()
    assert list(names) == hparams_lib.hparam_names(state)
    assert {"actor_lr", "critic_lr", "gamma", "tau"} <= set(names)
    for n, leaf in hparams_lib.get_hparams(state).items():
        assert leaf.dtype == jnp.float32 and leaf.shape == () and float(leaf) == pytest.approx(getattr(algo.config, n))
    with pytest.raises(ValueError, match="cannot sweep batch_size"):
        hparams_lib.check_sweepable(state, ["batch_size"])
    with pytest.raises(ValueError):
        hparams_lib.set_hparams(state, {"hidden": 3})


def test_eager_init_donates_into_jitted_update_same_as_without_jit(case):
    algo, moved = case
    state = algo.init(jax.random.PRNGKey(0))  # eager
    leaves = jax.tree.leaves(state)
    assert len({x.unsafe_buffer_pointer() for x in leaves}) == len(leaves), "init aliases a buffer"
    batch, key = random_batch(jax.random.PRNGKey(1), algo.batch_rows, OBS, ACT), jax.random.PRNGKey(2)
    # the pure update without jit, on its own state: an eager update passes unchanged leaves (hparams) through,
    # so its output shares those buffers with its input and donating that input would delete them
    ref, ref_m = algo.update(algo.init(jax.random.PRNGKey(0)), batch, key)
    update = _donating_update(algo)
    new, m = update(state, batch, key)
    # donated: the caller's buffers went to the update. (The optimizer states' own copy of the learning rate is
    # not read, being overwritten from hparams each step, so jit prunes that input and leaves it alive.)
    assert all(x.is_deleted() for f in (*moved, "step", "hparams") for x in jax.tree.leaves(getattr(state, f)))
    _assert_close(ref, new, rtol=2e-4, atol=1e-6)
    _assert_close(ref_m, m, rtol=2e-4, atol=1e-5)
    new, _ = update(new, batch, key)  # and again on its own output
    assert int(new.step) == 2
    st = jax.jit(algo.init)(jax.random.PRNGKey(0))  # init jits without static arguments
    _assert_close(st, algo.init(jax.random.PRNGKey(0)), rtol=1e-6, atol=1e-8)  # XLA fuses the init's scaling: 1 ulp


def test_vmap_over_stacked_states_and_scan_over_updates(case):
    algo, _ = case
    # client-style: two eager inits stacked by hand, a learning-rate sweep set as leaves
    states = jax.tree.map(lambda *x: jnp.stack(x), *[algo.init(jax.random.PRNGKey(i)) for i in range(2)])
    vinit = jax.jit(jax.vmap(algo.init))(jnp.stack([jax.random.PRNGKey(i) for i in range(2)]))  # or vmapped init
    _assert_close(vinit, states, rtol=1e-6, atol=1e-8)
    states = hparams_lib.set_hparams(states, {"critic_lr": [3e-4, 1e-3]})
    batch = random_batch(jax.random.PRNGKey(1), algo.batch_rows, OBS, ACT)
    keys = jax.random.split(jax.random.PRNGKey(2), 2)
    vs, vm = jax.jit(jax.vmap(algo.update, in_axes=(0, None, 0)))(states, batch, keys)
    assert vm["critic_loss"].shape == (2,) and bool(jnp.all(jnp.isfinite(vm["critic_loss"])))
    for i in range(2):
        single, _ = _donating_update(algo)(jax.tree.map(lambda x, i=i: x[i], states), batch, keys[i])
        _assert_close(single, jax.tree.map(lambda x, i=i: x[i], vs), rtol=2e-4, atol=1e-6)

    # three updates under lax.scan equal three jitted calls
    state = algo.init(jax.random.PRNGKey(0))
    batches = jax.vmap(lambda k: random_batch(k, algo.batch_rows, OBS, ACT))(jax.random.split(jax.random.PRNGKey(3), 3))
    ks = jax.random.split(jax.random.PRNGKey(4), 3)

    def body(s, xs):
        return algo.update(s, *xs)

    scanned, ms = jax.jit(lambda s: jax.lax.scan(body, s, (batches, ks)))(state)
    assert int(scanned.step) == 3 and ms["critic_loss"].shape == (3,)
    step = _donating_update(algo)
    for t in range(3):
        state, _ = step(state, jax.tree.map(lambda x, t=t: x[t], batches), ks[t])
    _assert_close(scanned, state, rtol=2e-4, atol=1e-6)


def test_learning_rates_are_read_from_hparams(case):
    algo, moved = case
    state = algo.init(jax.random.PRNGKey(0))
    batch, key = random_batch(jax.random.PRNGKey(1), algo.batch_rows, OBS, ACT), jax.random.PRNGKey(2)
    lrs = [n for n in hparams_lib.hparam_names(state) if n.endswith("_lr")]
    frozen = hparams_lib.set_hparams(state, {n: 0.0 for n in lrs})
    new, _ = _donating_update(algo)(_copy(frozen), batch, key)  # frozen shares the params buffers of state
    for field in moved:  # a zero learning rate leaves every trained parameter exactly where it was
        for a, b in zip(jax.tree.leaves(getattr(state, field)), jax.tree.leaves(getattr(new, field)), strict=True):
            np.testing.assert_array_equal(a, b)
    moving, _ = _donating_update(algo)(_copy(state), batch, key)
    for field in moved:
        assert any(not np.array_equal(a, b) for a, b in
                   zip(jax.tree.leaves(getattr(state, field)), jax.tree.leaves(getattr(moving, field))))


# ---------------------------------------------- learning rates via inject_hyperparams: bit for bit the old forms
def test_optimizer_is_bitwise_the_hand_applied_learning_rate():
    """Learning rates moved from a hand-applied `-lr * u` after chain(clip, scale_by_adam) into
    optax.inject_hyperparams (set from hparams by set_learning_rate): the params must come out bit for bit equal,
    eager and jitted, also for a rate set after init."""
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (6, 4)), "b": jnp.ones(4)}
    grads = [jax.tree.map(lambda p, i=i: 3.0 * jax.random.normal(jax.random.PRNGKey(i + 1), p.shape), params)
             for i in range(3)]  # norms above grad_clip, so the clip acts
    old_tx = optax.chain(optax.clip_by_global_norm(QVPO_CFG.grad_clip), optax.scale_by_adam(eps=QVPO_CFG.adam_eps))
    new_tx = qvpo.optimizer(QVPO_CFG, QVPO_CFG.actor_lr)

    def old_step(g, s, p, lr):
        u, s = old_tx.update(g, s, p)
        return optax.apply_updates(p, jax.tree.map(lambda x: -lr * x, u)), s

    def new_step(g, s, p, lr):
        u, s = new_tx.update(g, set_learning_rate(s, lr), p)
        return optax.apply_updates(p, u), s

    for lr in (jnp.float32(QVPO_CFG.actor_lr), jnp.float32(3e-3)):
        for wrap in (lambda f: f, jax.jit):
            p_old = p_new = params
            s_old, s_new = old_tx.init(params), new_tx.init(params)
            for g in grads:
                p_old, s_old = wrap(old_step)(g, s_old, p_old, lr)
                p_new, s_new = wrap(new_step)(g, s_new, p_new, lr)
            for a, b in zip(jax.tree.leaves(p_old), jax.tree.leaves(p_new)):
                np.testing.assert_array_equal(a, b)


def test_injected_adam_is_bitwise_optax_adam():
    """The learning rate now comes from hparams through inject_hyperparams; the steps must equal optax.adam(lr)'s
    bit for bit (eager and jitted), including after the rate is overwritten with set_learning_rate."""
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (7, 5)), "b": jnp.zeros(5)}
    grads = [jax.tree.map(lambda p, i=i: jax.random.normal(jax.random.PRNGKey(i + 1), p.shape), params)
             for i in range(3)]
    for lr in (3e-4, 1e-2):
        for wrap in (lambda f: f, jax.jit):
            ref_tx, new_tx = optax.adam(lr), sac.adam(3e-4)
            ref_step = wrap(lambda g, s, p: ref_tx.update(g, s, p))
            new_step = wrap(lambda g, s, p, lr_: new_tx.update(g, set_learning_rate(s, lr_), p))
            p_ref = p_new = params
            s_ref, s_new = ref_tx.init(params), new_tx.init(params)
            for g in grads:
                u, s_ref = ref_step(g, s_ref, p_ref)
                p_ref = optax.apply_updates(p_ref, u)
                u, s_new = new_step(g, s_new, p_new, jnp.float32(lr))
                p_new = optax.apply_updates(p_new, u)
            for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_new)):
                np.testing.assert_array_equal(a, b)
