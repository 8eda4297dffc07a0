"""SRPO against BC and IQL-AWR on a toy bandit, several seeds in one vmapped, jitted call.

    python experiments/srpo_toy_compare.py --out=results/srpo_toy_mixed.json      # bandit-mixed-quality, seeds 0-2

Per seed: one behavior model and one IQL critic, then four policies on the same policy network, same initial
parameters, optimiser and step budget: SRPO, BC, IQL-AWR (deterministic, --awr_temperature), and the control
"srpo_no_critic" (SRPO with the critic's Q zeroed, so only the behavior-score term is left). Writes the final
action, reward, normalised score (0 = behavior mean reward, 100 = its best 5%) and support mass of each.
Hyperparameters: the dataset's toy preset (jaxdiff.srpo.config) with the SHORT step budget below, the one
tests/test_srpo_beats_bc.py runs through `compare` (the flags change it; --behavior_steps=4000 --critic_steps=2000
--policy_steps=2000 --policy_lr=3e-4 is the full preset, as experiments/srpo_offline.py runs it).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.srpo import stages, train
from jaxdiff.srpo.data import bandit_record, configure, load_dataset
from jaxdiff.srpo.config import SRPOConfig

LANES = ("srpo", "bc", "awr", "srpo_no_critic")
# CPU-sized budget (about 1 min per 3 seeds with compilation on 2 loaded cores). Policy lr 3e-3: the deterministic
# policy only has to reach a fixed point, and the 10x lr gets there in 200 steps instead of ~2000.
SHORT = dict(behavior_steps=500, critic_steps=1500, policy_steps=200, policy_lr=3e-3)
# XLA CPU backend optimisation level 1 instead of the default 2: the one jitted call compiles in ~30 s instead of
# ~45 s on the loaded 2-core machine, runs as fast, and gave the same scores to 2 decimals.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def seed_keys(seed: int) -> jax.Array:
    """(init, train) keys of the behavior, critic and policy stages, as the driver derives them."""
    return jnp.stack([k for stage in ("behavior", "critic", "policy") for k in stages.stage_keys(seed, stage)])


def _train_all(keys: jax.Array, data, cfg: SRPOConfig, awr_temperature: float | None) -> dict:
    """One seed: init, behavior -> critic -> the four policies (SRPO and its control vmapped); final actions.

    Initialising inside the one jitted call saves the separate compiles of the driver's jitted inits."""
    algos = stages.make(cfg, 1, 2, 3.0 if awr_temperature is None else awr_temperature)
    ki_b, k_b, ki_c, k_c, ki_p, k_p = keys
    b = algos.behavior.init(ki_b)
    c = algos.critic.init(ki_c)
    b, _ = train.chunk(algos.behavior, b, data, k_b, cfg.behavior_steps)
    c, _ = train.chunk(algos.critic, c, data, k_c, cfg.critic_steps)
    p0 = algos.policy.init(ki_p, b, c)
    no_critic = p0.replace(q_params=jax.tree.map(jnp.zeros_like, p0.q_params))  # Q == 0, so grad_a Q == 0
    srpo_pair = jax.tree.map(lambda *x: jnp.stack(x), p0, no_critic)
    srpo_pair, _ = jax.vmap(lambda p: train.chunk(algos.policy, p, data, k_p, cfg.policy_steps))(srpo_pair)
    bc, _ = train.chunk(algos.bc, algos.bc.init(ki_p, b, c), data, k_p, cfg.policy_steps)
    s0 = jnp.zeros((1, 1))
    srpo_a = jax.vmap(lambda p: algos.policy.act(p, s0, None)[0])(srpo_pair)
    out = {"srpo": srpo_a[0], "bc": algos.bc.act(bc, s0, None)[0], "srpo_no_critic": srpo_a[1]}
    if awr_temperature is not None:
        awr, _ = train.chunk(algos.awr, algos.awr.init(ki_p, b, c), data, k_p, cfg.policy_steps)
        out["awr"] = algos.awr.act(awr, s0, None)[0]
    return out


def compare(env: str = "bandit-mixed-quality", seeds=(0, 1, 2), cfg: SRPOConfig | None = None,
            awr_temperature: float | None = 3.0):
    """(dataset, {lane: [bandit_record per seed]}); cfg defaults to the preset with the SHORT budget.

    awr_temperature=None leaves the AWR lane out (one compile less)."""
    ds = load_dataset(env)
    cfg = cfg or configure(env, **SHORT)
    data = jax.device_put(ds.data)
    keys = jnp.stack([seed_keys(s) for s in seeds])
    fn = jax.jit(jax.vmap(lambda k: _train_all(k, data, cfg, awr_temperature)), compiler_options=COMPILER_OPTIONS)
    actions = jax.tree.map(np.asarray, fn(keys))
    return ds, {lane: [bandit_record(actions[lane][i], ds) for i in range(len(seeds))] for lane in actions}


def _main() -> None:
    from absl import app, flags

    flags.DEFINE_string("env", "bandit-mixed-quality", "Toy bandit (bandit-<name>).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, trained together (vmapped).")
    flags.DEFINE_float("awr_temperature", 3.0, "AWR inverse temperature (IQL: 3 locomotion, 10 antmaze).")
    flags.DEFINE_string("out", None, "Write the results JSON here (default: print only).")
    for name, value in SHORT.items():
        define = flags.DEFINE_float if isinstance(value, float) else flags.DEFINE_integer
        define(name, value, f"{name} (default: the SHORT budget the test runs)")
    FLAGS = flags.FLAGS

    def main(argv):
        del argv
        seeds = [int(s) for s in FLAGS.seeds]
        cfg = configure(FLAGS.env, **{name: getattr(FLAGS, name) for name in SHORT})
        t0 = time.time()
        ds, recs = compare(FLAGS.env, seeds, cfg, FLAGS.awr_temperature)
        wall = time.time() - t0
        keep = ("action", "mean_return", "normalized_score", "support_mass")
        out = {
            "env": FLAGS.env, "description": ds.bandit.description,
            "ref_min_score": ds.ref_min_score, "ref_max_score": ds.ref_max_score,
            "per_seed": {str(s): {lane: {k: recs[lane][i][k] for k in keep} for lane in LANES}
                         for i, s in enumerate(seeds)},
            "mean_normalized_score": {lane: float(np.mean([r["normalized_score"] for r in recs[lane]]))
                                      for lane in LANES},
            "settings": {"config": cfg.to_dict(), "awr_temperature": FLAGS.awr_temperature, "seeds": seeds,
                         "xla_compiler_options": COMPILER_OPTIONS,
                         "lanes": {"srpo": "SRPO", "bc": "behavior cloning (MSE), same policy net",
                                   "awr": f"IQL-AWR, temperature {FLAGS.awr_temperature}, same critic and net",
                                   "srpo_no_critic": "control: SRPO with the critic's Q params zeroed"}},
            "wall_time_s": round(wall, 1),
            "hardware": {"cpu": _cpu_name(), "cores": os.cpu_count(), "jax_backend": jax.default_backend(),
                         "jax": jax.__version__, "python": platform.python_version(),
                         "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()],
                         "niceness": os.nice(0)},
            "command": "python " + " ".join(sys.argv),
        }
        text = json.dumps(out, indent=1)
        if FLAGS.out:
            os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
            with open(FLAGS.out, "w") as f:
                f.write(text + "\n")
        print(text)

    app.run(main)


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    _main()
