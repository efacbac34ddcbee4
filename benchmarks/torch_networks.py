"""ran_jax's ``attention56``, ``attention92`` and ``cifar_attention56/92`` in PyTorch.

The same networks as ``ran_jax.models.get_model`` builds, written as straightforward PyTorch
modules (NCHW). The topology follows the official Caffe deploy files (``docs/faithfulness.md``
§2-4) as ran_jax does: pre-activation bottleneck units, a trunk branch, a bottom-up top-down
soft mask with Caffe ceil-mode max-pooling and corner-aligned bilinear upsampling, attention
residual learning ``(1 + M) * T`` (paper 3.1), and the stems and heads of
``ran_jax/models/network.py``. ``MODELS`` holds ran_jax's parameter count of each named
network (convolution and dense weights, dense bias, BatchNorm scale and shift; not running
statistics); ``model_spec`` applies ran_jax's overrides of the same names. Timed by
``torch_reference.py``, trained by ``torch_fashion_mnist.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage at a single resolution, as ``ran_jax.models.network.Stage``.

    See ``docs/faithfulness.md`` §4.1 and §5.3.
    """

    width: int  # bottleneck channels of its units
    channels: int  # output channels of its units
    num_modules: int = 0  # Attention Modules
    pool_levels: int = 1  # max-pooling levels of each module's soft mask
    stride: int = 1  # stride of the first unit
    units_before: int = 1
    units_after: int = 0


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A named network of ran_jax's registry and its parameter count there."""

    stem: str  # 'imagenet' (7x7/2 conv, BN-ReLU, max-pool) or 'cifar' (3x3 conv)
    stem_width: int
    stages: tuple[Stage, ...]
    num_classes: int
    image_size: int
    params: int | None  # as printed by ``python -m ran_jax.summary --model=NAME``
    p: int = 1  # Attention Module hyper-parameters (paper 3.1, ran_jax's overrides p, t, r)
    t: int = 2
    r: int = 1
    in_channels: int = 3  # image channels (1 for grey images)


def _imagenet_spec(modules: tuple[int, int, int], params: int) -> ModelSpec:
    """ran_jax's ``registry._imagenet``: pre-activation units, masks pooling 3, 2, 1 times."""
    m1, m2, m3 = modules
    return ModelSpec(
        stem="imagenet",
        stem_width=64,
        stages=(
            Stage(64, 256, num_modules=m1, pool_levels=3),
            Stage(128, 512, num_modules=m2, pool_levels=2, stride=2),
            Stage(256, 1024, num_modules=m3, pool_levels=1, stride=2),
            Stage(512, 2048, stride=2, units_before=3),
        ),
        num_classes=1000,
        image_size=224,
        params=params,
    )


def _cifar_spec(m: int, params: int) -> ModelSpec:
    """ran_jax's ``registry._cifar``: ``m`` modules per stage, masks pooling 3, 2, 1 times."""
    return ModelSpec(
        stem="cifar",
        stem_width=16,
        stages=tuple(
            Stage(w, 4 * w, num_modules=m, pool_levels=levels, stride=stride, units_after=1)
            for w, levels, stride in ((16, 3, 1), (32, 2, 2), (64, 1, 2))
        ),
        num_classes=10,
        image_size=32,
        params=params,
    )


MODELS: dict[str, ModelSpec] = {
    "attention56": _imagenet_spec((1, 1, 1), params=31_810_728),
    "attention92": _imagenet_spec((1, 2, 3), params=52_466_344),
    "cifar_attention56": _cifar_spec(1, params=1_030_362),
    "cifar_attention92": _cifar_spec(2, params=1_841_242),
}


def model_spec(
    name: str,
    widths: Sequence[int] | None = None,
    modules: Sequence[int] | None = None,
    stem_width: int | None = None,
    num_classes: int | None = None,
    p: int | None = None,
    t: int | None = None,
    r: int | None = None,
    in_channels: int | None = None,
) -> ModelSpec:
    """``MODELS[name]`` with ran_jax's overrides (``registry.get_model``'s rules): ``widths``
    sets each stage's bottleneck width (output channels keep the stage's expansion),
    ``modules`` its Attention Modules, ``p``, ``t``, ``r`` theirs, ``in_channels`` the
    images'. Any override drops the known parameter count."""
    spec = MODELS[name]
    stages = spec.stages
    for key, values in (("widths", widths), ("modules", modules)):
        if values is not None and len(values) != len(stages):
            raise ValueError(f"{key} needs one value per stage ({len(stages)}); got {values}.")
    if widths is not None:
        stages = tuple(
            dataclasses.replace(s, width=w, channels=w * s.channels // s.width)
            for s, w in zip(stages, widths)
        )
    if modules is not None:
        stages = tuple(dataclasses.replace(s, num_modules=m) for s, m in zip(stages, modules))
    changed = dataclasses.replace(
        spec,
        stages=stages,
        stem_width=spec.stem_width if stem_width is None else stem_width,
        num_classes=spec.num_classes if num_classes is None else num_classes,
        p=spec.p if p is None else p,
        t=spec.t if t is None else t,
        r=spec.r if r is None else r,
        in_channels=spec.in_channels if in_channels is None else in_channels,
    )
    return spec if changed == spec else dataclasses.replace(changed, params=None)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm as ran_jax's: epsilon 1e-5, Flax momentum 0.9 (PyTorch's 0.1)."""
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


def caffe_max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3/2 max-pooling, pad 0, ceil mode: Caffe's ``Pooling`` (faithfulness §3.3, §8.4)."""
    return F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)


def caffe_interp(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize to ``like``'s height and width, corners aligned (Caffe ``Interp``)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class PreActBottleneck(nn.Module):
    """``y = x_sc + W3 r(BN(W2 r(BN(W1 a))))`` with ``a = r(BN(x))`` (paper 3, faithfulness §2).

    ``a`` feeds W1 and the projection, which exists only when the shape changes; the stride
    sits on the 3x3 conv and the projection. All convolutions are bias-free.
    """

    def __init__(self, in_channels: int, width: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = batch_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn2 = batch_norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn3 = batch_norm(width)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.projection = (
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
            if in_channels != channels or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(a)
        y = self.conv1(a)
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return shortcut + y


def units(count: int, width: int, channels: int) -> nn.Sequential:
    """``count`` shape-preserving units in sequence."""
    return nn.Sequential(*(PreActBottleneck(channels, width, channels) for _ in range(count)))


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down soft mask (paper 3.2, faithfulness §3.2), ``r`` units per step.

    ``pool_levels`` max-poolings with ``r`` units each (``2r`` at the bottom); going up, the
    map is upsampled to the level's size, added to a skip unit applied to that level's
    down-path output (nothing else is added), and passed through ``r`` units. The tail
    BN-ReLU-conv1x1-BN-ReLU-conv1x1-sigmoid gives ``M`` at the input's size.
    """

    def __init__(self, width: int, channels: int, pool_levels: int, r: int = 1) -> None:
        super().__init__()
        self.down = nn.ModuleList(
            units(2 * r if level == pool_levels else r, width, channels)
            for level in range(1, pool_levels + 1)
        )
        self.skip = nn.ModuleList(units(1, width, channels) for _ in range(pool_levels - 1))
        self.up = nn.ModuleList(units(r, width, channels) for _ in range(pool_levels - 1))
        self.tail = nn.Sequential(
            batch_norm(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
            batch_norm(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, skips = x, []
        for down in self.down:
            m = down(caffe_max_pool(m))
            skips.append(m)
        skips.pop()  # the bottom level has no skip connection
        for level in reversed(range(len(skips))):
            d = skips[level]
            m = self.up[level](caffe_interp(m, d) + self.skip[level](d))
        return self.tail(caffe_interp(m, x))


class AttentionModule(nn.Module):
    """``p`` pre units, trunk ``T`` (``t`` units) and mask ``M``, ``(1 + M) * T``, ``p`` post
    units: attention residual learning (paper 3.1), by default with its p, t, r = 1, 2, 1.
    """

    def __init__(
        self, width: int, channels: int, pool_levels: int, p: int = 1, t: int = 2, r: int = 1
    ) -> None:
        super().__init__()
        self.pre = units(p, width, channels)
        self.trunk = units(t, width, channels)
        self.mask = SoftMaskBranch(width, channels, pool_levels, r)
        self.post = units(p, width, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.post((1 + self.mask(x)) * self.trunk(x))


class ResidualAttentionNetwork(nn.Module):
    """Stem, stages of units and Attention Modules, BN-ReLU, global average pool, FC (3.4)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.stem == "imagenet":  # conv1 7x7/2, BN-ReLU, pool1 3x3/2 ceil (faithfulness §4.1)
            self.stem = nn.Sequential(
                nn.Conv2d(spec.in_channels, spec.stem_width, 7, stride=2, padding=3, bias=False),
                batch_norm(spec.stem_width),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        else:  # a 3x3 conv of 16 channels, no pooling (faithfulness §5.3)
            self.stem = nn.Conv2d(spec.in_channels, spec.stem_width, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        in_channels = spec.stem_width
        for s in spec.stages:
            layers.append(PreActBottleneck(in_channels, s.width, s.channels, s.stride))
            layers.extend(
                PreActBottleneck(s.channels, s.width, s.channels) for _ in range(s.units_before - 1)
            )
            layers.extend(
                AttentionModule(s.width, s.channels, s.pool_levels, spec.p, spec.t, spec.r)
                for _ in range(s.num_modules)
            )
            layers.extend(
                PreActBottleneck(s.channels, s.width, s.channels) for _ in range(s.units_after)
            )
            in_channels = s.channels
        self.stages = nn.Sequential(*layers)
        self.head_bn = batch_norm(in_channels)
        self.classifier = nn.Linear(in_channels, spec.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He (MSRA) init, as ran_jax and Caffe
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.head_bn(self.stages(self.stem(images))))
        return self.classifier(x.mean(dim=(2, 3)))


def count_params(model: nn.Module) -> int:
    """Trainable parameters; BatchNorm running statistics are buffers and not counted."""
    return sum(p.numel() for p in model.parameters())
