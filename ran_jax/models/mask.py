"""Soft mask branch M(x) and its ablations (paper sections 3.2-3.3,
``docs/faithfulness.md`` §3.2 and §6).

The soft mask is a bottom-up top-down (encoder-decoder) structure: ``L`` max-pooling levels
with ``r`` Residual Units each (``2r`` at the lowest level), a skip Residual Unit at every
level above the lowest, bilinear upsampling to the exact size of the level above, and a 1x1
tail that ends in the mask activation. Following the official graph, the upsampled map is
added only to the skip unit's output: not to the down-path feature, not to the trunk
(``docs/faithfulness.md`` §8.1).

Local mask (ablation of paper Table 4, "local convolutions"): no pooling, no upsampling and
no skips. The number of its units is not given by the paper; we choose the same number of
units as the soft mask it replaces (``2Lr + L - 1``), applied in sequence at full resolution,
so the two masks have identical parameter counts and differ only in receptive field.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ran_jax.checks import check_choice
from ran_jax.models.layers import caffe_interp, caffe_max_pool

MASK_TYPES = ("soft", "local")
MASK_ACTIVATIONS = ("mixed", "channel", "spatial")

_EPS = 1e-5


def mask_activation(logits: jnp.ndarray, kind: str) -> jnp.ndarray:
    """The attention activations f1/f2/f3 of paper section 3.3, computed in float32.

    mixed:   sigmoid per channel and position (the default; M in [0, 1]).
    channel: L2 normalisation across channels at each position (M in [-1, 1]).
    spatial: per-channel standardisation over positions, then sigmoid (M in [0, 1]).

    The epsilon sits under the square root, as in BatchNorm: a constant map (a 1x1 or fully
    pooled mask) or an all-zero position then has finite gradients, where ``x / (std + eps)``
    differentiates sqrt at 0 and gives NaN.
    """
    x = logits.astype(jnp.float32)
    if kind == "mixed":
        m = jax.nn.sigmoid(x)
    elif kind == "channel":
        m = x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + _EPS)
    elif kind == "spatial":
        mean = jnp.mean(x, axis=(1, 2), keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
        m = jax.nn.sigmoid((x - mean) * jax.lax.rsqrt(var + _EPS))
    else:
        check_choice("mask activation", kind, MASK_ACTIVATIONS)
    return m.astype(logits.dtype)


def num_mask_units(pool_levels: int, r: int) -> int:
    """Residual Units in a soft mask: (L-1)r down + 2r bottom + (L-1) skip + (L-1)r up."""
    return 2 * pool_levels * r + pool_levels - 1


class MaskTail(nn.Module):
    """Two 1x1 convolutions and the mask activation, giving M from the upsampled features.

    Pre-activation networks use BN-ReLU-conv-BN-ReLU-conv (``mask/linear_1``, ``linear_2``);
    the post-activation AttentionNeXt uses conv-BN-ReLU-conv
    (``docs/faithfulness.md`` §3.2 step 5 and §4.5).
    """

    activation: str
    conv: Callable[..., nn.Module]
    norm: Callable[..., nn.Module]
    pre_activation: bool = True

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        if self.pre_activation:
            x = nn.relu(self.norm(name="bn1")(x))
        x = self.conv(channels, (1, 1), name="linear1")(x)
        x = nn.relu(self.norm(name="bn2")(x))
        logits = self.conv(channels, (1, 1), name="linear2")(x)
        return mask_activation(logits, self.activation)


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down soft mask with ``pool_levels`` max-pooling levels (faithfulness §3.2)."""

    pool_levels: int  # L
    r: int
    unit: Callable[..., nn.Module]
    tail: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out_size = x.shape[1:3]
        m, skips = x, []
        for level in range(1, self.pool_levels + 1):
            m = caffe_max_pool(m)
            bottom = level == self.pool_levels
            for i in range(2 * self.r if bottom else self.r):
                m = self.unit(name=f"down{level}_{i + 1}")(m)
            if not bottom:
                skips.append(m)
        for level in range(self.pool_levels - 1, 0, -1):
            d = skips[level - 1]
            m = caffe_interp(m, d.shape[1:3]) + self.unit(name=f"skip{level}")(d)
            for i in range(self.r):
                m = self.unit(name=f"up{level}_{i + 1}")(m)
        return self.tail(name="tail")(caffe_interp(m, out_size))


class LocalMaskBranch(nn.Module):
    """Local-convolution mask ablation: the soft mask's units in sequence at full resolution."""

    pool_levels: int
    r: int
    unit: Callable[..., nn.Module]
    tail: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(num_mask_units(self.pool_levels, self.r)):
            x = self.unit(name=f"unit{i + 1}")(x)
        return self.tail(name="tail")(x)
