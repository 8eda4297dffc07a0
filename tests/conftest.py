"""Shared helpers: run a launcher as a user would (a subprocess), or many bad command lines in one subprocess.

Every subprocess pays several seconds of JAX import, so `launcher_cases` parses and runs a list of command lines
inside ONE subprocess (flags reset between them, the launcher's own `cli` error handling around each), while
`launch` is the plain `python experiments/<script> ...` a user types.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One persistent XLA compilation cache for the whole session: the xdist workers and every launcher subprocess
# inherit it, so a program compiled once (the same chunk in a driver test, its launcher test and the regression
# fixture) is loaded, not recompiled. It cuts the suite by about a third on the 2-core CI machine; results are
# the same executables, so bit-identity checks are unaffected. Set by the controller (before xdist starts its
# workers) in a fresh directory, removed at the end; a caller's own JAX_COMPILATION_CACHE_DIR is kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE = tempfile.mkdtemp(prefix="jaxdiff-test-xla-cache-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
else:
    _OWN_CACHE = None


def pytest_unconfigure(config):
    """Remove the session's compilation cache (controller only: workers share the controller's directory)."""
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


# Tiny SRPO network and batch sizes shared by the SRPO driver tests (test_srpo_multi, test_srpo_pipeline): what
# they check is bookkeeping and equality, and equal sizes let their programs come from the compilation cache.
SRPO_TINY = dict(behavior_width=16, behavior_blocks=1, behavior_batch=32, critic_width=16, critic_batch=32,
                 policy_width=16, policy_batch=32)


def srpo_tiny_flags() -> list[str]:
    """SRPO_TINY as srpo_offline.py flags."""
    return [f"--{k}={v}" for k, v in SRPO_TINY.items()]


def launcher_env(**extra: str) -> dict:
    """The environment of a launcher subprocess: CPU JAX, this checkout first on the import path."""
    path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=path, **extra)


def launch(script: str, *args: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    """`python experiments/<script> <args>` from the repository root, output captured."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *args], cwd=ROOT,
                          env=launcher_env(**env), capture_output=True, text=True, timeout=timeout)


_CASES = r"""
import contextlib, io, json, runpy, sys
from absl import flags
script, cases = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [script]
main = runpy.run_path(script, run_name="launcher")["main"]
from jaxdiff.train import cli
out = []
for argv in cases:
    flags.FLAGS.unparse_flags()
    sys.argv = [script, *argv]
    err, std = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            cli.guarded(main)(cli.parse_flags(sys.argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:
            code, _ = 99, err.write(f"Traceback (uncaught) {type(e).__name__}: {e}")
    out.append([code, err.getvalue(), std.getvalue()])
print("RESULT" + json.dumps(out))
"""


def launcher_cases(script: str, cases: list[list[str]], timeout: int = 600, **env: str) -> list[tuple[int, str, str]]:
    """[(exit code, stderr, stdout)] of each command line in `cases`, all run in one subprocess."""
    res = subprocess.run([sys.executable, "-c", _CASES, os.path.join(ROOT, "experiments", script), json.dumps(cases)],
                         cwd=ROOT, env=launcher_env(**env), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0 and "RESULT" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]
    return [tuple(x) for x in json.loads(res.stdout.split("RESULT", 1)[1])]


def assert_one_line_error(code: int, stderr: str, *needles: str, exit_code: int = 1) -> str:
    """A refusal as the issue asks: exit code 1 (or exit_code), one line on stderr containing every needle, no
    traceback, no help dump. Returns the line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == exit_code, (code, stderr[-2000:])
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr and "USAGE" not in stderr and "flags:" not in stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def random_batch(key, rows: int, obs_dim: int, action_dim: int, done_every: int = 3):
    """A Transition of `rows` random rows (actions in [-1, 1]; done = 1 on every done_every-th row, 0 = never)."""
    import jax
    import jax.numpy as jnp

    from jaxdiff.algorithm import Transition

    k = jax.random.split(key, 4)
    done = (jnp.arange(rows) % done_every == 0) if done_every else jnp.zeros(rows, bool)
    return Transition(obs=jax.random.normal(k[0], (rows, obs_dim)),
                      action=jax.random.uniform(k[1], (rows, action_dim), minval=-1.0, maxval=1.0),
                      reward=jax.random.normal(k[2], (rows,)), next_obs=jax.random.normal(k[3], (rows, obs_dim)),
                      done=done.astype(jnp.float32))


def kill_after_save(monkeypatch, directory_suffix: str, step: int):
    """Simulate a kill: Checkpointer.save raises KeyboardInterrupt right after it has written `step` into a
    directory ending with `directory_suffix` (e.g. os.path.join("checkpoints", "critic")). Returns a function that
    puts the real save back."""

    from jaxdiff.train import checkpoint as ckpt_lib

    real_save = ckpt_lib.Checkpointer.save

    def save_then_die(self, s, state, config=None):
        real_save(self, s, state, config)
        if self.directory.endswith(directory_suffix) and s == step:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(ckpt_lib.Checkpointer, "save", save_then_die)
    return lambda: monkeypatch.setattr(ckpt_lib.Checkpointer, "save", real_save)
