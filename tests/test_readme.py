"""Every ```python block of README.md runs as written (each in a fresh interpreter, from a scratch directory)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, launcher_env

README = os.path.join(ROOT, "README.md")


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each ```python block in README.md."""
    text = open(README).read()
    out = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        out.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return out


BLOCKS = python_blocks()


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path):
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=launcher_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, f"README.md:{line} failed:\n{res.stderr[-3000:]}"
