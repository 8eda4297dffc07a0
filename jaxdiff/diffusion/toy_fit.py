"""Fit an unconditional diffusion model to a 2D sampler: used by the diffusion demo and the learning tests.

Both model kinds share one loop: a jitted lax.scan chunk of Adam steps on fresh batches from `sample_fn`.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxdiff import nets
from jaxdiff.diffusion import ddpm, vpsde
from jaxdiff.train.loop import scan_updates

NO_OBS = 0  # unconditional: the nets get an empty (batch, 0) observation


def _net(kind: str, width: int, dim: int):
    if kind == "vpsde":
        return nets.LNResNetNoiseNet(action_dim=dim, width=width, n_blocks=2, dropout=0.0)
    if kind == "ddpm":
        return nets.MishMLPNoiseNet(action_dim=dim, hidden=width)
    raise ValueError(f"unknown model kind {kind!r}; use 'vpsde' or 'ddpm'")


def fit(
    key: jax.Array,
    kind: str,
    sample_fn: Callable[[jax.Array, int], jax.Array],
    steps: int = 3000,
    batch: int = 512,
    width: int = 128,
    lr: float = 1e-3,
    dim: int = 2,
    sched: ddpm.Schedule | None = None,
    chunk: int = 500,
):
    """Returns (eps_fn_factory, variables, losses): eps_fn_factory(variables) -> eps_fn(x_t, t)."""
    net = _net(kind, width, dim)
    sched = ddpm.make_schedule(20, "cosine") if sched is None else sched
    k_init, k_train = jax.random.split(key)
    x = jnp.zeros((1, dim))
    o = jnp.zeros((1, NO_OBS))
    t0 = jnp.zeros((1,), jnp.float32 if kind == "vpsde" else jnp.int32)
    variables = net.init(k_init, x, t0, o)
    params, consts = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def eps_fn_factory(params):
        def eps_fn(x_t, t):
            return net.apply({"params": params, **consts}, x_t, t, jnp.zeros((*x_t.shape[:-1], NO_OBS)))

        return eps_fn

    def loss_fn(params, key):
        k_d, k_l = jax.random.split(key)
        x0 = sample_fn(k_d, batch)
        if kind == "vpsde":
            return vpsde.eps_loss(k_l, eps_fn_factory(params), x0)
        return ddpm.eps_loss(k_l, sched, eps_fn_factory(params), x0)

    # Cosine decay to 0 sharpens the final samples a lot for the same step budget.
    opt = optax.adam(optax.cosine_decay_schedule(lr, max(1, (steps // chunk) * chunk)))

    def update(state, key):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, key)
        upd, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, upd), opt_state), {"loss": loss}

    run_chunk = jax.jit(lambda s, k: scan_updates(update, s, k, chunk))
    state = (params, opt.init(params))
    losses = []
    for k in jax.random.split(k_train, max(1, steps // chunk)):
        state, m = run_chunk(state, k)
        losses.append(float(m["loss"]))
    return (lambda p: eps_fn_factory(p)), state[0], losses


def sample(key: jax.Array, kind: str, eps_fn, n: int, dim: int = 2, sched: ddpm.Schedule | None = None,
           solver_steps: int = 15, solver_order: int = 3) -> jax.Array:
    if kind == "vpsde":
        return vpsde.dpm_solver_sample(key, eps_fn, (n, dim), steps=solver_steps, order=solver_order)
    sched = ddpm.make_schedule(20, "cosine") if sched is None else sched
    return ddpm.ancestral_sample(key, sched, eps_fn, (n, dim))
