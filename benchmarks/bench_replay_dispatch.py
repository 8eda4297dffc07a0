"""Why run_gym adds to the replay in its own dispatch: fused add+update vs split, 1e6-row buffer, SAC, HalfCheetah dims.

  python benchmarks/bench_replay_dispatch.py
"""
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import hardware  # noqa: E402

import time

import jax
import jax.numpy as jnp
import numpy as np
from functools import partial
from jaxdiff.baselines import sac
from jaxdiff.train import online_state as online
print(f"hardware: {hardware()}")
O, A = 17, 6
agent = sac.make(sac.SACConfig(), O, A)


def make_rs():
    return online.init_runner(agent, jax.random.PRNGKey(0), O, A, 1_000_000)



packed = jnp.asarray(np.random.randn(2*O+A+2+O).astype(np.float32))
add_only = partial(online.add_step, obs_dim=O, action_dim=A)
rest = partial(online.host_step, agent, obs_dim=O, action_dim=A, do_update=True, do_act=True)
fused = jax.jit(lambda rs, p: rest(add_only(rs, p), p), donate_argnums=0)  # what the drivers do NOT do
add_j = jax.jit(add_only, donate_argnums=0); rest_j = jax.jit(rest, donate_argnums=0)  # run_gym's two dispatches
for name, step in [("fused", lambda rs: fused(rs, packed)), ("split", lambda rs: rest_j(add_j(rs, packed), packed))]:
    rs = make_rs()
    for i in range(3): rs, a = step(rs); a.block_until_ready()
    t = time.perf_counter()
    for i in range(30): rs, a = step(rs); a.block_until_ready()
    print(name, (time.perf_counter()-t)/30*1000, "ms/step")
# equality
rs1 = make_rs(); rs2 = make_rs()
for i in range(5):
    rs1, a1 = fused(rs1, packed); rs2, a2 = rest_j(add_j(rs2, packed), packed)
print("max diff", float(jnp.abs(a1-a2).max()), float(jnp.abs(jax.tree.leaves(rs1.agent.critic_params)[0]-jax.tree.leaves(rs2.agent.critic_params)[0]).max()))
