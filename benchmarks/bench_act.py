"""Acting speed of every act path, beside the official PyTorch code (issue 12).

  python benchmarks/bench_act.py [--seconds=0.7] [--repeats=4] [--json=results/bench_act_cpu.json]
  python benchmarks/bench_act.py --sync_dispatch --json=results/bench_act_cpu_sync.json

Hopper shapes (obs 11, action 3), paper sizes (SRPO policy 2 x 256 ReLU; QVPO actor 3 x 256 Mish, T 20, best of 4
by the 3 x 256 twin critic), batch 1 and 256, actions per second after compilation, numpy in and numpy out:
  * srpo eval, full state, jax.jit: the SRPO driver's evaluation path before issue 12 (the whole stacked
    PolicyState, with the frozen behavior model and critic, passed into every jitted call);
  * srpo eval, acting view, jax.jit: only the params travel (policy.acting_view);
  * srpo eval, acting view, jit_act: the driver's path now (jaxdiff.act_jit: on CPU, XLA fuses each dense layer's
    matmul + bias + activation into one call);
  * srpo load_policy / qvpo load_policy (best of 4): jaxdiff.load_policy's act (the state closed over, jit_act).
Official reference: when torch is importable, the official SRPO acting call is timed in the same process, in the
same round-robin (Dirac_Policy = Linear-ReLU-Linear-ReLU-Linear-Tanh at the same widths, `torch.Tensor(obs)`,
`no_grad`, `.detach().cpu().numpy()`, as the official pallaral_simple_eval_policy does; torch's default threads).
Without torch, the fixed figures of issue 12's table are used (OFFICIAL: this machine kind, 2026-11). Every case is
timed `--repeats` times round-robin and the median is reported. Nothing else may run on the cores meanwhile.
--sync_dispatch runs every JAX call inline in the calling thread (`jax_cpu_enable_async_dispatch=False`, set before
the CPU backend starts): what a process that only acts should use on CPU (README, "Acting").
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
from jaxdiff.act_jit import act_compiler_options, jit_act  # noqa: E402
from jaxdiff import qvpo, srpo  # noqa: E402
from jaxdiff.srpo import policy as policy_lib  # noqa: E402
from jaxdiff.train.over_runs import over_runs  # noqa: E402

OBS, ACT = 11, 3
# official PyTorch code, actions/s (issue 12's table: same machine kind, alternating runs, 3 repeats)
OFFICIAL = {("srpo", 1): 19_286.0, ("srpo", 256): 953_000.0, ("qvpo", 1): 183.0}


def _official_srpo_act():
    """The official SRPO acting call (model.py Dirac_Policy + utils.pallaral_simple_eval_policy), or None."""
    try:
        import torch
    except ImportError:
        return None
    net = torch.nn.Sequential(torch.nn.Linear(OBS, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, ACT), torch.nn.Tanh())

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.Tensor(obs)).detach().cpu().numpy()

    act.threads = torch.get_num_threads()
    act.version = torch.__version__
    return act


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.7, help="minimum timing per case and repeat")
    ap.add_argument("--repeats", type=int, default=4, help="round-robin repeats (the median is reported)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--sync_dispatch", action="store_true",
                    help="jax_cpu_enable_async_dispatch=False: JAX calls run inline in the calling thread (CPU only)")
    args = ap.parse_args()
    jax.config.update("jax_cpu_enable_async_dispatch", not args.sync_dispatch)  # before the backend starts

    algos = srpo.make(srpo.SRPOConfig(), OBS, ACT)
    k = jax.random.PRNGKey(0)
    b, c = jax.jit(algos.behavior.init)(k), jax.jit(algos.critic.init)(k)
    p = jax.jit(algos.policy.init)(k, b, c)
    stacked = jax.tree.map(lambda x: x[None], p)  # the driver keeps runs stacked: a run of one
    runs_fn = over_runs(lambda s, o: algos.policy.act(s, o, None), 1)
    act_runs, act_runs_fused = jax.jit(runs_fn), jit_act(runs_fn)
    view = policy_lib.acting_view(stacked)
    tmp = tempfile.mkdtemp()
    jaxdiff.save(os.path.join(tmp, "srpo"), algos.policy, p)
    srpo_act = jaxdiff.load_policy(os.path.join(tmp, "srpo"))
    q_algo = qvpo.make(qvpo.QVPOConfig(k_eval=4), OBS, ACT)
    jaxdiff.save(os.path.join(tmp, "qvpo"), q_algo, q_algo.init(k))
    qvpo_act = jaxdiff.load_policy(os.path.join(tmp, "qvpo"))
    official = _official_srpo_act()

    n_leaves = {"full state": len(jax.tree.leaves(stacked)), "acting view": len(jax.tree.leaves(view))}
    ref_name = (f"official SRPO act, timed here (torch {official.version}, {official.threads} threads)"
                if official else "issue 12's table (fixed figures)")
    out = {"hardware": hardware(), "official_reference": ref_name, "jit_act_options": act_compiler_options(),
           "cpu_dispatch": "sync" if args.sync_dispatch else "async (JAX's default)",
           "leaves": n_leaves, "repeats": args.repeats, "actions_per_s": {}, "vs_official": {}}
    print(f"hardware: {out['hardware']}; jitted-call arguments: {n_leaves}; official: {ref_name}; "
          f"CPU dispatch: {out['cpu_dispatch']}")
    for batch in (1, 256):
        obs = np.array(jax.random.normal(jax.random.PRNGKey(1), (batch, OBS)))  # writable, as a gym batch is
        obs_runs = obs[None]
        cases = {
            "srpo eval, full state, jax.jit": lambda: np.asarray(act_runs(stacked, obs_runs)),
            "srpo eval, acting view, jax.jit": lambda: np.asarray(act_runs(view, obs_runs)),
            "srpo eval, acting view, jit_act": lambda: np.asarray(act_runs_fused(view, obs_runs)),
            "srpo load_policy": lambda: np.asarray(srpo_act(obs)),
        }
        if batch == 1:
            cases["qvpo load_policy (best of 4)"] = lambda: np.asarray(qvpo_act(obs, k))
        if official:
            cases["official srpo"] = lambda: official(obs)
        rates = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, fn in cases.items():
                rates[name].append(batch / time_per_call(fn, min_seconds=args.seconds))
        ref_srpo = float(np.median(rates["official srpo"])) if official else OFFICIAL[("srpo", batch)]
        refs = {"srpo": ref_srpo, "qvpo": OFFICIAL.get(("qvpo", batch))}  # by the case name's first word
        for name, r in rates.items():
            rate = float(np.median(r))
            ref = refs.get(name.split()[0])
            out["actions_per_s"][f"{name} @ {batch}"] = rate
            if ref:
                out["vs_official"][f"{name} @ {batch}"] = rate / ref
            print(f"batch {batch:3d}  {name:34s} {rate:12,.0f} actions/s"
                  + (f"   official {ref:10,.0f}   ratio {rate / ref:5.2f}" if ref else "")
                  + "   (" + " ".join(f"{x:,.0f}" for x in r) + ")")
    if args.json:
        write_result(args.json, out)


if __name__ == "__main__":
    main()
