"""SRPO vs BC vs IQL-AWR vs the behavior model as a policy, N seeds in one vmapped process, on a behavior ladder.

  python experiments/offline_compare.py --env=jaxdiff/hopper/medium-replay-v0 \
      --behavior_ladder=5000,15000 --critic_steps=30000 --policy_steps=10000 --out=results/srpo_hopper-medium-replay.json

Per seed (all seeds stacked and vmapped): (a) the diffusion behavior model trained at batch --behavior_batch on
the training split (the last --holdout of the transitions are held out), measured at every rung of
--behavior_ladder: held-out and train eps loss, and the return of the behavior model used as a policy (DPM-Solver
samples); (b) the IQL critic (preset tau), with its quality measured against the dataset's discounted
return-to-go; (c) at every ladder rung, SRPO policies for every --beta (a vmapped sweep sharing (a) and (b)); BC
and IQL-AWR once (they need no behavior model) with the same policy network, optimiser and step budget. Every
policy is evaluated on the same fixed episodes (seeds eval_seed + i) every --eval_every policy steps (learning
curves). Writes one JSON (settings, per-seed scores, curves, wall times, hardware, the command) and a PNG of the
curves beside it. Behavior and critic states are checkpointed in --workdir, so a rerun with a longer ladder
continues the behavior model instead of starting over.
"""
from __future__ import annotations

import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags, logging  # noqa: E402

from jaxdiff.diffusion import vpsde  # noqa: E402
from jaxdiff.envs.evaluate import evaluate_policy  # noqa: E402
from jaxdiff.data.minari_data import eval_env_id  # noqa: E402
from jaxdiff.srpo import behavior, critic, stages, train  # noqa: E402
from jaxdiff.srpo.data import configure, load_dataset, normalized_score  # noqa: E402
from jaxdiff.train import cli  # noqa: E402
from jaxdiff.train.checkpoint import Checkpointer  # noqa: E402
from jaxdiff.train.logging import write_json  # noqa: E402

flags.DEFINE_string("env", "jaxdiff/hopper/medium-replay-v0", "Minari id or short name (a locomotion dataset).")
flags.DEFINE_integer("num_seeds", 3, "Seeds trained together (vmapped).")
flags.DEFINE_list("behavior_ladder", ["5000", "15000"], "Behavior-model update counts at which SRPO is extracted.")
flags.DEFINE_integer("behavior_batch", 256, "Behavior batch (paper: 2048).")
flags.DEFINE_integer("critic_steps", 30_000, "IQL updates (paper: 1.5M).")
flags.DEFINE_integer("policy_steps", 10_000, "Policy updates for SRPO, BC and AWR alike (paper: 1M).")
flags.DEFINE_list("beta", None, "SRPO betas swept together (default: preset x {0.25, 1, 4}).")
flags.DEFINE_float("awr_temperature", 3.0, "IQL-AWR inverse temperature (IQL: 3 on locomotion).")
flags.DEFINE_integer("eval_episodes", 10, "Evaluation episodes per policy and seed.")
flags.DEFINE_integer("eval_every", 2000, "Policy steps between evaluations (learning curves).")
flags.DEFINE_integer("eval_seed", 10_000, "First evaluation-episode seed.")
flags.DEFINE_float("holdout", 0.05, "Fraction of transitions (the last ones) held out from every stage.")
flags.DEFINE_integer("chunk", 1000, "Updates per jitted chunk.")
flags.DEFINE_string("workdir", None, "Checkpoints of the behavior and critic stages (default runs/compare_<env>).")
flags.DEFINE_string("out", None, "Results JSON (default results/srpo_<env>.json); the PNG goes beside it.")
FLAGS = flags.FLAGS


def say(msg, *args):
    print(time.strftime("%H:%M:%S"), msg % args, flush=True)


def stack(trees):
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def unstack(tree, n):
    return [jax.tree.map(lambda x: x[i], tree) for i in range(n)]


def return_to_go(data, gamma: float) -> np.ndarray:
    """Discounted return-to-go per transition; an episode ends at a terminal or where next_obs[i] != obs[i+1]."""
    r, done = np.asarray(data.reward, np.float64), np.asarray(data.done) > 0.5
    cut = done.copy()
    cut[:-1] |= np.any(np.asarray(data.next_obs)[:-1] != np.asarray(data.obs)[1:], axis=-1)
    cut[-1] = True
    out, g = np.zeros_like(r), 0.0
    for i in range(len(r) - 1, -1, -1):
        g = r[i] + (0.0 if cut[i] else gamma * g)
        out[i] = g
    return out


def eps_loss_fixed(cfg, b_state, obs, act, key, reps: int = 4):
    """Behavior eps loss with dropout off and fixed (t, z) draws: comparable across rungs and seeds."""
    def one(k):
        return vpsde.eps_loss(k, lambda x, t: behavior.eps(b_state.variables, cfg, act.shape[-1], x, t, obs), act)
    return jnp.mean(jax.vmap(one)(jax.random.split(key, reps)))


def evaluate_lanes(act_lanes, n_lanes: int, env_id: str, episodes: int, seed: int, dataset) -> np.ndarray:
    """Normalised scores (n_lanes, episodes) of n_lanes policies on the same episodes, in one vector env.

    act_lanes(obs (n_lanes, episodes, obs_dim), key) -> actions (n_lanes, episodes, act_dim) in [-1, 1].
    """
    key = [jax.random.PRNGKey(seed)]

    def act_fn(obs, step):
        key[0], k = jax.random.split(key[0])
        a = act_lanes(jnp.asarray(obs).reshape(n_lanes, episodes, -1), k)
        return np.asarray(a).reshape(n_lanes * episodes, -1)

    seeds = [seed + i for _ in range(n_lanes) for i in range(episodes)]
    res = evaluate_policy(env_id, act_fn, num_episodes=n_lanes * episodes, seeds=seeds)
    ret = res["returns"].reshape(n_lanes, episodes)
    return np.vectorize(lambda x: normalized_score(float(x), dataset))(ret)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO; progress goes to stdout
    t_start = time.time()
    env, S = FLAGS.env, FLAGS.num_seeds
    cli.positive(num_seeds=S, behavior_batch=FLAGS.behavior_batch, critic_steps=FLAGS.critic_steps,
                 policy_steps=FLAGS.policy_steps, eval_episodes=FLAGS.eval_episodes, eval_every=FLAGS.eval_every,
                 chunk=FLAGS.chunk)
    try:
        ladder = sorted(int(x) for x in FLAGS.behavior_ladder)
    except ValueError:
        raise cli.FlagError(f"--behavior_ladder={','.join(FLAGS.behavior_ladder)}: give update counts, e.g. 5000,15000")
    for name, v in (("behavior_ladder", min(ladder)), ("critic_steps", FLAGS.critic_steps),
                    ("policy_steps", FLAGS.policy_steps), ("eval_every", FLAGS.eval_every)):
        if v <= 0 or v % FLAGS.chunk:
            raise cli.FlagError(f"--{name}: {v} must be a positive multiple of --chunk={FLAGS.chunk}")
    if not 0.0 < FLAGS.holdout < 0.5:
        raise cli.FlagError(f"--holdout={FLAGS.holdout}: give a fraction in (0, 0.5)")
    dataset = load_dataset(env)
    if dataset.kind != "locomotion":
        raise cli.FlagError(f"--env={env}: offline_compare runs gymnasium locomotion datasets only")
    cfg0 = configure(env)
    betas = [float(b) for b in FLAGS.beta] if FLAGS.beta else [cfg0.beta * f for f in (0.25, 1.0, 4.0)]
    cfg = configure(env, behavior_steps=ladder[-1], behavior_batch=FLAGS.behavior_batch,
                             critic_steps=FLAGS.critic_steps, policy_steps=FLAGS.policy_steps)
    tag = env.replace("/", "_")
    workdir = FLAGS.workdir or os.path.join("runs", f"compare_{tag}")
    out_path = FLAGS.out or os.path.join("results", f"srpo_{tag}.json")
    env_id = eval_env_id(dataset)
    algos = stages.make(cfg, dataset.obs_dim, dataset.action_dim, FLAGS.awr_temperature)
    n = dataset.data.reward.shape[0]
    n_train = int(round(n * (1 - FLAGS.holdout)))
    full = jax.tree.map(np.asarray, dataset.data)
    data = jax.device_put(jax.tree.map(lambda x: x[:n_train], full))
    held = jax.tree.map(lambda x: jnp.asarray(x[n_train:][:8192]), full)
    train_probe = jax.tree.map(lambda x: x[:8192], data)
    say("%s: %d transitions (%d train), betas %s, ladder %s", env, n, n_train, betas, ladder)
    wall = {}

    # ---------------------------------------------------------------- (a) behavior ladder, (b) critic
    jit_inits = {st: jax.jit(algos.stage(st).init) for st in ("behavior", "critic")}  # faster than op by op
    inits = [{st: f(stages.stage_keys(s, st)[0]) for st, f in jit_inits.items()} for s in range(S)]
    b_state, c_state = stack([i["behavior"] for i in inits]), stack([i["critic"] for i in inits])
    b_keys = jnp.stack([stages.stage_keys(s, "behavior")[1] for s in range(S)])
    c_keys = jnp.stack([stages.stage_keys(s, "critic")[1] for s in range(S)])
    chunk = FLAGS.chunk
    b_chunk = jax.jit(jax.vmap(lambda st, k: train.chunk(algos.behavior, st, data, k, chunk)), donate_argnums=0)
    c_chunk = jax.jit(jax.vmap(lambda st, k: train.chunk(algos.critic, st, data, k, chunk)), donate_argnums=0)
    b_loss = jax.jit(jax.vmap(lambda b, o, a, k: eps_loss_fixed(cfg, b, o, a, k), in_axes=(0, None, None, None)))
    b_ck, c_ck = Checkpointer(os.path.join(workdir, "behavior"), None), Checkpointer(os.path.join(workdir, "critic"), 1)

    def ensure_critic(c_state):
        if c_ck.latest_step() == FLAGS.critic_steps:
            return c_ck.restore(c_state)[1], 0.0
        t0 = time.time()
        for i in range(FLAGS.critic_steps // chunk):
            c_state, _ = c_chunk(c_state, jax.vmap(jax.random.fold_in, in_axes=(0, None))(c_keys, i))
        jax.block_until_ready(c_state)
        c_ck.save(FLAGS.critic_steps, c_state)
        return c_state, time.time() - t0

    c_state, wall["critic_s"] = ensure_critic(c_state)
    # critic quality: V(s) and Q(s, a_data) against the discounted return-to-go of the (training) data
    rtg = return_to_go(jax.tree.map(np.asarray, data), cfg.gamma)
    idx = np.random.default_rng(0).choice(n_train, 8192, replace=False)
    probe = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[idx]), data)
    hidden = (cfg.critic_width,) * cfg.critic_layers

    def critic_quality(c):
        from jaxdiff.nets import ValueNet
        v = ValueNet(hidden=hidden).apply(c.v_params, probe.obs)
        q = jnp.min(critic.q_values(c.q_target, cfg, probe.obs, probe.action), axis=0)
        return v, q

    v, q = jax.vmap(critic_quality)(c_state)
    g = rtg[idx]
    critic_q = {"v_rtg_corr": [float(np.corrcoef(np.asarray(v[s]), g)[0, 1]) for s in range(S)],
                "q_rtg_corr": [float(np.corrcoef(np.asarray(q[s]), g)[0, 1]) for s in range(S)],
                "v_mean": [float(v[s].mean()) for s in range(S)], "q_mean": [float(q[s].mean()) for s in range(S)],
                "rtg_mean": float(g.mean()),
                "note": "rtg = discounted return-to-go of the behavior policy in the data (truncated at episode "
                        "cuts); IQL's V is an expectile (tau > 0.5) so it should sit above the rtg mean"}
    say("critic quality %s", critic_q)

    # policies: BC and AWR once; SRPO per rung x beta
    pol_chunk_srpo = jax.jit(jax.vmap(lambda st, k: train.chunk(algos.policy, st, data, k, chunk)), donate_argnums=0)
    awr_T = FLAGS.awr_temperature

    # BC / AWR states hold their frozen critic (AWR: target Q and V), so a chunk needs nothing else
    pol_chunk_reg = {kind: jax.jit(jax.vmap(lambda p, k, kind=kind: train.chunk(getattr(algos, kind), p, data, k,
                                                                                  chunk)), donate_argnums=0)
                     for kind in ("bc", "awr")}
    act_lanes = jax.jit(jax.vmap(lambda p, o: algos.policy.act(p, o, None)))
    E = FLAGS.eval_episodes

    def train_policies(states, step_fn, n_lanes, keys):
        """Train stacked policy lanes for policy_steps, evaluating every eval_every; returns (curve, final)."""
        curve, t0 = [], time.time()
        for i in range(FLAGS.policy_steps // chunk):
            states, m = step_fn(states, jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i))
            step = (i + 1) * chunk
            if step % FLAGS.eval_every == 0 or step == FLAGS.policy_steps:
                sc = evaluate_lanes(lambda o, k: act_lanes(states, o), n_lanes, env_id, E, FLAGS.eval_seed, dataset)
                curve.append({"step": step, "score_per_lane": sc.mean(axis=1).tolist()})
                say("  policy step %d: %s", step, np.round(sc.mean(axis=1), 1).tolist())
        return states, curve, time.time() - t0, {k: np.asarray(v).tolist() for k, v in m.items()}

    results = {"bc": {}, "awr": {}, "ladder": []}
    wall["behavior_s"] = 0.0

    def write(done_ladder: bool) -> None:
        """(Re)write the JSON and figure with what is finished, so an interrupted run keeps its finished rungs."""
        wall["total_s"] = time.time() - t_start
        summary = {
            "experiment": "SRPO vs BC vs IQL-AWR vs behavior-as-policy", "env": env, "env_id": env_id,
            "dataset": dataset.describe(), "num_seeds": S, "holdout": FLAGS.holdout, "n_train": n_train,
            "settings": {"behavior_ladder": ladder, "behavior_batch": FLAGS.behavior_batch,
                         "critic_steps": FLAGS.critic_steps, "policy_steps": FLAGS.policy_steps, "betas": betas,
                         "preset_beta": cfg0.beta, "tau": cfg.tau, "awr_temperature": awr_T, "eval_episodes": E,
                         "eval_seed": FLAGS.eval_seed, "behavior_sampler": "DPM-Solver 15 steps order 3",
                         "paper_budgets": "behavior 2M @ 2048, critic 1.5M, policy 1M"},
            "complete": done_ladder, "critic_quality": critic_q, **results, "wall": wall,
            "hardware": {"cpu": platform.processor() or platform.machine(), "device": str(jax.devices()[0]),
                         "cores": os.cpu_count()},
            "command": "python " + " ".join(sys.argv),
        }
        os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
        write_json(out_path, summary)
        if results["ladder"]:
            plot(summary, out_path[:-5] + ".png")

    p_keys = jnp.stack([stages.stage_keys(s, "policy")[1] for s in range(S)])
    for kind in ("bc", "awr"):
        p0 = stack([getattr(algos, kind).init(stages.stage_keys(s, "policy")[0], unstack(b_state, S)[s],
                                              unstack(c_state, S)[s]) for s in range(S)])
        _, curve, secs, m = train_policies(p0, pol_chunk_reg[kind], S, p_keys)
        results[kind] = {"final_score_per_seed": curve[-1]["score_per_lane"], "curve": curve, "train_s": secs,
                         "final_metrics": m}
        say("%s final %s", kind, curve[-1]["score_per_lane"])

    done = b_ck.latest_step() or 0
    if done:
        _, b_state = b_ck.restore(b_state, done)
    t_b = 0.0
    sample_lanes = jax.jit(jax.vmap(lambda b, o, k: algos.behavior.act(b, o, k)))
    for rung in ladder:
        if rung < done:
            raise cli.FlagError(f"{workdir} holds a behavior model at {done} > rung {rung}; use a new --workdir")
        t0 = time.time()
        for i in range(done // chunk, rung // chunk):
            b_state, _ = b_chunk(b_state, jax.vmap(jax.random.fold_in, in_axes=(0, None))(b_keys, i))
        jax.block_until_ready(b_state)
        t_b += time.time() - t0
        if rung > done:
            b_ck.save(rung, b_state)
        done = rung
        lk = jax.random.PRNGKey(7)
        losses = {"heldout_eps_loss": np.asarray(b_loss(b_state, held.obs, held.action, lk)).tolist(),
                  "train_eps_loss": np.asarray(b_loss(b_state, train_probe.obs, train_probe.action, lk)).tolist()}
        t0 = time.time()
        bsc = evaluate_lanes(lambda o, k: sample_lanes(b_state, o, jax.random.split(k, S)), S, env_id, E,
                             FLAGS.eval_seed, dataset)
        t_beh_eval = time.time() - t0
        say("rung %d: %s behavior-policy %s", rung, losses, bsc.mean(axis=1))
        # SRPO lanes: seed-major, beta-minor
        bs, cs = unstack(b_state, S), unstack(c_state, S)
        lanes = []
        for s in range(S):
            p = algos.policy.init(stages.stage_keys(s, "policy")[0], bs[s], cs[s])
            lanes += [p.replace(hparams={**p.hparams, "beta": jnp.float32(b)}) for b in betas]
        keys = jnp.repeat(p_keys, len(betas), axis=0)
        _, curve, secs, m = train_policies(stack(lanes), pol_chunk_srpo, len(lanes), keys)
        per = np.asarray(curve[-1]["score_per_lane"]).reshape(S, len(betas))
        results["ladder"].append({
            "behavior_steps": rung, **losses, "behavior_policy_score_per_seed": bsc.mean(axis=1).tolist(),
            "behavior_policy_eval_s": t_beh_eval,
            "srpo": {str(b): {"final_score_per_seed": per[:, j].tolist(),
                              "curve": [{"step": c["step"], "score_per_seed":
                                         np.asarray(c["score_per_lane"]).reshape(S, len(betas))[:, j].tolist()}
                                        for c in curve]} for j, b in enumerate(betas)},
            "srpo_train_s": secs, "srpo_final_metrics": m})
        say("rung %d SRPO per beta (mean over seeds) %s", rung, per.mean(axis=0))
        wall["behavior_s"] = t_b
        write(done_ladder=False)
    write(done_ladder=True)
    print(f"wrote {out_path}")


def plot(s: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = s["ladder"]
    fig, axes = plt.subplots(1, len(rungs), figsize=(5.5 * len(rungs), 4), squeeze=False)
    for ax, rung in zip(axes[0], rungs):
        for name in ("bc", "awr"):
            c = s[name]["curve"]
            x = [p["step"] for p in c]
            y = np.array([p["score_per_lane"] for p in c])
            ax.errorbar(x, y.mean(1), y.std(1), marker="o", capsize=3, label=name.upper())
        for b, r in rung["srpo"].items():
            x = [p["step"] for p in r["curve"]]
            y = np.array([p["score_per_seed"] for p in r["curve"]])
            ax.errorbar(x, y.mean(1), y.std(1), marker="s", capsize=3, label=f"SRPO beta={float(b):g}")
        bp = np.array(rung["behavior_policy_score_per_seed"])
        ax.axhline(bp.mean(), color="gray", ls="--", label="behavior model (DPM-Solver)")
        ax.set_title(f"{s['env']}\nbehavior {rung['behavior_steps']} updates @ {s['settings']['behavior_batch']}")
        ax.set_xlabel("policy updates")
        ax.set_ylabel(f"normalised score (mean +- std, {s['num_seeds']} seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    cli.run(main)
