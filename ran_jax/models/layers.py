"""Caffe-compatible primitives shared by every block of the network.

The official models (fwang91/residual-attention-network) were trained in Caffe, whose
max-pooling rounds output sizes up ("ceil mode", pad 0) and whose ``Interp`` layer resizes
bilinearly mapping corner to corner (PyTorch ``align_corners=True``). Both are reproduced
exactly here so that masks line up with the trunk at every input size, odd ones included
(spec sections 2.2 and 8.4).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

Dtype = Any

# He et al. (MSRA) initialisation as Caffe's "msra" filler: normal, variance 2 / fan_in.
conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raises a ValueError naming ``value`` and the valid ``choices`` when it is not one."""
    if value not in choices:
        raise ValueError(
            f"Unknown {name} {value!r}; valid choices are: {', '.join(map(repr, choices))}."
        )


def pooled_size(size: int, window: int = 3, stride: int = 2) -> int:
    """Output length of Caffe's ceil-mode max-pooling with pad 0 (0 means it cannot pool)."""
    return max(0, -(-(size - window) // stride) + 1)


def caffe_max_pool(x: jnp.ndarray, window: int = 3, stride: int = 2) -> jnp.ndarray:
    """3x3/2 max-pooling, pad 0, ceil mode, as Caffe's ``Pooling`` layer (NHWC).

    Caffe lets the last window hang over the bottom/right edge; padding those cells with
    -inf gives the same result. ``pooled_size(7) == 3`` where floor mode with pad 1 gives 4.
    """
    _, height, width, _ = x.shape
    out_h, out_w = pooled_size(height, window, stride), pooled_size(width, window, stride)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"A {height}x{width} feature map is too small for 3x3/2 max-pooling; "
            "use a larger input image."
        )
    pad_h = (out_h - 1) * stride + window - height
    pad_w = (out_w - 1) * stride + window - width
    return nn.max_pool(
        x, (window, window), strides=(stride, stride), padding=((0, pad_h), (0, pad_w))
    )


@functools.cache
def _interp_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of corner-aligned linear interpolation along one axis."""
    scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = np.arange(out_size, dtype=np.float64) * scale
    lo = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo).astype(np.float32)


def _interp_axis(x: jnp.ndarray, out_size: int, axis: int) -> jnp.ndarray:
    in_size = x.shape[axis]
    if in_size == out_size:
        return x
    lo, hi, frac = _interp_taps(in_size, out_size)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = jnp.asarray(frac.reshape(shape), dtype=x.dtype)
    x_lo, x_hi = jnp.take(x, lo, axis=axis), jnp.take(x, hi, axis=axis)
    return x_lo + (x_hi - x_lo) * frac


def caffe_interp(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
    """Bilinear resize of NHWC ``x`` to ``size`` = (height, width), corners aligned.

    This is Caffe's ``Interp`` with two bottoms: the second bottom only supplies the size;
    nothing is added to the result (spec 2.2, pitfall 8.1).
    """
    return _interp_axis(_interp_axis(x, size[0], axis=1), size[1], axis=2)


def make_conv(dtype: Dtype, param_dtype: Dtype) -> Any:
    """Bias-free convolution as in every official deploy file (``bias_term: false``)."""
    return functools.partial(
        nn.Conv, use_bias=False, kernel_init=conv_init, dtype=dtype, param_dtype=param_dtype
    )


def make_norm(
    train: bool,
    dtype: Dtype,
    param_dtype: Dtype,
    axis_name: str | None,
    momentum: float,
    epsilon: float,
) -> Any:
    """BatchNorm; ``axis_name`` averages batch statistics across replicas (cross-replica BN)."""
    return functools.partial(
        nn.BatchNorm,
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
        axis_name=axis_name if train else None,
    )
