"""Issue 11, runs that go wrong: damaged checkpoints are skipped (resume continues from the newest readable one),
divergence stops a run with one line naming stage / step / metric / flag and keeps the last finite checkpoint,
summaries are valid JSON, act() checks its input, progress lines appear without a terminal."""
import io
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_online_runner import _cfg, dummy_agent

import jaxdiff
from jaxdiff import srpo
from jaxdiff.train import cli, divergence, online
from jaxdiff.train import logging as logging_lib
from jaxdiff.train.checkpoint import MARK, CheckpointError, Checkpointer

TINY = dict(behavior_width=16, behavior_blocks=1, behavior_batch=32, critic_width=16, critic_batch=32,
            policy_width=16, policy_batch=32)


def _data_files(step_dir):
    return [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state")) for f in fs
            if r.endswith(os.sep + "d")]


def _truncate(step_dir):
    with open(_data_files(step_dir)[0], "r+b") as f:
        f.truncate(3)


def _strict_json(text):
    """json.loads that refuses NaN / Infinity (which Python's json would accept)."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))


# ----------------------------------------------------------------------------------------------- checkpoints
def test_damaged_checkpoints_are_skipped_with_one_line_each(tmp_path, caplog):
    d = tmp_path / "ck"
    ck = Checkpointer(str(d), max_to_keep=None)
    for s in (1, 2, 3, 4):
        ck.save(s, {"w": np.full(8, s, np.float32)}, {"s": s})
    target = {"w": np.zeros(8, np.float32)}
    _truncate(d / "4")  # a truncated data file: found by the completeness mark's sizes
    os.remove(d / "3" / MARK)  # written but never marked complete (killed in between): never resumed from
    for p in _data_files(d / "2"):  # same size, garbage inside: orbax cannot read it
        with open(p, "r+b") as f:
            f.write(b"\0" * os.path.getsize(p))
    with caplog.at_level(logging.WARNING, "jaxdiff.checkpoint"):
        step, state = ck.restore(target)
    assert step == 1 and float(state["w"][0]) == 1.0
    lines = [r.getMessage() for r in caplog.records if r.name == "jaxdiff.checkpoint"]
    assert len(lines) == 3 and all("\n" not in ln for ln in lines)
    assert "step 4" in lines[0] and "truncated" in lines[0]
    assert "step 3" in lines[1] and "never marked complete" in lines[1]
    assert "step 2" in lines[2] and "could not be read" in lines[2]
    _truncate(d / "1")
    with pytest.raises(CheckpointError, match=rf"no readable checkpoint in {d}.*--overwrite"):
        ck.restore(target)
    ck.close()


def test_online_resume_skips_a_truncated_step_and_reports_progress(tmp_path, monkeypatch, capsys, caplog):
    agent = dummy_agent(2, 1)
    wd = str(tmp_path / "run")
    online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=20, checkpoint_every=10), wd)
    _truncate(os.path.join(wd, "checkpoints", "20"))
    monkeypatch.setenv("JAXDIFF_PROGRESS_SECONDS", "0")  # stderr is not a terminal here: timed lines, not a bar
    s = online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=30, checkpoint_every=10, progress=None), wd,
                       resume=True)
    assert s["resumed_from"] == 10 and s["env_steps"] == 30
    assert any("skipping checkpoint step 20" in r.getMessage() and "truncated" in r.getMessage()
               for r in caplog.records)
    err = capsys.readouterr().err
    assert "step 30/30 (100 %)" in err and "steps/s, ETA" in err
    # nothing readable left: one error naming the directory and --overwrite
    for step in os.listdir(os.path.join(wd, "checkpoints")):
        _truncate(os.path.join(wd, "checkpoints", step))
    with pytest.raises(CheckpointError, match="--overwrite"):
        online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=40), wd, resume=True)


def test_srpo_resume_skips_a_truncated_step_and_divergence_stops_the_stage(tmp_path, caplog, capsys):
    cfg = srpo.configure("bandit-imbalanced", critic_steps=20, **TINY)
    run = srpo.RunConfig(workdir=str(tmp_path / "a"), stage="critic", log_every=10, checkpoint_every=10,
                             progress_bar=False, plots=False)
    srpo.run(run, cfg)
    _truncate(tmp_path / "a" / "checkpoints" / "critic" / "20")
    with caplog.at_level(logging.INFO):
        s = srpo.run(srpo.RunConfig(**{**run.__dict__, "resume": True}), cfg)
    assert s["stages"]["critic"]["steps"] == 20
    assert any("skipping checkpoint step 20" in r.getMessage() for r in caplog.records)
    assert any("restored step 10" in r.getMessage() for r in caplog.records)

    # rewards of 1e38 (the same compiled chunk as above; a huge --critic_lr does the same but compiles again):
    # the critic goes non-finite; the launcher's error handling gives one line and exit code 2
    ds = srpo.load_dataset("bandit-imbalanced")
    ds.data = ds.data.replace(reward=ds.data.reward * 1e38)
    wd = tmp_path / "b"
    with pytest.raises(SystemExit) as e:
        cli.guarded(lambda argv: srpo.run(srpo.RunConfig(**{**run.__dict__, "workdir": str(wd)}), cfg,
                                          dataset=ds))(["x"])
    assert e.value.code == cli.EXIT_DIVERGED
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "critic stage diverged at step 10" in line and "--critic_lr" in line
    assert "q_loss is nan" in line or "is inf" in line
    records = [_strict_json(ln) for ln in open(wd / "metrics.jsonl")]  # valid JSON: null for the NaN values
    assert records[-1]["step"] == 10 and None in records[-1].values()
    assert not os.listdir(wd / "checkpoints" / "critic")  # the non-finite state was never saved


def test_online_divergence_keeps_the_last_finite_checkpoint(tmp_path):
    base = dummy_agent(2, 1)

    def update(st, batch, key):  # finite for 12 updates, then NaN in the metrics and the state
        st, m = base.update(st, batch, key)
        nan = jnp.where(st["n"] > 12, jnp.nan, 0.0)
        return {**st, "m": st["m"] + nan}, {**m, "critic_loss": m["loss"] + nan}

    agent = base._replace(update=update)
    wd = str(tmp_path / "div")
    with pytest.raises(divergence.DivergenceError) as e:
        online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=40, checkpoint_every=10), wd)
    msg = str(e.value)
    assert "diverged at step 25" in msg and "agent/critic_loss is nan" in msg and "--critic_lr" in msg
    assert "last finite checkpoint (step 20)" in msg  # updates 1-12 (steps 10-21) were finite
    assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == ["10", "20"]


def test_summaries_are_valid_json_never_nan(tmp_path):
    obj = {"score": float("nan"), "curve": [1.0, float("inf")], "arr": np.array([np.nan, 2.0])}
    assert _strict_json(logging_lib.dumps(obj)) == {"score": None, "curve": [1.0, None], "arr": [None, 2.0]}
    logging_lib.write_json(str(tmp_path / "s.json"), obj)
    assert _strict_json(open(tmp_path / "s.json").read())["score"] is None


# ----------------------------------------------------------------------------------------------- act input
def _check_act(act, obs_dim, action_dim, *extra):
    one = np.zeros(obs_dim, np.float32)
    assert np.shape(act(one, *extra)) == (action_dim,)
    assert np.shape(act(list(one), *extra)) == (action_dim,)
    assert np.shape(act(jnp.zeros((5, obs_dim)), *extra)) == (5, action_dim)
    assert np.shape(act(np.zeros((2, obs_dim)).tolist(), *extra)) == (2, action_dim)
    for bad in (np.zeros(obs_dim + 1), np.zeros((1, 2, obs_dim)), np.zeros((3, obs_dim + 2)), "obs", [[1.0], [1.0, 2.0]]):
        with pytest.raises(ValueError, match=rf"shape \({obs_dim},\) or \(batch, {obs_dim}\)"):
            act(bad, *extra)


def _zeros_like(init):
    """A state of init()'s structure filled with zeros: traced, not compiled (act only needs shapes here)."""
    return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(init))


def test_srpo_and_qvpo_act_accept_one_or_a_batch_and_refuse_other_shapes(tmp_path):
    from jaxdiff import qvpo

    ds = srpo.load_dataset("bandit-imbalanced")
    cfg = srpo.configure("bandit-imbalanced", **TINY)
    wd = str(tmp_path / "srpo")
    algos = srpo.make(cfg, ds.obs_dim, ds.action_dim)
    k = jax.random.PRNGKey(0)
    jaxdiff.save(wd, algos.policy, _zeros_like(lambda: algos.policy.init(k, algos.behavior.init(k),
                                                                          algos.critic.init(k))))
    _check_act(srpo.load_policy(wd), ds.obs_dim, ds.action_dim)

    qc = qvpo.QVPOConfig(batch_size=4, diffusion_steps=2, n_d=2, k_b=1, k_t=1, k_eval=2, n_uniform=0,
                         actor_hidden=8, actor_layers=1, critic_hidden=(8,))
    algo = qvpo.make(qc, 3, 2)
    wd = str(tmp_path / "qvpo")
    jaxdiff.save(wd, algo, _zeros_like(lambda: algo.init(jax.random.PRNGKey(0))))
    act = jaxdiff.load_policy(wd)
    _check_act(act, 3, 2, jax.random.PRNGKey(1))


def test_progress_line_names_stage_step_rate_eta_and_metric():
    out = io.StringIO()
    bar = logging_lib.LineProgress(200, "critic", initial=50, interval=0.0, stream=out)
    bar.set_postfix({"q_loss": "0.5"})
    bar.update(50)
    first, line = out.getvalue().strip().splitlines()
    assert first == "critic: starting at step 50/200"
    assert line.startswith("critic: step 100/200 (50 %), ") and "steps/s, ETA " in line and "q_loss=0.5" in line
    assert isinstance(logging_lib.progress(10, "x"), logging_lib.LineProgress)  # pytest's stderr is no terminal


# ----------------------------------------------------------------------------------------------- TensorBoard
def read_scalars(logdir):
    """{tag: [(step, value)]} from the TensorBoard event files under logdir (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict = {}
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), "rb") as f:
            data = f.read()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            ev = event_pb2.Event.FromString(data[i + 12:i + 12 + n])  # length, its crc, the record, its crc
            i += 12 + n + 4
            for v in ev.summary.value:
                out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


def test_tensorboard_event_files_hold_the_metrics(tmp_path):
    agent = dummy_agent(2, 1)
    wd = tmp_path / "tb"
    online.run_gym(agent, "JaxdiffCounter-v0", _cfg(total_steps=20, eval_every=10, tensorboard=True), str(wd))
    scalars = read_scalars(wd / "tensorboard")
    jsonl = [json.loads(ln) for ln in open(wd / "metrics.jsonl")]
    want = [(r["env_step"], r["agent/loss"]) for r in jsonl if "agent/loss" in r]
    assert want and [(s, pytest.approx(v)) for s, v in want] == scalars["run0/agent/loss"]  # one run = run 0
    assert [s for s, _ in scalars["run0/eval/return_mean"]] == [10, 20]
    # SRPO / multi-run records: tags carry the stage and the run; NaN is left out
    step, tags = logging_lib.tensorboard_scalars({"stage": "critic", "step": 5, "run": 1, "q_loss": 0.5,
                                                  "v_loss": float("nan"), "seed": 3})
    assert step == 5 and tags == {"critic/run1/q_loss": 0.5}
