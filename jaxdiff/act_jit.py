"""`jit_act`: jax.jit for the acting paths (evaluation, `load_policy`), with XLA:CPU's fused dense layers.

On CPU, XLA 0.10 sends every matmul alone to YNNPACK (LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT) and runs the bias add and
activation as separate loops. Asking it to fuse "dot + its elementwise epilogue" into one YNNPACK call
(LIBRARY_FUSION_TYPE_DOT) makes SRPO's 2 x 256 policy at batch 256 ~1.2x faster on a 2-core AVX-512 CPU. SRPO's
ReLU policy gives bit-identical actions; nets whose tanh / Mish epilogue YNNPACK computes (QVPO, SAC) differ by at
most 2 ulp (`tests/test_act_jit.py`; `benchmarks/bench_act.py`). Training programs keep the default:
their backward matmuls were not checked bit for bit. Other backends get a plain jax.jit.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

CPU_ACT_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def act_compiler_options() -> dict[str, str] | None:
    """The compiler options `jit_act` uses here: CPU_ACT_OPTIONS on a CPU backend whose XLA accepts them, else None."""
    if jax.default_backend() != "cpu":
        return None
    try:  # an XLA without this option (or enum value) rejects it at compile time: fall back to the default
        jax.jit(lambda x: x @ x, compiler_options=CPU_ACT_OPTIONS).lower(jnp.ones((2, 2))).compile()
    except Exception:  # noqa: BLE001 - any rejection means "not available here"
        return None
    return dict(CPU_ACT_OPTIONS)


def jit_act(fn: Callable[..., Any], **jit_kwargs: Any) -> Callable[..., Any]:
    """jax.jit(fn, **jit_kwargs) with `act_compiler_options()`: use it for inference-only functions."""
    return jax.jit(fn, compiler_options=act_compiler_options(), **jit_kwargs)
