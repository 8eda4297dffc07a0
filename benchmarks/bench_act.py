"""Acting speed of every act path, beside the official PyTorch code measured on this kind of machine (issue 12).

  python benchmarks/bench_act.py [--seconds=2] [--json=results/bench_act.json]

Hopper shapes (obs 11, action 3), paper sizes (SRPO policy 2 x 256 ReLU; QVPO actor 3 x 256 Mish, T 20, best of 4
by the 3 x 256 twin critic), batch 1 and 256, actions per second after compilation:
  * srpo eval (full state): the SRPO driver's evaluation path before issue 12 (the whole stacked PolicyState, with
    the frozen behavior model and critic, passed into every jitted call);
  * srpo eval (acting view): the same path now (policy.acting_view: only the params travel);
  * srpo load_policy: jaxdiff.load_policy's act (the state closed over);
  * qvpo load_policy: jaxdiff.load_policy's act for QVPO (best of k_eval = 4 here, the official acting sample).
The official figures (OFFICIAL) were measured side by side with jaxdiff on this machine kind (2-core AMD EPYC with
AVX-512, torch CPU, 2 threads; issue 12, 2026-11). Nothing else may run on the cores while this runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hardware, time_per_call, write_result  # noqa: E402

import jaxdiff  # noqa: E402
from jaxdiff import qvpo, srpo  # noqa: E402
from jaxdiff.srpo import policy as policy_lib  # noqa: E402
from jaxdiff.train.over_runs import over_runs  # noqa: E402

OBS, ACT = 11, 3
# official PyTorch code, actions/s (issue 12's table: same machine kind, alternating runs, 3 repeats)
OFFICIAL = {("srpo", 1): 19_286.0, ("srpo", 256): 953_000.0, ("qvpo", 1): 183.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing per case")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    algos = srpo.make(srpo.SRPOConfig(), OBS, ACT)
    k = jax.random.PRNGKey(0)
    b, c = jax.jit(algos.behavior.init)(k), jax.jit(algos.critic.init)(k)
    p = jax.jit(algos.policy.init)(k, b, c)
    stacked = jax.tree.map(lambda x: x[None], p)  # the driver keeps runs stacked: a run of one
    act_runs = jax.jit(over_runs(lambda s, o: algos.policy.act(s, o, None), 1))
    view = policy_lib.acting_view(stacked)
    tmp = tempfile.mkdtemp()
    jaxdiff.save(os.path.join(tmp, "srpo"), algos.policy, p)
    srpo_act = jaxdiff.load_policy(os.path.join(tmp, "srpo"))
    q_algo = qvpo.make(qvpo.QVPOConfig(k_eval=4), OBS, ACT)
    jaxdiff.save(os.path.join(tmp, "qvpo"), q_algo, q_algo.init(k))
    qvpo_act = jaxdiff.load_policy(os.path.join(tmp, "qvpo"))

    n_leaves = {"full state": len(jax.tree.leaves(stacked)), "acting view": len(jax.tree.leaves(view))}
    out = {"hardware": hardware(), "leaves": n_leaves, "actions_per_s": {}, "vs_official": {}}
    print(f"hardware: {out['hardware']}; jitted-call arguments: {n_leaves}")
    for batch in (1, 256):
        obs = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (batch, OBS)))
        obs_runs = obs[None]
        cases = {
            "srpo eval (full state)": lambda: np.asarray(act_runs(stacked, obs_runs)),
            "srpo eval (acting view)": lambda: np.asarray(act_runs(view, obs_runs)),
            "srpo load_policy": lambda: np.asarray(srpo_act(obs)),
        }
        if batch == 1:
            cases["qvpo load_policy (best of 4)"] = lambda: np.asarray(qvpo_act(obs, k))
        for name, fn in cases.items():
            rate = batch / time_per_call(fn, min_seconds=args.seconds)
            ref = OFFICIAL.get((name.split()[0], batch))
            out["actions_per_s"][f"{name} @ {batch}"] = rate
            if ref:
                out["vs_official"][f"{name} @ {batch}"] = rate / ref
            print(f"batch {batch:3d}  {name:30s} {rate:12,.0f} actions/s"
                  + (f"   official {ref:10,.0f}   ratio {rate / ref:5.2f}" if ref else ""))
    if args.json:
        write_result(args.json, out)


if __name__ == "__main__":
    main()
