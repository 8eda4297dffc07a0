"""Diffusion-core throughput: SRPO behavior-model update at batch 2048, DPM-Solver and DDPM sampling.

  python benchmarks/bench_diffusion.py [--quick]

Shapes are halfcheetah's (obs 17, action 6). Prints one line per measurement, naming the hardware.
"""
import argparse
import sys

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import hardware, time_per_call  # noqa: E402

from jaxdiff import nets  # noqa: E402
from jaxdiff.diffusion import ddpm, vpsde  # noqa: E402

OBS, ACT = 17, 6


def bench_behavior_update(batch: int, n_inner: int) -> float:
    net = nets.LNResNetNoiseNet(action_dim=ACT)
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, ACT)), jnp.zeros((1,)), jnp.zeros((1, OBS)))
    params, consts = variables["params"], {"constants": variables["constants"]}
    opt = optax.adamw(3e-4, weight_decay=0.01)
    obs = jax.random.normal(jax.random.PRNGKey(1), (batch, OBS))
    act = jax.random.uniform(jax.random.PRNGKey(2), (batch, ACT), minval=-1, maxval=1)

    def step(carry, key):
        params, opt_state = carry
        k_drop, k_loss = jax.random.split(key)

        def loss_fn(p):
            eps = lambda x, t: net.apply({"params": p, **consts}, x, t, obs, train=True,  # noqa: E731
                                         rngs={"dropout": k_drop})
            return vpsde.eps_loss(k_loss, eps, act)

        loss, g = jax.value_and_grad(loss_fn)(params)
        upd, opt_state = opt.update(g, opt_state, params)
        return (optax.apply_updates(params, upd), opt_state), loss

    @jax.jit
    def chunk(carry, key):
        return jax.lax.scan(step, carry, jax.random.split(key, n_inner))

    carry = (params, opt.init(params))
    sec = time_per_call(lambda: chunk(carry, jax.random.PRNGKey(3)))
    return n_inner / sec


def bench_dpm_solver(batch: int) -> float:
    net = nets.LNResNetNoiseNet(action_dim=ACT)
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, ACT)), jnp.zeros((1,)), jnp.zeros((1, OBS)))
    obs = jnp.zeros((batch, OBS))
    f = jax.jit(lambda k: vpsde.dpm_solver_sample(k, lambda x, t: net.apply(variables, x, t, obs), (batch, ACT), 15))
    return batch / time_per_call(lambda: f(jax.random.PRNGKey(0)))


def bench_ddpm(batch: int) -> float:
    net = nets.MishMLPNoiseNet(action_dim=ACT)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, ACT)), jnp.zeros((1,), jnp.int32), jnp.zeros((1, OBS)))
    sched = ddpm.make_schedule(20)
    obs = jnp.zeros((batch, OBS))
    f = jax.jit(lambda k: ddpm.ancestral_sample(k, sched, lambda x, t: net.apply(params, x, t, obs), (batch, ACT)))
    return batch / time_per_call(lambda: f(jax.random.PRNGKey(0)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer inner steps (smoke run)")
    args = ap.parse_args()
    print(f"hardware: {hardware()}")
    n_inner = 2 if args.quick else 10
    print(f"behavior update (LN-ResNet 3x256/1024, AdamW, batch 2048): {bench_behavior_update(2048, n_inner):.2f} steps/s")
    for b in (1, 256):
        print(f"DPM-Solver 15 steps, batch {b}: {bench_dpm_solver(b):,.0f} samples/s")
    for b in (1, 256):
        print(f"DDPM ancestral 20 steps (QVPO net), batch {b}: {bench_ddpm(b):,.0f} samples/s")


if __name__ == "__main__":
    main()
