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
from jaxdiff.train import online
from jaxdiff.data import replay as replay_lib
print(f"hardware: {hardware()}")
O, A = 17, 6
agent = sac.make_agent(sac.SACConfig(), O, A)


def make_rs():
    return online.init_runner(agent, jax.random.PRNGKey(0), O, A, 1_000_000)



packed = jnp.asarray(np.random.randn(2*O+A+2+O).astype(np.float32))
fused = jax.jit(partial(online.host_step, agent, obs_dim=O, action_dim=A, do_update=True, do_act=True), donate_argnums=0)

def add_only(rs, packed):
    tr, _ = online.unpack(packed, O, A)
    return rs.replace(replay=replay_lib.add(rs.replay, tr))
def rest(rs, packed):
    _, obs_next = online.unpack(packed, O, A)
    key, k_upd, k_act = jax.random.split(rs.key, 3)
    rs = rs.replace(key=key, env_step=rs.env_step + 1)
    rs = online.update_step(agent, rs, k_upd)
    return rs, agent.explore(rs.agent, obs_next[None], k_act)[0]
add_j = jax.jit(add_only, donate_argnums=0); rest_j = jax.jit(rest, donate_argnums=0)
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
