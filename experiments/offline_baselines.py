"""BC and IQL-AWR policies beside a finished SRPO run: same data, same policy network and step budget, same critic.

  python experiments/srpo_offline.py --env=jaxdiff/hopper/medium-v0 --workdir=runs/srpo_hopper ...
  python experiments/offline_baselines.py --workdir=runs/srpo_hopper

Reads the SRPO run's config and critic checkpoint, trains both baselines for the run's policy_steps, evaluates them
and the SRPO policy on the same fixed evaluation episodes, and writes <workdir>/baselines.json.
"""
import os
import time

import jax
import numpy as np
from absl import flags, logging

from jaxdiff import srpo
from jaxdiff.srpo import stages
from jaxdiff.train import cli
from jaxdiff.train.logging import dumps, write_json

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished SRPO run directory (needs critic and policy checkpoints).")
_TEMPERATURE = flags.DEFINE_float("awr_temperature", 3.0, "AWR inverse temperature (IQL: 3 locomotion, 10 antmaze).")
_EPISODES = flags.DEFINE_integer("eval_episodes", 10, "Evaluation episodes (same fixed seeds for all three).")
_CHUNK = flags.DEFINE_integer("chunk", 1000, "Updates per jitted chunk.")


def main(argv):
    del argv
    cli.positive(eval_episodes=_EPISODES.value, chunk=_CHUNK.value, awr_temperature=_TEMPERATURE.value)
    workdir = _WORKDIR.value
    if not workdir or not os.path.isdir(os.path.join(workdir, "checkpoints", "critic")):
        raise cli.FlagError(f"--workdir={workdir!r} is not a finished SRPO run: run experiments/srpo_offline.py "
                             "with --workdir first (it needs the critic and policy checkpoints).")
    algos, srpo_state, saved = srpo.restore_run(workdir, "policy")
    _, behavior_state, _ = srpo.restore_run(workdir, "behavior")
    _, critic_state, _ = srpo.restore_run(workdir, "critic")
    cfg = algos.policy.config
    dataset = srpo.load_dataset(saved["run"]["env"], saved["run"].get("ref_min_score"),
                                saved["run"].get("ref_max_score"))
    seed = saved["points"][0]["seed"]
    algos = stages.make(cfg, dataset.obs_dim, dataset.action_dim, _TEMPERATURE.value)
    data = jax.device_put(dataset.data)
    steps = cfg.policy_steps
    out = {"env": saved["run"]["env"], "policy_steps": steps, "awr_temperature": _TEMPERATURE.value}

    def evaluate(algo, state):
        act = jax.jit(lambda o: algo.act(state, o, None))
        return srpo.evaluate_runs(lambda obs: np.asarray(act(obs[0]))[None], 1, dataset, _EPISODES.value, 10_000)[0]

    for name in ("bc", "awr"):
        algo = getattr(algos, name)
        # the policy stage's init key: the same initial parameters as the SRPO policy
        state = algo.init(stages.stage_keys(seed, "policy")[0], behavior_state, critic_state)
        chunk = jax.jit(lambda s, k, algo=algo: srpo.chunk(algo, s, data, k, _CHUNK.value))
        key = jax.random.PRNGKey(seed + 1)
        t0 = time.perf_counter()
        for i in range(max(1, steps // _CHUNK.value)):
            state, metrics = chunk(state, jax.random.fold_in(key, i))
        jax.block_until_ready(state.params)
        train_s = time.perf_counter() - t0
        ev = evaluate(algo, state)
        out[name] = {"train_seconds": train_s, "final_metrics": {k: float(v) for k, v in metrics.items()},
                     **{k: ev[k] for k in ("mean_return", "std_return", "normalized_score") if k in ev}}
        logging.info("%s: %s", name, out[name])
    ev = evaluate(algos.policy, srpo_state)
    out["srpo"] = {k: ev[k] for k in ("mean_return", "std_return", "normalized_score") if k in ev}
    write_json(os.path.join(workdir, "baselines.json"), out)
    print(dumps({k: out[k] for k in ("srpo", "bc", "awr")}, indent=1))


if __name__ == "__main__":
    cli.run(main)
