"""Record the regression fixtures of tests/test_regression.py on TODAY's code (run once, before a redesign).

    PYTHONPATH=. JAX_PLATFORMS=cpu python tests/regression/record.py            # every case (the toy default: minutes)
    PYTHONPATH=. JAX_PLATFORMS=cpu python tests/regression/record.py srpo sac   # only these cases

Writes tests/regression/data/<case>.npz (unit cases: arrays keyed by component / flax path) or <case>.json (driver
cases: the floats read from the launchers' outputs), and meta.json (commit, versions, command, per-case time).
The cases themselves are defined in tests/test_regression.py, so recording and checking compute the same thing.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402

import test_regression as tr  # noqa: E402


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def main(names: list[str]) -> None:
    import flax
    import jax
    import optax

    os.makedirs(tr.DATA, exist_ok=True)
    meta_path = os.path.join(tr.DATA, "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {"cases": {}}
    names = names or [*tr.UNIT_CASES, *tr.DRIVER_CASES]
    for name in names:
        t0 = time.time()
        if name in tr.UNIT_CASES:
            np.savez(os.path.join(tr.DATA, f"{name}.npz"), **tr.UNIT_CASES[name]())
        else:
            with tempfile.TemporaryDirectory() as tmp:
                values = tr.run_driver(name, tmp)
            with open(os.path.join(tr.DATA, f"{name}.json"), "w") as f:
                json.dump(values, f, indent=1, sort_keys=True)
        meta["cases"][name] = {"seconds": round(time.time() - t0, 1),
                               "launcher_args": tr.DRIVER_CASES[name][1] if name in tr.DRIVER_CASES else None}
        print(f"{name}: {meta['cases'][name]['seconds']} s", flush=True)
    dirty = _git("status", "--porcelain", "--", "jaxdiff", "experiments")
    meta.update(commit=_git("rev-parse", "HEAD"), library_dirty=bool(dirty), jax=jax.__version__,
                flax=flax.__version__, optax=optax.__version__, numpy=np.__version__, python=platform.python_version(),
                platform=platform.platform(), backend=jax.default_backend(),
                command="PYTHONPATH=. JAX_PLATFORMS=cpu python tests/regression/record.py " + " ".join(sys.argv[1:]),
                recorded_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
