"""Caffe-compatible primitives shared by every block of the network.

The official models (fwang91/residual-attention-network) were trained in Caffe, whose
max-pooling rounds output sizes up ("ceil mode", pad 0) and whose ``Interp`` layer resizes
bilinearly mapping corner to corner (PyTorch ``align_corners=True``). Both are reproduced
exactly here so that masks line up with the trunk at every input size, odd ones included
(``docs/faithfulness.md`` §3.3, §8.3 and §8.4).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Dtype = Any

# He et al. (MSRA) initialisation as Caffe's "msra" filler: normal, variance 2 / fan_in.
conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def pooled_size(size: int, window: int = 3, stride: int = 2) -> int:
    """Output length of Caffe's ceil-mode max-pooling with pad 0 (0 means it cannot pool)."""
    return max(0, -(-(size - window) // stride) + 1)


def caffe_max_pool(x: jnp.ndarray, window: int = 3, stride: int = 2) -> jnp.ndarray:
    """3x3/2 max-pooling, pad 0, ceil mode, as Caffe's ``Pooling`` layer (NHWC).

    Caffe lets the last window hang over the bottom/right edge; padding those cells with
    -inf gives the same result. ``pooled_size(7) == 3`` where floor mode with pad 1 gives 4.
    Computed separably, as the maximum of 3 strided column slices and then of 3 row slices:
    the gradient is then elementwise selects (ties share it equally) rather than
    ``reduce_window``'s select-and-scatter, which XLA:CPU runs more slowly (figures:
    ``docs/performance.md``, "What changed in the step").
    """
    n, height, width, c = x.shape
    out_h, out_w = pooled_size(height, window, stride), pooled_size(width, window, stride)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"A {height}x{width} feature map is too small for 3x3/2 max-pooling; "
            "use a larger input image."
        )
    pad_h = (out_h - 1) * stride + window - height
    pad_w = (out_w - 1) * stride + window - width
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
    span_h, span_w = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    rows = x.shape[1]
    column_taps = (
        lax.slice(x, (0, 0, j, 0), (n, rows, j + span_w, c), (1, 1, stride, 1))
        for j in range(window)
    )
    x = functools.reduce(jnp.maximum, column_taps)
    row_taps = (
        lax.slice(x, (0, i, 0, 0), (n, i + span_h, out_w, c), (1, stride, 1, 1))
        for i in range(window)
    )
    return functools.reduce(jnp.maximum, row_taps)


@functools.cache
def _interp_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of corner-aligned linear interpolation along one axis."""
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = np.arange(out_size, dtype=np.float64) * scale
    lo = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo).astype(np.float32)


@functools.cache
def _interp_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] weights of corner-aligned linear interpolation along one axis."""
    lo, hi, frac = _interp_taps(in_size, out_size)
    rows = np.arange(out_size)
    matrix = np.zeros((out_size, in_size), np.float32)
    np.add.at(matrix, (rows, lo), 1 - frac)
    np.add.at(matrix, (rows, hi), frac)
    return matrix


def _interp_axis(x: jnp.ndarray, out_size: int, axis: int) -> jnp.ndarray:
    """A small matrix product rather than a gather, whose gradient would be a scatter."""
    in_size = x.shape[axis]
    if in_size == out_size:
        return x
    matrix = jnp.asarray(_interp_matrix(in_size, out_size), x.dtype)
    spec = "oh,nhwc->nowc" if axis == 1 else "ow,nhwc->nhoc"
    return jnp.einsum(spec, matrix, x, precision=lax.Precision.HIGHEST)


def caffe_interp(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
    """Bilinear resize of NHWC ``x`` to ``size`` = (height, width), corners aligned.

    This is Caffe's ``Interp`` with two bottoms: the second bottom only supplies the size;
    nothing is added to the result (``docs/faithfulness.md`` §3.3 and §8.1).
    """
    return _interp_axis(_interp_axis(x, size[0], axis=1), size[1], axis=2)


class PointwiseConv(nn.Module):
    """A bias-free 1x1 convolution computed as one matrix product over all pixels.

    Same parameter (``kernel`` [1, 1, in, out]) and result as ``nn.Conv`` with a 1x1 kernel
    and 'SAME' padding; a stride keeps every ``strides``-th pixel. For a 1x1 convolution's
    weight gradient XLA:CPU transposes the activations; the product needs no transpose and
    runs faster (figures: ``docs/performance.md``, "What changed in the step"). On GPU and
    TPU both are the same GEMM.
    """

    features: int
    strides: int = 1
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel = self.param(
            "kernel", conv_init, (1, 1, x.shape[-1], self.features), self.param_dtype
        )
        if self.strides > 1:
            x = x[:, :: self.strides, :: self.strides]
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        rows = x.reshape(-1, x.shape[-1]) @ kernel[0, 0]
        return rows.reshape(*x.shape[:-1], self.features)


_NHWC = ("NHWC", "HWIO", "NHWC")
# Feature maps at least this large (28x28) take the shifted weight gradient on the CPU.
SHIFTED_WGRAD_MIN_PIXELS = 28 * 28


def _conv3x3(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)


@jax.custom_vjp
def conv3x3_shifted_wgrad(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """3x3, stride 1, pad 1 NHWC convolution whose weight gradient is 9 matrix products.

    Forward and input gradient are XLA's. The weight gradient of tap (i, j) is
    ``x_shifted(i, j)^T @ dy`` over all pixels. On XLA:CPU this is faster than the
    convolution XLA derives for it on large feature maps, hence ``SHIFTED_WGRAD_MIN_PIXELS``
    (figures: ``docs/performance.md``, "What changed in the step"). Same result up to float
    rounding.
    """
    return _conv3x3(x, kernel)


def _shifted_fwd(x, kernel):
    return _conv3x3(x, kernel), (x, kernel)


def _shifted_bwd(residuals, dy):
    x, kernel = residuals
    (dx,) = jax.vjp(lambda x: _conv3x3(x, kernel), x)[1](dy)
    _, height, width, c = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    dy_rows = dy.reshape(-1, dy.shape[-1])
    taps = [
        lax.dot_general(
            padded[:, i : i + height, j : j + width].reshape(-1, c),
            dy_rows,
            (((0,), (0,)), ((), ())),
            preferred_element_type=jnp.float32,
        )
        for i in range(3)
        for j in range(3)
    ]
    return dx, jnp.stack(taps).reshape(kernel.shape).astype(kernel.dtype)


conv3x3_shifted_wgrad.defvjp(_shifted_fwd, _shifted_bwd)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    **kwargs,
):
    """``lax.conv_general_dilated``, with ``conv3x3_shifted_wgrad`` where it is faster.

    That is: on the CPU backend, for a 3x3 stride-1 pad-1 ungrouped NHWC convolution of a
    feature map of at least ``SHIFTED_WGRAD_MIN_PIXELS`` pixels. Accelerators keep XLA's.
    """
    shifted = (
        jax.default_backend() == "cpu"
        and lhs.ndim == 4
        and rhs.shape[:2] == (3, 3)
        and tuple(window_strides) == (1, 1)
        and tuple(map(tuple, padding)) == ((1, 1), (1, 1))
        and lhs_dilation in (None, (1, 1))
        and rhs_dilation in (None, (1, 1))
        and all(value in (None, 1) for key, value in kwargs.items() if key.endswith("_count"))
        and all(value is None for key, value in kwargs.items() if not key.endswith("_count"))
        and dimension_numbers == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
        and lhs.shape[1] * lhs.shape[2] >= SHIFTED_WGRAD_MIN_PIXELS
    )
    if shifted:
        return conv3x3_shifted_wgrad(lhs, rhs)
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, **kwargs
    )


def make_conv(dtype: Dtype, param_dtype: Dtype) -> Any:
    """Bias-free convolution as in every official deploy file (``bias_term: false``).

    ``conv(features, kernel_size, strides=1, **kwargs)``; 1x1 kernels without explicit
    padding become ``PointwiseConv``.
    """

    def conv(
        features: int, kernel_size: Sequence[int], strides: int = 1, **kwargs: Any
    ) -> nn.Module:
        if tuple(kernel_size) == (1, 1) and "padding" not in kwargs:
            return PointwiseConv(features, strides, dtype=dtype, param_dtype=param_dtype, **kwargs)
        return nn.Conv(
            features,
            kernel_size,
            strides,
            use_bias=False,
            kernel_init=conv_init,
            conv_general_dilated=conv_general_dilated,
            dtype=dtype,
            param_dtype=param_dtype,
            **kwargs,
        )

    return conv


def make_norm(
    train: bool,
    dtype: Dtype,
    param_dtype: Dtype,
    axis_name: str | None,
    momentum: float,
    epsilon: float,
) -> Any:
    """BatchNorm; ``axis_name`` averages batch statistics across replicas (cross-replica BN).

    The variance is computed in two passes, ``E[(x - E[x])^2]``, as PyTorch does. The one-pass
    ``E[x^2] - E[x]^2`` (Caffe's BN layer, flax's default) cancels catastrophically in float32
    where a channel's mean is large against its spread, and its rounding then depends on how
    the batch is split across devices (``docs/faithfulness.md`` §11).
    """
    return functools.partial(
        nn.BatchNorm,
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
        axis_name=axis_name if train else None,
        use_fast_variance=False,
    )
