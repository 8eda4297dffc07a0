"""Network definitions (flax.linen), with explicit (obs, action, t) inputs.

Layers are initialised as the official PyTorch code initialises them, because its tuned hyperparameters (beta,
learning rates) were found with that init: by default PyTorch's nn.Linear init (weights and biases
~ U(+-1/sqrt(fan_in))), which the official SRPO code uses; `param_init="qvpo"` is the official QVPO code's
`init_weights` (weights ~ N(0, (1 / (2 sqrt(fan_in)))^2), not truncated in effect, biases 0). LayerNorm uses
eps=1e-5 for the same reason. BUILD_NOTES.md records these choices.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def mish(x: jax.Array) -> jax.Array:
    """Mish activation, x * tanh(softplus(x)) (torch.nn.Mish)."""
    return x * jnp.tanh(jax.nn.softplus(x))


def mish_fast(x: jax.Array) -> jax.Array:
    """Mish with one exp instead of exp + log1p + tanh: tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2).

    Equal to `mish` to ~1e-7 (values and gradients); about 2x faster on CPU, where Mish dominates the cost of
    QVPO's sampling chains. For x > 20 it returns x (tanh(softplus(x)) == 1 in float32 there).
    """
    e = jnp.exp(jnp.minimum(x, 20.0))
    n = e * (e + 2.0)
    return jnp.where(x > 20.0, x, x * n / (n + 2.0))


MATMUL_DTYPES = ("float32", "bfloat16")


def matmul(x: jax.Array, w: jax.Array, dtype: str = "float32") -> jax.Array:
    """x @ w; with dtype="bfloat16" both operands are rounded to bf16 and the product accumulates in float32
    (the parameters stay float32: only the matmul inputs are cast). "float32" is the plain x @ w."""
    if dtype == "float32":
        return x @ w
    if dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul dtype must be one of {MATMUL_DTYPES}, got {dtype!r}")
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


def _torch_uniform(bound: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


INITS = ("torch", "qvpo")


def _qvpo_normal(std: float):
    # The official QVPO init_weights draws N(0, std^2) and then loops to redraw values outside +-2 std, but the
    # redrawn tensor is never written back into the parameter, so the weights keep the plain normal draw.
    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)

    return init


class Dense(nn.Module):
    """Affine layer with the official code's init.

    param_init="torch" (default): PyTorch's nn.Linear default, kernel and bias ~ U(+-1/sqrt(fan_in)).
    param_init="qvpo": the official QVPO code, kernel ~ N(0, (1 / (2 sqrt(fan_in)))^2), bias 0.
    matmul_dtype: "float32" (default) or "bfloat16" (bf16 inputs, float32 accumulation; see `matmul`).
    """

    features: int
    param_init: str = "torch"
    matmul_dtype: str = "float32"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        if self.param_init == "torch":
            bound = 1.0 / math.sqrt(fan_in)
            k_init, b_init = _torch_uniform(bound), _torch_uniform(bound)
        elif self.param_init == "qvpo":
            k_init, b_init = _qvpo_normal(1.0 / (2.0 * math.sqrt(fan_in))), nn.initializers.zeros
        else:
            raise ValueError(f"param_init must be one of {INITS}, got {self.param_init!r}")
        kernel = self.param("kernel", k_init, (fan_in, self.features))
        bias = self.param("bias", b_init, (self.features,))
        return matmul(x, kernel, self.matmul_dtype) + bias


class MLP(nn.Module):
    """Dense stack; activation after every hidden layer, none after the output layer."""

    hidden: Sequence[int]
    out_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    param_init: str = "torch"  # see Dense

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden:
            x = self.activation(Dense(width, self.param_init)(x))
        return Dense(self.out_dim, self.param_init)(x)


class GaussianFourierFeatures(nn.Module):
    """[sin(2 pi t W), cos(2 pi t W)] with W ~ N(0, scale^2) FIXED at init.

    W lives in the 'constants' collection, not 'params': it is saved and restored with the model but an
    optimizer over params never touches it (the official code sets requires_grad=False).
    """

    half_dim: int = 32
    scale: float = 30.0

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        w = self.variable(
            "constants", "W", lambda: self.scale * jax.random.normal(self.make_rng("params"), (self.half_dim,))
        ).value
        proj = t[..., None] * w * 2.0 * jnp.pi
        return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)


def sinusoidal_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Transformer-style embedding of (integer) diffusion steps, as Diffusion-QL's SinusoidalPosEmb."""
    half = dim // 2
    freqs = jnp.exp(jnp.arange(half) * -(math.log(10000.0) / (half - 1)))
    args = t.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


class LNResNetNoiseNet(nn.Module):
    """SRPO / IDQL behavior noise net eps(a_t, t, s) for the continuous-time VP-SDE.

    time: Fourier(32 -> 64) -> Dense 128 -> Mish -> Dense 128; input concat(a_t, s, t_emb) -> Dense 256;
    n_blocks x [x + Dense(Mish(Dense_4w(LayerNorm(Dropout(x)))))]; head Mish -> Dense a_dim.
    Dropout is active only when `train=True` (an rng named 'dropout' must then be given).
    """

    action_dim: int
    width: int = 256
    n_blocks: int = 3
    dropout: float = 0.1
    fourier_scale: float = 30.0
    layer_norm_eps: float = 1e-5
    matmul_dtype: str = "float32"  # "bfloat16": bf16 matmul inputs, float32 params / accumulation / LayerNorm

    @nn.compact
    def __call__(self, a_t: jax.Array, t: jax.Array, obs: jax.Array, train: bool = False) -> jax.Array:
        dense = lambda n: Dense(n, matmul_dtype=self.matmul_dtype)  # noqa: E731
        temb = GaussianFourierFeatures(32, self.fourier_scale)(t)
        temb = dense(128)(mish(dense(128)(temb)))
        x = dense(self.width)(jnp.concatenate([a_t, obs, temb], axis=-1))
        for _ in range(self.n_blocks):
            h = nn.Dropout(self.dropout, deterministic=not train)(x)
            h = nn.LayerNorm(epsilon=self.layer_norm_eps)(h)
            h = dense(self.width)(mish(dense(4 * self.width)(h)))
            x = x + h
        return dense(self.action_dim)(mish(x))


class MishMLPNoiseNet(nn.Module):
    """QVPO (DIPO) noise net eps(x_t, t, s) for the discrete DDPM; t is the integer step.

    time: sinusoidal(32) -> Dense 256 -> Mish -> Dense 32; concat(x_t, t_emb, s) -> 3 x (Dense 256, Mish) -> a_dim.
    `t` may also have shape () or (1,) (one step shared by every row, as in a sampling chain): the time embedding is
    then computed once and broadcast, which saves a Dense 256 + Mish per row. `activation` may be `mish_fast`
    (same function, cheaper); parameters are identical whichever is used.
    """

    action_dim: int
    hidden: int = 256
    n_hidden: int = 3
    t_dim: int = 32
    activation: Callable[[jax.Array], jax.Array] = mish
    param_init: str = "torch"  # see Dense; QVPOConfig.param_init picks "qvpo" (the official QVPO code's) for QVPO

    @nn.compact
    def __call__(self, x_t: jax.Array, t: jax.Array, obs: jax.Array) -> jax.Array:
        temb = sinusoidal_embedding(t, self.t_dim)
        temb = Dense(self.t_dim, self.param_init)(self.activation(Dense(256, self.param_init)(temb)))
        temb = jnp.broadcast_to(temb, x_t.shape[:-1] + (self.t_dim,))
        x = jnp.concatenate([x_t, temb, obs], axis=-1)
        mlp = MLP([self.hidden] * self.n_hidden, self.action_dim, activation=self.activation, param_init=self.param_init)
        return mlp(x)


class TwinQ(nn.Module):
    """n independent Q(s, a) MLPs evaluated in one call via nn.vmap; returns shape (n, ...batch)."""

    hidden: Sequence[int] = (256, 256)
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    n: int = 2
    param_init: str = "torch"  # see Dense

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n,
        )
        q = ensemble(self.hidden, 1, self.activation, self.param_init)(jnp.concatenate([obs, action], axis=-1))
        return q[..., 0]


class ValueNet(nn.Module):
    """V(s) MLP; returns shape (...batch,)."""

    hidden: Sequence[int] = (256, 256)
    activation: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.activation)(obs)[..., 0]


class DiracPolicy(nn.Module):
    """Deterministic policy a = tanh(MLP(s)) (SRPO's extracted policy)."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.action_dim, nn.relu)(obs))
