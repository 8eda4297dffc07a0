"""Peak dense matmul throughput by device name (vendor datasheets, TFLOP/s, WITHOUT the 2:4-sparsity doubling).

`peaks_for(device_kind)` matches `jax.devices()[0].device_kind` (e.g. "NVIDIA H200", "NVIDIA A100-SXM4-80GB") by
case-insensitive substring, most specific entry first; unknown devices and CPUs give None (printed as n/a).
`reference_peak` picks the peak the float32 matmuls actually run at: on Ampere and newer NVIDIA GPUs JAX's default
precision computes float32 dots with TF32 tensor cores, so "default" compares against TF32 where the device has it.
"""
from __future__ import annotations

# (substring, {"float32": CUDA-core FP32, "tf32": TF32 tensor core, "bf16": BF16 tensor core}); None = not supported.
PEAKS: list[tuple[str, dict[str, float | None]]] = [
    ("GH200", {"float32": 67.0, "tf32": 494.7, "bf16": 989.4}),
    ("H200 NVL", {"float32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H200", {"float32": 67.0, "tf32": 494.7, "bf16": 989.4}),
    ("H100 NVL", {"float32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H100 PCIe", {"float32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"float32": 67.0, "tf32": 494.7, "bf16": 989.4}),
    ("A100", {"float32": 19.5, "tf32": 156.0, "bf16": 312.0}),
    ("L40S", {"float32": 91.6, "tf32": 183.0, "bf16": 362.0}),
    ("L40", {"float32": 90.5, "tf32": 90.5, "bf16": 181.0}),
    ("L4", {"float32": 30.3, "tf32": 60.0, "bf16": 121.0}),
    ("V100", {"float32": 15.7, "tf32": None, "bf16": None}),
    ("T4", {"float32": 8.1, "tf32": None, "bf16": None}),
]


def peaks_for(device_kind: str, platform: str = "gpu") -> dict | None:
    """{"name", "float32", "tf32", "bf16"} for a device kind, or None (CPU, or a device not in the table)."""
    if platform == "cpu":
        return None
    kind = device_kind.lower()
    for name, p in PEAKS:
        if name.lower() in kind:
            return {"name": name, **p}
    return None


def reference_peak(peaks: dict | None, precision: str | None) -> tuple[str, float | None]:
    """(label, TFLOP/s) of the peak that float32 matmuls run at under jax_default_matmul_precision `precision`."""
    if peaks is None:
        return "n/a", None
    if precision in ("bfloat16", "fastest"):
        return "bf16", peaks["bf16"]
    if precision in ("float32", "highest"):
        return "float32", peaks["float32"]
    if peaks["tf32"] is not None:  # default / tensorfloat32 / high
        return "tf32", peaks["tf32"]
    return "float32", peaks["float32"]
