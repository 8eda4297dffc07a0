"""Analytic FLOP counts per update / per call, as small functions of the layer sizes (no jax, no jaxdiff).

What is counted: matrix multiplications only. A dense layer on `rows` inputs of width `fan_in` to `fan_out`
outputs costs 2 * rows * fan_in * fan_out FLOPs (one multiply and one add per weight per row). A backward pass
costs 2x its forward (gradient with respect to the inputs and to the weights), so one training step of a network
costs 3x its forward (`TRAIN`). A vector-Jacobian product with respect to the inputs only costs 1x forward more.
Not counted: activations, LayerNorm, the Fourier/sinusoidal features, the optimizer, random numbers, gathers of
the minibatch, and the (unneeded) input gradient of a first layer, which the 3x rule includes anyway. So the
counts are the work a tensor core can do; the achieved TFLOP/s derived from them is a lower bound on what the
device executed and an honest "fraction of peak" for matmul-bound programs.

Sizes are plain integers; `benchmarks/gpu_report.py` reads them from the jaxdiff configs.
"""
from __future__ import annotations

from typing import Sequence

TRAIN = 3.0  # forward + backward (2x forward)


def dense(rows: float, fan_in: int, fan_out: int) -> float:
    """FLOPs of x @ W for x (rows, fan_in), W (fan_in, fan_out): 2 m n k."""
    return 2.0 * rows * fan_in * fan_out


def mlp(rows: float, sizes: Sequence[int]) -> float:
    """Forward FLOPs of a dense stack with layer widths sizes = (in, hidden..., out)."""
    return sum(dense(rows, a, b) for a, b in zip(sizes[:-1], sizes[1:]))


# ----------------------------------------------------------------------------------------------------------------
# SRPO (behavior LN-ResNet, IQL critic, Dirac policy)
# ----------------------------------------------------------------------------------------------------------------


def srpo_behavior_forward(rows: float, obs_dim: int, action_dim: int, width: int, blocks: int,
                          fourier: int = 64, temb: int = 128) -> float:
    """LN-ResNet eps(a_t, t, s): time MLP (fourier -> temb -> temb), input (a + s + temb -> width), `blocks` x
    (width -> 4 width -> width), head (width -> a)."""
    time_mlp = mlp(rows, (fourier, temb, temb))
    body = dense(rows, action_dim + obs_dim + temb, width) + blocks * mlp(rows, (width, 4 * width, width))
    return time_mlp + body + dense(rows, width, action_dim)


def srpo_critic_forward(rows: float, obs_dim: int, action_dim: int, width: int, layers: int) -> tuple[float, float]:
    """(twin Q forward, V forward) on `rows` states: Q is two MLPs (s + a -> width^layers -> 1), V one
    (s -> width^layers -> 1)."""
    hidden = (width,) * layers
    return 2.0 * mlp(rows, (obs_dim + action_dim, *hidden, 1)), mlp(rows, (obs_dim, *hidden, 1))


def srpo_policy_forward(rows: float, obs_dim: int, action_dim: int, width: int, layers: int) -> float:
    """Dirac policy pi(s) = tanh(MLP(s)) forward: one act call on `rows` states."""
    return mlp(rows, (obs_dim, *(width,) * layers, action_dim))


def srpo_behavior_update(s: dict) -> float:
    """One behavior step: train (3x forward) on behavior_batch rows."""
    return TRAIN * srpo_behavior_forward(s["behavior_batch"], s["obs_dim"], s["action_dim"], s["behavior_width"],
                                         s["behavior_blocks"])


def srpo_critic_update(s: dict) -> float:
    """One IQL step: target twin-Q and V(s') forwards, then V and twin Q trained (3x forward each)."""
    q, v = srpo_critic_forward(s["critic_batch"], s["obs_dim"], s["action_dim"], s["critic_width"], s["critic_layers"])
    return (1.0 + TRAIN) * (q + v)


def srpo_policy_update(s: dict) -> float:
    """One extraction step: policy trained (3x), frozen behavior eps forward (1x), target twin Q forward + its
    vjp with respect to the action (2x)."""
    b = s["policy_batch"]
    pol = srpo_policy_forward(b, s["obs_dim"], s["action_dim"], s["policy_width"], s["policy_layers"])
    eps = srpo_behavior_forward(b, s["obs_dim"], s["action_dim"], s["behavior_width"], s["behavior_blocks"])
    q, _ = srpo_critic_forward(b, s["obs_dim"], s["action_dim"], s["critic_width"], s["critic_layers"])
    return TRAIN * pol + eps + 2.0 * q


def dpm_solver(rows: float, steps: int, s: dict) -> float:
    """DPM-Solver sampling from the behavior model: one network evaluation per step."""
    return steps * srpo_behavior_forward(rows, s["obs_dim"], s["action_dim"], s["behavior_width"], s["behavior_blocks"])


# ----------------------------------------------------------------------------------------------------------------
# QVPO (DDPM Mish-MLP actor, twin-Q critic)
# ----------------------------------------------------------------------------------------------------------------


def qvpo_chain(rows: float, s: dict) -> float:
    """A T-step ancestral sampling chain on `rows` rows, as the chain evaluates it: the obs projection once per
    chain, per step the action part of the first layer, the hidden layers and the output, and the time embedding
    once per step (one row, shared)."""
    o, a, h, L, td, T = s["obs_dim"], s["action_dim"], s["actor_hidden"], s["actor_layers"], 32, s["T"]
    per_step = dense(rows, a, h) + (L - 1) * dense(rows, h, h) + dense(rows, h, a)
    temb = mlp(1, (td, 256, td)) + dense(1, td, h)
    return dense(rows, o, h) + T * (per_step + temb)


def qvpo_actor_forward(rows: float, s: dict) -> float:
    """The full noise net on `rows` rows (loss path): per-row time MLP (32 -> 256 -> 32) and the MLP on
    (a + 32 + s -> hidden^layers -> a)."""
    o, a, h, L = s["obs_dim"], s["action_dim"], s["actor_hidden"], s["actor_layers"]
    return mlp(rows, (32, 256, 32)) + mlp(rows, (a + 32 + o, *(h,) * L, a))


def qvpo_twin_q(rows: float, s: dict) -> float:
    """Twin-Q forward on `rows` (state, action) pairs."""
    return 2.0 * mlp(rows, (s["obs_dim"] + s["action_dim"], *s["critic_hidden"], 1))


def qvpo_best_of(rows: float, k: int, s: dict) -> float:
    """Best of k: a chain on rows * k rows, then twin Q on them."""
    return qvpo_chain(rows * k, s) + qvpo_twin_q(rows * k, s)


def qvpo_update(s: dict) -> float:
    """One QVPO update (batch B critic half + B actor half): target best-of-k_t, critic trained on B rows,
    n_d samples per actor state scored by the critic, actor loss trained on B * chosen * (1 + n_uniform) rows."""
    B = s["batch"]
    rows_loss = B * s["chosen"] * (1 + (s["n_uniform"] if s["entropy_rows"] else 0))
    return (qvpo_best_of(B, s["k_t"], s) + TRAIN * qvpo_twin_q(B, s) + qvpo_best_of(B, s["n_d"], s)
            + TRAIN * qvpo_actor_forward(rows_loss, s))
