"""Shared benchmark helpers: hardware description and a timer that excludes compilation."""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Callable

import jax


def hardware() -> str:
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        return f"CPU: {cpu}, {os.cpu_count()} cores (jax {jax.__version__})"
    return f"{dev.platform.upper()}: {dev.device_kind} (jax {jax.__version__})"


def time_per_call(fn: Callable[[], object], min_seconds: float = 2.0, min_calls: int = 3) -> float:
    """Seconds per call of fn() (which must block), after one warm-up call that includes compilation."""
    jax.block_until_ready(fn())
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        jax.block_until_ready(fn())
        calls += 1
    return (time.perf_counter() - start) / calls


def write_result(path: str, out: dict) -> None:
    """Write a benchmark's result dict to `path` as indented JSON (key order kept), creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
