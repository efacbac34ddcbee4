"""The Residual Attention Network, assembled from a declarative list of stages (paper 3.4).

A network is a stem, a sequence of ``Stage`` descriptions and a classifier head. Each stage
is: ``units_before`` Residual Units (the first carries the stage's stride and projection),
``num_modules`` Attention Modules whose soft masks use ``pool_levels`` max-pooling levels,
then ``units_after`` Residual Units. Attention-56 for ImageNet
(``docs/faithfulness.md`` §4.1) is::

    Stage(64, 256, num_modules=1, pool_levels=3)
    Stage(128, 512, num_modules=1, pool_levels=2, stride=2)
    Stage(256, 1024, num_modules=1, pool_levels=1, stride=2)
    Stage(512, 2048, stride=2, units_before=3)

Images are NHWC. The head ends in global average pooling, so any input size at least
``min_image_size()`` works; logits are returned in float32 whatever the compute ``dtype``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ran_jax.checks import check_choice
from ran_jax.models.attention_module import ATTENTION_LEARNING, AttentionModule
from ran_jax.models.layers import Dtype, caffe_max_pool, make_conv, make_norm, pooled_size
from ran_jax.models.mask import MASK_ACTIVATIONS, MASK_TYPES, MaskTail
from ran_jax.models.residual_unit import PreActBottleneck, ResNeXtBottleneck

STEMS = ("imagenet", "cifar")
UNITS = ("preact", "resnext")

_MAX_SEARCHED_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the network at a single resolution (``docs/faithfulness.md`` §4.1 and §5.3)."""

    width: int  # bottleneck channels of its units
    channels: int  # output channels of its units
    num_modules: int = 0  # Attention Modules (m)
    pool_levels: int = 1  # L: max-pooling levels of each module's soft mask
    stride: int = 1  # stride of the first unit
    units_before: int = 1
    units_after: int = 0


def _conv_out(size: int, stride: int) -> int:
    """Output length of a 'same'-padded convolution (3x3 pad 1 or 7x7 pad 3) with ``stride``."""
    return (size - 1) // stride + 1


class ResidualStage(nn.Module):
    """Residual Units and Attention Modules of one stage."""

    stage: Stage
    unit: Callable[..., nn.Module]
    attention_module: Callable[..., nn.Module]

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        s = self.stage
        unit = functools.partial(self.unit, width=s.width, channels=s.channels)
        for i in range(s.units_before):
            x = unit(strides=s.stride if i == 0 else 1, name=f"unit{i + 1}")(x)
        for i in range(s.num_modules):
            x = self.attention_module(
                pool_levels=s.pool_levels,
                unit=functools.partial(unit, strides=1),
                name=f"attention{i + 1}",
            )(x)
        for i in range(s.units_after):
            x = unit(strides=1, name=f"post_unit{i + 1}")(x)
        return x


class ResidualAttentionNetwork(nn.Module):
    """Stem, stages of Residual Units and Attention Modules, and a classifier head.

    Attributes select every variant and ablation of the paper: ``p, t, r`` (module
    hyper-parameters), ``attention`` ('residual' = ARL, 'naive' = NAL), ``mask_activation``
    ('mixed', 'channel', 'spatial'), ``mask_type`` ('soft', 'local'), ``unit`` ('preact',
    'resnext'). ``dtype`` is the compute dtype, ``param_dtype`` the parameters' dtype, and
    ``axis_name`` names the device axis over which BatchNorm averages batch statistics.
    ``remat`` recomputes each Attention Module's activations in the backward pass
    (``jax.checkpoint``) instead of storing them, to fit larger batches on accelerators
    (XLA:CPU's buffers barely shrink, docs/performance.md); same numbers, same parameter names.
    """

    num_classes: int
    stages: Sequence[Stage]
    stem: str = "imagenet"
    stem_width: int = 64
    unit: str = "preact"
    cardinality: int = 32
    p: int = 1
    t: int = 2
    r: int = 1
    attention: str = "residual"
    mask_activation: str = "mixed"
    mask_type: str = "soft"
    in_channels: int = 3
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    axis_name: str | None = None
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    remat: bool = False

    def validate(self) -> None:
        """Raises ValueError for an unknown choice or an impossible size."""
        check_choice("stem", self.stem, STEMS)
        check_choice("unit", self.unit, UNITS)
        check_choice("attention learning", self.attention, ATTENTION_LEARNING)
        check_choice("mask activation", self.mask_activation, MASK_ACTIVATIONS)
        check_choice("mask type", self.mask_type, MASK_TYPES)
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {self.num_classes}.")
        if min(self.p, self.t, self.r) < 0 or self.r < 1:
            raise ValueError(f"Need p >= 0, t >= 0, r >= 1; got p={self.p} t={self.t} r={self.r}.")
        if not self.stages:
            raise ValueError("A network needs at least one stage.")
        for stage in self.stages:
            if min(stage.width, stage.channels, stage.stride, stage.pool_levels) < 1:
                raise ValueError(f"Stage sizes must be positive: {stage}.")
            if self.unit == "resnext" and stage.width % self.cardinality:
                raise ValueError(
                    f"Bottleneck width {stage.width} is not divisible by cardinality "
                    f"{self.cardinality}; choose widths that are multiples of it."
                )

    def fits(self, size: int) -> bool:
        """Whether an input of side ``size`` survives every stride and mask pooling."""
        if size < 1:
            return False
        if self.stem == "imagenet":
            size = pooled_size(_conv_out(size, 2))
        for stage in self.stages:
            size = _conv_out(size, stage.stride) if size > 0 else 0
            if size < 1:
                return False
            if stage.num_modules and self.mask_type == "soft":
                m = size
                for _ in range(stage.pool_levels):
                    m = pooled_size(m)
                if m < 1:
                    return False
        return True

    def min_image_size(self) -> int:
        """The smallest input side this network accepts."""
        for size in range(1, _MAX_SEARCHED_SIZE):
            if self.fits(size):
                return size
        raise ValueError("No input size up to 4096 fits this network's stages.")

    def check_fits(
        self,
        height: int,
        width: int | None = None,
        what: str = "Input images",
        name: str = "this network",
    ) -> None:
        """Raises a ValueError unless inputs of ``height`` x ``width`` (square by default)
        fit; ``what`` and ``name`` say which images and which network, for the message."""
        width = height if width is None else width
        if not (self.fits(height) and self.fits(width)):
            smallest = self.min_image_size()
            raise ValueError(
                f"{what} of {height}x{width} are too small for {name}; "
                f"its smallest input is {smallest}x{smallest}."
            )

    def _check_input(self, images: jnp.ndarray) -> None:
        if images.ndim != 4:
            raise ValueError(
                f"Expected a batch of NHWC images of rank 4 (batch, height, width, "
                f"{self.in_channels}); got an array of shape {tuple(images.shape)}."
            )
        if images.shape[-1] != self.in_channels:
            raise ValueError(
                f"Expected {self.in_channels} channels in the last (NHWC) axis; got shape "
                f"{tuple(images.shape)}. Images must be channels-last."
            )
        height, width = images.shape[1:3]
        self.check_fits(height, width)

    @nn.compact
    def __call__(self, images: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        self.validate()
        self._check_input(images)
        conv = make_conv(self.dtype, self.param_dtype)
        norm = make_norm(
            train, self.dtype, self.param_dtype, self.axis_name, self.bn_momentum, self.bn_epsilon
        )
        preact = self.unit == "preact"
        if preact:
            unit = functools.partial(PreActBottleneck, conv=conv, norm=norm)
        else:
            unit = functools.partial(
                ResNeXtBottleneck, conv=conv, norm=norm, cardinality=self.cardinality
            )
        attention_module = functools.partial(
            nn.remat(AttentionModule) if self.remat else AttentionModule,
            tail=functools.partial(
                MaskTail,
                activation=self.mask_activation,
                conv=conv,
                norm=norm,
                pre_activation=preact,
            ),
            p=self.p,
            t=self.t,
            r=self.r,
            attention=self.attention,
            mask_type=self.mask_type,
        )

        x = images.astype(self.dtype)
        if self.stem == "imagenet":
            x = conv(self.stem_width, (7, 7), 2, padding=((3, 3), (3, 3)), name="conv1")(x)
            x = caffe_max_pool(nn.relu(norm(name="bn1")(x)))
        else:
            x = conv(self.stem_width, (3, 3), padding=((1, 1), (1, 1)), name="conv1")(x)
            if not preact:
                x = nn.relu(norm(name="bn1")(x))
        for i, stage in enumerate(self.stages):
            x = ResidualStage(stage, unit, attention_module, name=f"stage{i + 1}")(x)
        if preact:
            x = nn.relu(norm(name="head_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dense(
            self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype, name="classifier"
        )(x)
        return x.astype(jnp.float32)
