"""Make a D4RL-style Minari dataset here, without the Minari hub.

  python experiments/collect_dataset.py --env=Hopper-v5 --quality=medium
  python experiments/srpo_offline.py --env=jaxdiff/hopper/medium-v0

Recipe (D4RL's): train an online agent (SAC by default) once per env/seed, keeping a policy snapshot at every
evaluation; then
  expert        = rollouts of the best-evaluated snapshot (stochastic actions, as D4RL; the best rather than the
                  last snapshot because short SAC runs oscillate: on Hopper-v5 the 90k snapshot scored 2929 and
                  the 100k one 19.5);
  medium        = rollouts of the first snapshot a third of the way from the random to the final policy's return;
  medium-replay = the replay buffer up to that snapshot's env step;
  random        = uniform actions (needs no trained agent);
  medium-expert = medium and expert rollouts concatenated.
ref_min_score / ref_max_score are the random policy's and the expert snapshot's mean returns. The trained agent
is kept in --agent_workdir and reused by later calls for the other qualities of the same env; a random dataset
made before any agent was trained has no ref scores (collect another quality first to get them).

Time: the default training (SAC, 300k env steps, an evaluation every 10k) takes about 35 min on a 2-core CPU
(measured: 100k steps of SAC on Hopper-v5 in 614 s) and, on a GPU, an estimated 10-15 min (not measured: the
per-step env and dispatch loop on the host bounds it, not the GPU). Collecting after that: about a minute.
"""
import json
import os

import jax
import numpy as np
from absl import flags, logging

from jaxdiff.baselines import sac, td3
from jaxdiff.data import collect
from jaxdiff.envs.evaluate import make_env
from jaxdiff.train import cli
from jaxdiff.train import logging as log_lib
from jaxdiff.train import online
from jaxdiff.train.checkpoint import Checkpointer

_ENV = flags.DEFINE_string("env", "Hopper-v5", "Gymnasium env id.")
_QUALITY = flags.DEFINE_enum("quality", "medium", list(collect.QUALITIES), "D4RL dataset quality.")
_ALGO = flags.DEFINE_enum("algo", "sac", ["sac", "td3"], "Agent trained to produce the data.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 300_000, "Env steps to train the agent (if not trained yet; not "
                                    "needed for --quality=random). The default takes ~35 min on a 2-core CPU, an "
                                    "estimated 10-15 min on a GPU.")
_WARMUP = flags.DEFINE_integer("warmup_steps", 5_000, "Uniform-random steps before training updates start.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 10_000, "Env steps between evaluations / policy snapshots.")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 10, "Episodes per evaluation and for the reference scores.")
_NUM_TRANSITIONS = flags.DEFINE_integer(
    "num_transitions", 200_000, "Transitions per rollout dataset (D4RL used 1M; medium-expert holds twice this).")
_DATASET_ID = flags.DEFINE_string("dataset_id", None, "Minari id (default jaxdiff/<env>/<quality>-v0).")
_AGENT_WORKDIR = flags.DEFINE_string("agent_workdir", None, "Where the trained agent lives (default runs/collect_...).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for training and rollouts.")

EVALS_FILE = "evals.json"
REPLAY_FILE = "replay.npz"


def make_algo(algo: str, obs_dim: int, action_dim: int):
    """The data-collecting Algorithm (SAC or TD3, default config)."""
    if algo == "sac":
        return sac.make(sac.SACConfig(), obs_dim, action_dim)
    return td3.make(td3.TD3Config(), obs_dim, action_dim)


def train_agent(agent, workdir: str) -> None:
    """Train once, saving a snapshot of the agent at every evaluation and the replay buffer at the end."""
    snaps = Checkpointer(os.path.join(workdir, "snapshots"), max_to_keep=None)
    evals = []

    def on_eval(step: int, records: list[dict], rs) -> None:  # one run: records[0], run 0 of the stacked state
        snaps.save(step, jax.tree.map(lambda x: x[0], rs.agent))
        evals.append({"step": step, "return": records[0]["eval/return_mean"]})
        if step >= _TRAIN_STEPS.value:
            r = jax.device_get(rs.replay)
            n = int(r.size[0])
            np.savez(os.path.join(workdir, REPLAY_FILE), **{k: np.asarray(getattr(r.data, k))[0, :n]
                                                           for k in ("obs", "action", "reward", "next_obs", "done")})

    cfg = online.OnlineConfig(seed=_SEED.value, total_steps=_TRAIN_STEPS.value, warmup_steps=_WARMUP.value,
                              buffer_size=_TRAIN_STEPS.value, eval_every=_EVAL_EVERY.value,
                              eval_episodes=_EVAL_EPISODES.value, checkpoint_every=_EVAL_EVERY.value * 5)
    online.run_gym(agent, _ENV.value, cfg, os.path.join(workdir, "train"), resume=True, on_eval=on_eval)
    log_lib.write_json(os.path.join(workdir, EVALS_FILE), {"evals": evals, "algo": _ALGO.value})


def check_flags() -> None:
    """Refuse bad flags before any training (one line naming the flag, exit 1)."""
    cli.gym_env_id(_ENV.value)
    cli.positive(num_transitions=_NUM_TRANSITIONS.value, eval_episodes=_EVAL_EPISODES.value)
    if _QUALITY.value != "random":
        cli.positive(train_steps=_TRAIN_STEPS.value, eval_every=_EVAL_EVERY.value)
        cli.non_negative(warmup_steps=_WARMUP.value)
        if _WARMUP.value > _TRAIN_STEPS.value:
            raise cli.FlagError(f"--warmup_steps={_WARMUP.value} is larger than --train_steps={_TRAIN_STEPS.value}"
                                f" (the replay buffer holds --train_steps rows): lower --warmup_steps")


def main(argv):
    del argv
    check_flags()
    import minari

    dataset_id = _DATASET_ID.value or collect.default_dataset_id(_ENV.value, _QUALITY.value)
    if dataset_id in minari.list_local_datasets():  # fail before any training
        raise cli.FlagError(
            f"Minari dataset {dataset_id!r} already exists under {collect.minari_root()}: remove it with "
            f"`minari delete {dataset_id}` or choose another --dataset_id.")
    env = make_env(_ENV.value)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    env.close()
    workdir = _AGENT_WORKDIR.value or os.path.join(
        "runs", f"collect_{_ENV.value}_{_ALGO.value}_seed{_SEED.value}")
    agent = make_algo(_ALGO.value, obs_dim, action_dim)
    q = _QUALITY.value
    evals_path = os.path.join(workdir, EVALS_FILE)
    # Reference scores: the uniform policy's and the expert snapshot's mean returns over eval_episodes episodes.
    ref_min = random_policy_return(_ENV.value, _EVAL_EPISODES.value, _SEED.value)
    ref_max, medium = None, {"step": None, "return": float("nan")}
    if q == "random" and not os.path.exists(evals_path):
        logging.warning("no trained agent in %s, so the random dataset gets no ref scores (collect another quality "
                        "first to train one, or pass --ref_min_score/--ref_max_score to srpo_offline.py)", workdir)
    else:
        if not os.path.exists(evals_path):
            logging.warning("training %s on %s for %d steps in %s", _ALGO.value, _ENV.value, _TRAIN_STEPS.value,
                            workdir)
            train_agent(agent, workdir)
        else:
            logging.info("reusing the trained agent in %s", workdir)
        with open(evals_path) as f:
            evals = json.load(f)["evals"]
        if not evals:
            raise cli.FlagError(f"{evals_path} holds no evaluations; delete {workdir} and train again.")
        expert = max(evals, key=lambda e: e["return"])
        ref_max = float(expert["return"])
        # Medium: a third of the way from random to expert, i.e. normalised score 33 (D4RL's "about 1/3 of the
        # expert"; a third of the raw return where random scores ~0, and well defined for negative returns).
        target = ref_min + (ref_max - ref_min) / 3.0
        medium = next((e for e in evals if e["return"] >= target and e["step"] <= expert["step"]), None)
        if medium is None:
            logging.warning("no snapshot reached a third of the way from random (%.1f) to the expert (%.1f); "
                            "train longer (--train_steps). Using the expert snapshot as 'medium'.", ref_min, ref_max)
            medium = expert
    snaps = Checkpointer(os.path.join(workdir, "snapshots"), max_to_keep=None) if q != "random" else None
    template = agent.init(jax.random.PRNGKey(0))
    explore = jax.jit(agent.explore)

    def policy_of(step: int, seed: int):
        _, state = snaps.restore(template, step)
        key = [jax.random.PRNGKey(seed)]

        def policy(obs):
            key[0], k = jax.random.split(key[0])
            return np.asarray(explore(state, obs[None].astype(np.float32), k)[0])

        return policy

    bar = log_lib.progress(_NUM_TRANSITIONS.value * (2 if q == "medium-expert" else 1), f"collect {q}")
    if q == "random":
        episodes = collect.rollout_episodes(_ENV.value, None, _NUM_TRANSITIONS.value, _SEED.value, bar.update)
    elif q == "expert":
        episodes = collect.rollout_episodes(_ENV.value, policy_of(expert["step"], _SEED.value),
                                            _NUM_TRANSITIONS.value, _SEED.value, bar.update)
    elif q == "medium":
        episodes = collect.rollout_episodes(_ENV.value, policy_of(medium["step"], _SEED.value),
                                            _NUM_TRANSITIONS.value, _SEED.value, bar.update)
    elif q == "medium-expert":
        episodes = collect.rollout_episodes(_ENV.value, policy_of(medium["step"], _SEED.value),
                                            _NUM_TRANSITIONS.value, _SEED.value, bar.update)
        episodes += collect.rollout_episodes(_ENV.value, policy_of(expert["step"], _SEED.value + 1),
                                             _NUM_TRANSITIONS.value, _SEED.value + 10**6, bar.update)
    else:  # medium-replay
        r = np.load(os.path.join(workdir, REPLAY_FILE))
        n = min(int(medium["step"]), len(r["reward"]))
        episodes = collect.episodes_from_transitions(r["obs"][:n], r["action"][:n], r["reward"][:n],
                                                     r["next_obs"][:n], r["done"][:n], low, high)
        bar.update(n)
    bar.close()
    made_by = ("uniform-random actions" if q == "random" else
               f"medium snapshot at step {medium['step']}, return {medium['return']:.1f}; expert return {ref_max:.1f}")
    ds = collect.write_minari_dataset(
        dataset_id, _ENV.value, episodes, ref_min if ref_max is not None else None, ref_max,
        algorithm_name=_ALGO.value.upper() if q != "random" else "uniform-random",
        description=(f"D4RL-style {q} data for {_ENV.value}, made by jaxdiff collect_dataset.py "
                     f"(agent {_ALGO.value}, seed {_SEED.value}; {made_by})."))
    rets = collect.episode_returns(episodes)
    print(log_lib.dumps({"dataset_id": dataset_id, "episodes": ds.total_episodes, "steps": ds.total_steps,
                         "mean_episode_return": float(rets.mean()), "ref_min_score": ref_min,
                         "ref_max_score": ref_max, "medium_step": medium["step"], "path": collect.minari_root()}))


def random_policy_return(env_id: str, episodes: int, seed: int) -> float:
    """Mean return of uniform-random actions over whole episodes (D4RL's ref_min_score)."""
    env = make_env(env_id)
    rng = np.random.default_rng(seed + 12345)
    returns = []
    for i in range(episodes):
        env.reset(seed=seed + 20_000 + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(rng.uniform(env.action_space.low, env.action_space.high))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return float(np.mean(returns))


if __name__ == "__main__":
    cli.run(main)
