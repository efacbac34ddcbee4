"""Residual Units: the building block of trunk, mask and stages (paper section 3,
``docs/faithfulness.md`` §2).

``PreActBottleneck`` is the unit of Attention-56/92 and of every CIFAR network;
``ResNeXtBottleneck`` is the post-activation, grouped unit of the official
AttentionNeXt-56 deploy file.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

ModuleDef = Any


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck ``y = x_sc + W3 r(BN(W2 r(BN(W1 a))))`` with ``a = r(BN(x))``.

    The one pre-activation ``a`` feeds both W1 and the projection shortcut; the identity
    shortcut carries the raw ``x``. The stride sits on the 3x3 conv and on the projection,
    which exists only when the unit changes the shape (``docs/faithfulness.md`` §2).
    """

    width: int  # bottleneck channels c
    channels: int  # output channels (4c)
    strides: int
    conv: ModuleDef
    norm: ModuleDef

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        a = nn.relu(self.norm(name="bn1")(x))
        shortcut = x
        if x.shape[-1] != self.channels or self.strides != 1:
            shortcut = self.conv(self.channels, (1, 1), self.strides, name="projection")(a)
        y = self.conv(self.width, (1, 1), name="conv1")(a)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self.conv(self.width, (3, 3), self.strides, padding=((1, 1), (1, 1)), name="conv2")(y)
        y = nn.relu(self.norm(name="bn3")(y))
        y = self.conv(self.channels, (1, 1), name="conv3")(y)
        return shortcut + y


class ResNeXtBottleneck(nn.Module):
    """Post-activation ResNeXt unit: conv-BN-ReLU, grouped 3x3-BN-ReLU, conv-BN, sum, ReLU.

    As in ``AttentionNeXt-56-deploy.prototxt``: cardinality 32, the stride on the grouped 3x3,
    and a conv-BN projection only when the shape changes.
    """

    width: int
    channels: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    cardinality: int = 32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        shortcut = x
        if x.shape[-1] != self.channels or self.strides != 1:
            shortcut = self.conv(self.channels, (1, 1), self.strides, name="projection")(x)
            shortcut = self.norm(name="projection_bn")(shortcut)
        y = nn.relu(self.norm(name="bn1")(self.conv(self.width, (1, 1), name="conv1")(x)))
        y = self.conv(
            self.width,
            (3, 3),
            self.strides,
            padding=((1, 1), (1, 1)),
            feature_group_count=self.cardinality,
            name="conv2",
        )(y)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self.norm(name="bn3")(self.conv(self.channels, (1, 1), name="conv3")(y))
        return nn.relu(shortcut + y)
