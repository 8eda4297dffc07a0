"""Issue 11, bad command lines: every launcher refuses them in one line naming the flag and the fix, exit 1, no
traceback, no help dump; `--help` of the QVPO launcher explains every algorithm flag; the LICENSE file exists.

Each launcher's bad command lines run in ONE subprocess (conftest.launcher_cases), plus one plain subprocess per
table row that names a launcher, exactly as a user types it.
"""
import os
import re

import pytest
from conftest import ROOT, assert_one_line_error, launch, launcher_cases

from jaxdiff.train.checkpoint import Checkpointer

REGISTRY_HINT = "gymnasium.pprint_registry()"


def _damaged_checkpoint(directory):
    """A checkpoint directory whose only step has a truncated data file."""
    import numpy as np

    ck = Checkpointer(str(directory))
    ck.save(10, {"w": np.ones(64, np.float32)}, {"note": "test"})
    ck.close()
    data = [os.path.join(r, f) for r, _, fs in os.walk(directory / "10" / "state") for f in fs if "/d/" in r + "/"]
    with open(data[0], "r+b") as f:
        f.truncate(3)


def test_qvpo_launcher_refuses_bad_flags(tmp_path):
    _damaged_checkpoint(tmp_path / "damaged" / "checkpoints")
    os.makedirs(tmp_path / "done" / "checkpoints" / "5")
    cases = {
        "--n_d=abc": ["--n_d", "number"],
        "--n_d=0": ["--n_d=0", ">= 1"],
        "--chosen=4 --n_d=2": ["--chosen=4", "<= --n_d"],
        "--total_steps=-100": ["--total_steps=-100", "positive"],
        "--total_steps=abc": ["--total_steps=abc", "integer"],
        "--eval_every=0": ["--eval_every=0"],
        "--warmup_steps=-1": ["--warmup_steps=-1", ">= 0"],
        "--buffer_size=100 --warmup_steps=1000": ["--buffer_size=100", "--warmup_steps=1000"],
        "--num_seeds=0": ["--num_seeds=0"],
        "--env=Nonsense-v9": ["--env=Nonsense-v9", REGISTRY_HINT],
        "--env=hopper-v5": ["did you mean Hopper-v5"],
        "--critic_hidden=a,b": ["--critic_hidden", "number"],
        "--actor_lr=-1": ["--actor_lr=-1", "> 0"],
        "--n_d=4,8": ["cannot sweep n_d"],
        "--bogus=1": ["bogus", "--helpshort"],
        "--resume --overwrite": ["--resume and --overwrite"],
        f"--resume --workdir={tmp_path}/typo": ["--resume", f"{tmp_path}/typo", "drop --resume"],
        f"--resume --workdir={tmp_path}/damaged": ["step 10", "truncated", "--overwrite",
                                                   f"{tmp_path}/damaged/checkpoints"],
        f"--total_steps=10 --warmup_steps=5 --workdir={tmp_path}/done": ["--resume", "--overwrite",
                                                                          f"{tmp_path}/done"],
    }
    results = launcher_cases("qvpo_online.py", [c.split() for c in cases])
    for (argv, needles), (code, err, _) in zip(cases.items(), results):
        assert_one_line_error(code, err, *needles)


def test_srpo_launcher_refuses_bad_flags(tmp_path):
    _damaged_checkpoint(tmp_path / "damaged" / "checkpoints" / "behavior")
    cases = {
        "--behavior_batch=0": ["--behavior_batch=0", "positive"],
        "--policy_steps=-5": ["--policy_steps=-5", ">= 0"],
        "--critic_lr=0": ["--critic_lr=0", "> 0"],
        "--num_seeds=abc": ["--num_seeds=abc", "integer"],
        "--log_every=0": ["--log_every=0"],
        "--env=hopper-nonsense": ["--env", "short name"],
        "--beta=0.1,abc": ["--beta"],
        f"--resume --workdir={tmp_path}/typo": ["--resume", f"{tmp_path}/typo", "drop --resume"],
        f"--resume --workdir={tmp_path}/damaged": ["step 10", "truncated", "--overwrite"],
    }
    results = launcher_cases("srpo_offline.py", [c.split() for c in cases])
    for (argv, needles), (code, err, _) in zip(cases.items(), results):
        assert_one_line_error(code, err, *needles)


def test_other_launchers_refuse_bad_flags(tmp_path):
    cases = {
        "--env=Nonsense-v9": ["--env=Nonsense-v9", REGISTRY_HINT],
        "--quality=random --num_transitions=0": ["--num_transitions=0"],
        "--train_steps=100 --warmup_steps=200": ["--warmup_steps=200", "--train_steps=100"],
        "--train_steps=0": ["--train_steps=0"],
        "--quality=bogus": ["--quality=bogus", "random"],
    }
    for (argv, needles), (code, err, _) in zip(cases.items(), launcher_cases("collect_dataset.py",
                                                                              [c.split() for c in cases])):
        assert_one_line_error(code, err, *needles)
    cases = {f"--workdir={tmp_path}": ["--workdir", "srpo_offline.py"], "--eval_episodes=0": ["--eval_episodes=0"]}
    for (argv, needles), (code, err, _) in zip(cases.items(), launcher_cases("offline_baselines.py",
                                                                              [c.split() for c in cases])):
        assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize("script,args,needles", [
    ("qvpo_online.py", ["--total_steps=-100"], ["--total_steps=-100"]),
    ("qvpo_online.py", ["--n_d=abc"], ["--n_d"]),
    ("collect_dataset.py", ["--env=Nonsense-v9"], [REGISTRY_HINT]),
])
def test_a_user_typing_a_bad_flag_sees_one_line(script, args, needles):
    res = launch(script, *args)
    line = assert_one_line_error(res.returncode, res.stderr, *needles)
    assert line.startswith(f"{script}: error: ") and res.stdout == ""


def test_qvpo_help_explains_every_flag_and_what_can_be_swept():
    import dataclasses
    import runpy

    import jax

    from jaxdiff.train import hparams

    res = launch("qvpo_online.py", "--helpshort")  # absl prints help on stdout (and exits 1, as for --help)
    assert "--n_d" in res.stdout and "Traceback" not in res.stderr
    text = " ".join(res.stdout.split())
    g = runpy.run_path(os.path.join(ROOT, "experiments", "qvpo_online.py"), run_name="help_check")
    algos, help_text = g["ALGOS"], g["CONFIG_HELP"]
    expected: dict[str, set] = {}  # flag -> algorithms that can sweep it
    for name, algo in algos.items():
        agent = algo.make(algo.config_cls(), 3, 2)
        in_state = set(hparams.hparam_names(jax.eval_shape(agent.init, jax.random.PRNGKey(0))))
        assert set(algo.sweepable) == in_state, name  # what --help calls sweepable is what the state holds
        for f in dataclasses.fields(algo.config_cls):
            expected.setdefault(f.name, set()).update({name} if f.name in in_state else set())
    for flag, swept_by in expected.items():
        assert flag in help_text, f"--{flag} has no help text"
        m = re.search(rf"--(?:\[no\])?{flag}: (.*?)(?= --(?:\[no\])?[a-z_]+:|$)", text)
        assert m and help_text[flag] in m.group(1), flag
        listed = re.search(r"Sweepable \(([^)]*)\)", m.group(1))
        assert (set(listed.group(1).split(", ")) if listed else set()) == swept_by, flag
        assert listed or "One value only" in m.group(1), flag


def test_license_file_is_the_apache_license_pyproject_declares():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert 'license = { text = "Apache-2.0" }' in f.read()
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_results_scripts_refuse_bad_flags(tmp_path):
    """The issue-9 experiment scripts refuse bad input like the launchers (one line, exit 1)."""
    cases = {"--policy_steps=-5": ["--policy_steps=-5", "positive"],
             "--behavior_ladder=abc": ["--behavior_ladder=abc", "update counts"],
             "--critic_steps=1500": ["--critic_steps", "multiple of --chunk"],
             "--env=bandit-imbalanced": ["--env=bandit-imbalanced", "locomotion"]}
    results = launcher_cases("offline_compare.py", [c.split() for c in cases])
    for (argv, needles), (code, err, _) in zip(cases.items(), results):
        assert_one_line_error(code, err, *needles)
    r = launch("online_results.py", "--env=x", f"--runs=qvpo:{tmp_path}/none", f"--out={tmp_path}/o.json")
    assert_one_line_error(r.returncode, r.stderr, "--runs", "summary.json")
