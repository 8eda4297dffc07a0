"""Many SRPO runs in one process (jaxdiff.srpo.run with a list of points): run k of a vmapped seeds x beta run equals the single run()
with the same seed and beta, the sweep applies each beta (and trains one behavior model and critic per seed), a
killed multi-run resumes exactly, a run sharded over 4 forced CPU devices equals the unsharded one, a
batch-sharded behavior update equals the unsharded one (subprocess), and the launcher with --num_seeds and a
list-valued --beta. Tiny networks on the toy bandit: what is checked is equality and bookkeeping.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import SRPO_TINY as TINY, kill_after_save, launch, launcher_env, srpo_tiny_flags

from jaxdiff import srpo
from jaxdiff.srpo import stages
from jaxdiff.train import hparams as hparams_lib
from jaxdiff.train import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BETAS = [0.01, 30.0]


def _cfg():
    # unequal stage lengths, the critic's off the log grid: behavior and critic train together to step 40, then
    # behavior alone to 60 and the critic's masked last chunk to 50 (test_behavior_and_critic_together_...)
    return srpo.configure("bandit-imbalanced", behavior_steps=60, critic_steps=50, policy_steps=60,
                              policy_lr=3e-3, **TINY)


def _run_cfg(workdir, **kw):
    base = dict(env="bandit-imbalanced", workdir=str(workdir), log_every=20, checkpoint_every=0, eval_every=0,
                progress_bar=False, plots=False)
    return srpo.RunConfig(**{**base, **kw})


def _max_diff(a, b) -> float:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("srpo_multi")
    points = sweep.grid(2, 0, beta=BETAS)  # runs: (seed 0, 0.01), (1, 0.01), (0, 30), (1, 30)
    m = srpo.run(_run_cfg(tmp / "multi"), _cfg(), points)
    s = srpo.run(_run_cfg(tmp / "single", seed=1), _cfg().replace(beta=BETAS[1]))
    return tmp, points, m, s


@pytest.mark.slow
def test_run_k_equals_single_run(runs):
    tmp, points, m, s = runs
    k = 3
    assert points[k] == {"seed": 1, "beta": BETAS[1]}
    mine = srpo.load_policy_state(str(tmp / "multi"), seed=1, beta=BETAS[1])
    ref = srpo.load_policy_state(str(tmp / "single"))
    # the whole PolicyState: policy params, Adam state, beta, and the frozen behavior model and target critic
    diff = _max_diff(mine, ref)
    print(f"run {k} of the vmapped run vs the single run(): max |diff| over the PolicyState {diff:.2e}")
    assert diff < 1e-5
    assert float(mine.hparams["beta"]) == pytest.approx(BETAS[1])
    s_ev = s["runs"][0]["eval"]
    np.testing.assert_allclose(m["runs"][k]["eval"]["action"], s_ev["action"], atol=1e-5)
    assert m["runs"][k]["final_eval_return"] == pytest.approx(s_ev["mean_return"], abs=1e-5)
    # per-run metrics mirror the single run's, stage by stage
    recs = [json.loads(x) for x in open(tmp / "multi" / "metrics.jsonl")]
    single = [json.loads(x) for x in open(tmp / "single" / "metrics.jsonl")]
    for stage, idx in (("behavior", 1), ("critic", 1), ("policy", k)):
        mine_l = [r["loss" if stage != "critic" else "q_loss"] for r in recs if r["stage"] == stage and r["run"] == idx]
        ref_l = [r["loss" if stage != "critic" else "q_loss"] for r in single if r["stage"] == stage]
        np.testing.assert_allclose(mine_l, ref_l, rtol=1e-4, atol=1e-6)
    act = srpo.load_policy(str(tmp / "multi"), run=k)
    np.testing.assert_allclose(act(np.zeros((1, 1), np.float32))[0], s_ev["action"], atol=1e-5)


@pytest.mark.slow
def test_beta_sweep_shares_behavior_and_critic_and_applies_each_beta(runs):
    tmp, points, m, _ = runs
    assert m["stage_runs"] == {"behavior": 2, "critic": 2, "policy": 4}  # one behavior model and critic per seed
    assert [r["stage_runs"]["behavior"] for r in m["runs"]] == [0, 1, 0, 1]
    pol = m["states"]["policy"]
    np.testing.assert_allclose(np.asarray(pol.hparams["beta"]), [0.01, 0.01, 30.0, 30.0], rtol=1e-6)
    for a, b in ((0, 2), (1, 3)):  # same seed, other beta: the very same behavior model and critic
        assert _max_diff(sweep.run_slice(pol.behavior, a), sweep.run_slice(pol.behavior, b)) == 0.0
        assert _max_diff(sweep.run_slice(pol.q_params, a), sweep.run_slice(pol.q_params, b)) == 0.0
        lo, hi = m["runs"][a], m["runs"][b]
        # a larger beta weighs Q more against the behavior score: higher Q at pi(s), larger KL term
        assert hi["final_metrics"]["policy"]["q_pi"] > lo["final_metrics"]["policy"]["q_pi"], (lo, hi)
        assert hi["final_metrics"]["policy"]["kl_term"] > lo["final_metrics"]["policy"]["kl_term"], (lo, hi)
        assert not np.allclose(lo["eval"]["action"], hi["eval"]["action"], atol=1e-3)
    summary = json.loads((tmp / "multi" / "summary.json").read_text())
    assert [g["point"] for g in summary["groups"]] == [{"beta": 0.01}, {"beta": 30.0}]
    for g in summary["groups"]:
        assert g["seeds"] == [0, 1]
        assert set(g["final_eval_return"]) >= {"mean", "std", "iqm", "ci95"} and "final_eval_score" in g
    with pytest.raises(ValueError, match="matches 2 runs"):  # seed 1 is in both beta points
        srpo.load_policy_state(str(tmp / "multi"), seed=1)


@pytest.mark.slow
def test_multi_run_resumes_exactly_and_rejects_other_runs(runs, monkeypatch):
    tmp, points, m, _ = runs
    wd = tmp / "killed"
    restore_save = kill_after_save(monkeypatch, os.path.join("checkpoints", "critic"), 20)
    with pytest.raises(KeyboardInterrupt):
        srpo.run(_run_cfg(wd, checkpoint_every=20), _cfg(), points)
    restore_save()
    with pytest.raises(ValueError, match="pass --resume"):
        srpo.run(_run_cfg(wd, checkpoint_every=20), _cfg(), points)
    with pytest.raises(ValueError, match="holds the behavior runs"):
        srpo.run(_run_cfg(wd, checkpoint_every=20, resume=True), _cfg(), sweep.grid(3, 0, beta=BETAS))
    with pytest.raises(ValueError, match="holds the behavior runs"):  # one run is not these four
        srpo.run(_run_cfg(wd, resume=True), _cfg())
    resumed = srpo.run(_run_cfg(wd, checkpoint_every=20, resume=True), _cfg(), points)
    assert _max_diff(resumed["states"]["policy"], m["states"]["policy"]) == 0.0
    assert [r["final_eval_return"] for r in resumed["runs"]] == [r["final_eval_return"] for r in m["runs"]]
    recs = [json.loads(x) for x in open(wd / "metrics.jsonl")]
    assert [r["step"] for r in recs if r["stage"] == "critic" and r["run"] == 0] == [20, 40, 50]  # not doubled


@pytest.mark.slow
def test_behavior_and_critic_together_equal_one_after_the_other(runs):
    """The driver trains behavior and critic in one loop by default (the fixture's run: together to step 40, then
    behavior alone to 60 and the critic's masked last chunk to 50). Trained one after the other instead, the
    states, every metrics record and the checkpoint steps are the same, bit for bit."""
    tmp, points, m, _ = runs
    b = srpo.run(_run_cfg(tmp / "apart", behavior_critic_together=False), _cfg(), points)
    assert m["timing"]["behavior"]["together"]["with"] == "critic" and m["timing"]["critic"]["together"]["steps"] == 40
    assert "together" not in b["timing"]["behavior"]
    assert _max_diff(m["states"], b["states"]) == 0.0

    def records(wd):
        return sorted((r["stage"], r["step"], r["run"], json.dumps({k: v for k, v in r.items() if k != "steps_per_s"}))
                      for r in map(json.loads, open(wd / "metrics.jsonl")))

    assert records(tmp / "multi") == records(tmp / "apart")
    for stage, last in (("behavior", "60"), ("critic", "50")):  # the newest checkpoints kept, the same steps
        kept = sorted(os.listdir(tmp / "multi" / "checkpoints" / stage), key=int)
        assert kept == sorted(os.listdir(tmp / "apart" / "checkpoints" / stage), key=int) and kept[-1] == last, kept


_SHARDED = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, "tests")
    from test_srpo_multi import BETAS, _cfg, _run_cfg
    from jaxdiff import srpo
    from jaxdiff.srpo import driver, train
    from jaxdiff.train import sweep
    assert len(jax.devices()) == 4, jax.devices()
    out_dir = sys.argv[1]
    # the fixture's run, now sharded over 4 devices (2 behavior/critic runs padded to 4, 4 policy runs)
    m = srpo.run(_run_cfg(out_dir + "/sharded"), _cfg(), sweep.grid(2, 0, beta=BETAS))
    np.savez(out_dir + "/states.npz", *[np.asarray(x) for x in jax.tree.leaves(m["states"])])
    out = {"devices": m["devices"], "padded": m["padded_runs"], "eval": [r["final_eval_return"] for r in m["runs"]],
           "sharded_over": len(m["states"]["policy"].hparams["beta"].sharding.device_set)}
    # the same runs' behavior stage with data-parallel training (runs replicated, each minibatch split over 4
    # devices); shard_batch changes only that stage, so it alone is trained and compared
    dp = srpo.run(_run_cfg(out_dir + "/batch_sharded", stage="behavior"), _cfg(), sweep.grid(2, 0, beta=BETAS),
                  shard_batch=True)
    out["shard_batch_run_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in
                                      zip(jax.tree.leaves(m["states"]["behavior"]),
                                          jax.tree.leaves(dp["states"]["behavior"])))

    # the data-parallel program really splits each minibatch: its compiled HLO all-reduces the gradients. Only
    # lowered and compiled (from the shapes of the states above), not run: dp above already compared the numbers
    algos = srpo.make(_cfg(), 1, 2)
    ds = srpo.load_dataset("bandit-imbalanced")
    place = driver.Placement()

    def chunks(st, data, keys):
        return jax.vmap(lambda s, k: train.chunk(algos.behavior, s, data, k, 1, place.batch))(st, keys)

    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=place.replicated),
                          (dp["states"]["behavior"], ds.data, jax.random.split(jax.random.PRNGKey(0), 2)))
    out["batch_all_reduce"] = "all-reduce" in jax.jit(chunks).lower(*shapes).compile().as_text()
    print("RESULT" + json.dumps(out))
""")


@pytest.fixture(scope="module")
def four_devices(runs):
    tmp = runs[0]
    env = launcher_env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    res = subprocess.run([sys.executable, "-c", _SHARDED, str(tmp)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0 and "RESULT" in res.stdout, res.stderr[-3000:]
    out = json.loads(res.stdout.split("RESULT", 1)[1])
    with np.load(tmp / "states.npz") as f:
        out["states"] = [f[f"arr_{i}"] for i in range(len(f.files))]
    return out


@pytest.mark.slow
def test_sharded_run_equals_unsharded_on_4_devices(runs, four_devices):
    _, _, m, _ = runs
    out = four_devices
    assert out["devices"] == 4 and out["sharded_over"] == 4
    assert out["padded"] == {"behavior": 4, "critic": 4, "policy": 4}
    diff = _max_diff(out["states"], jax.tree.leaves(m["states"]))
    print(f"sharded (4 devices) vs unsharded: max |diff| over all stages' states {diff:.2e}")
    assert diff < 1e-5
    np.testing.assert_allclose(out["eval"], [r["final_eval_return"] for r in m["runs"]], atol=1e-5)


@pytest.mark.slow
def test_batch_sharded_behavior_update_equals_unsharded(four_devices):
    out = four_devices
    assert out["batch_all_reduce"], "the batch-sharded update should all-reduce gradients across devices"
    print(f"run(shard_batch=True) vs the sharded runs, behavior states: max |diff| {out['shard_batch_run_diff']:.2e}")
    assert out["shard_batch_run_diff"] < 1e-5, out


def test_stage_points_and_swept_leaves():
    pts = sweep.grid(2, 5, beta=[0.1, 0.2], tau=[0.6, 0.8])  # 8 runs
    b, bi = stages.stage_points(pts, "behavior")
    c, ci = stages.stage_points(pts, "critic")
    p, pi = stages.stage_points(pts, "policy")
    assert b == [{"seed": 5}, {"seed": 6}] and bi == [0, 1] * 4
    assert c == [{"seed": 5, "tau": 0.6}, {"seed": 6, "tau": 0.6}, {"seed": 5, "tau": 0.8}, {"seed": 6, "tau": 0.8}]
    assert ci == [0, 1, 2, 3, 0, 1, 2, 3]  # grid order: seed fastest, then tau, then beta
    assert p == pts and pi == list(range(8))
    cfg = _cfg()
    algos = srpo.make(cfg, 1, 2)
    swept = sweep.grid(2, 0, policy_lr=[1e-3, 1e-2], critic_lr=[1e-4, 2e-4])
    shapes = jax.eval_shape(lambda: stages.init_all(algos, swept))
    assert shapes["critic"].hparams["tau"].shape == (4,) and shapes["policy"].hparams["beta"].shape == (8,)
    assert shapes["behavior"].step.shape == (2,)
    # the values of each stage's runs, set on concrete (zero-filled) stacked states: no network init to compile
    assert set(stages.point_values(stages.stage_points(swept, "critic")[0], "critic")) == {"critic_lr"}
    zeros = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), shapes)
    for stage, values in (("critic", {"critic_lr": [1e-4, 2e-4, 3e-4, 4e-4], "tau": [0.6, 0.7, 0.8, 0.9]}),
                          ("policy", {"beta": np.arange(8.0), "policy_lr": np.arange(8.0) / 100}),
                          ("behavior", {"behavior_lr": [1e-3, 2e-3]})):
        st = hparams_lib.set_hparams(zeros[stage], values)
        got = hparams_lib.get_hparams(st)
        for name, v in values.items():
            np.testing.assert_allclose(got[name], v, rtol=1e-6)
    with pytest.raises(ValueError, match="cannot sweep policy_width"):
        stages.check_points([{"seed": 0, "policy_width": 8.0}], cfg)
    with pytest.raises(ValueError, match="tau must be in"):
        stages.check_points(sweep.grid(1, 0, tau=[0.5, 1.5]), cfg)
    with pytest.raises(ValueError, match="appears twice"):
        stages.check_points([{"seed": 0}, {"seed": 0}], cfg)



@pytest.mark.slow
def test_launcher_num_seeds_and_beta_list(runs, tmp_path):
    """The launcher with --num_seeds and a list-valued --beta trains the very runs of srpo.run (the fixture's
    settings as flags, so its compiled programs come from the session's compilation cache)."""
    _, points, m, _ = runs
    wd = tmp_path / "run"
    res = launch("srpo_offline.py", "--env=bandit-imbalanced", "--num_seeds=2", "--beta=" + ",".join(map(str, BETAS)),
                 "--behavior_steps=60", "--critic_steps=50", "--policy_steps=60", "--policy_lr=3e-3",
                 "--log_every=20", "--checkpoint_every=0", "--eval_every=0", *srpo_tiny_flags(), f"--workdir={wd}")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["num_runs"] == 4 and out["sweep"] == {"beta": BETAS} and len(out["groups"]) == 2
    summary = json.loads((wd / "summary.json").read_text())
    assert [(r["seed"], r["beta"]) for r in summary["runs"]] == [(p["seed"], p["beta"]) for p in points]
    assert [r["eval"]["action"] for r in summary["runs"]] == [r["eval"]["action"] for r in m["runs"]]
    assert set(summary["groups"][1]["final_eval_score"]) >= {"mean", "std", "iqm", "ci95"}
    for f in ("metrics.jsonl", "config.json", "bandit.png", "curves_behavior.png", "curves_critic.png",
              "curves_policy.png"):
        assert (wd / f).exists(), f
    recs = [json.loads(x) for x in open(wd / "metrics.jsonl")]
    assert {(r["run"], r["seed"], r["beta"]) for r in recs if r["stage"] == "policy"} == {
        (i, p["seed"], p["beta"]) for i, p in enumerate(points)}
    act = srpo.load_policy(str(wd), seed=1, beta=BETAS[1])
    np.testing.assert_allclose(act(np.zeros((1, 1), np.float32))[0], summary["runs"][3]["eval"]["action"], atol=1e-6)
    bad = launch("srpo_offline.py", "--num_seeds=2", "--beta=0.1,abc", f"--workdir={tmp_path / 'bad'}")
    assert bad.returncode == 1 and "comma-separated list" in bad.stderr and "Traceback" not in bad.stderr
