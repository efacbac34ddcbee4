"""Named networks of the paper: ``get_model(name, num_classes, **overrides)``.

ImageNet networks follow the official Caffe deploy files layer for layer
(``docs/faithfulness.md`` §4). The CIFAR architecture is not published (§5.1-5.2); ``cifar_*``
networks use the design of §5.3,
chosen because it lands nearest the paper's parameter counts: a 3x3 stem of 16 channels
without pooling, three stages at 32/16/8 pixels with pre-activation ResNet-164 widths
(bottleneck 16/32/64, outputs 64/128/256), and per stage one (projection or strided) unit,
``m`` Attention Modules whose masks pool ``L = 3, 2, 1`` times (a 4x4 bottom at 32x32 input),
and one more unit: trunk depth ``36m + 20``.

Overrides replace any attribute of ``ResidualAttentionNetwork`` (``attention``,
``mask_activation``, ``mask_type``, ``p``, ``t``, ``r``, ``dtype``, ``param_dtype``,
``axis_name``, ...) plus two shortcuts: ``widths`` (bottleneck width per stage; output channels
keep each stage's expansion) and ``modules`` (Attention Modules per stage).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ran_jax.checks import check_choice
from ran_jax.models.network import ResidualAttentionNetwork, Stage


def _imagenet(modules: tuple[int, int, int], unit: str = "preact") -> dict[str, Any]:
    widths = (128, 256, 512, 1024) if unit == "resnext" else (64, 128, 256, 512)
    channels = (256, 512, 1024, 2048)
    return dict(
        stem="imagenet",
        stem_width=64,
        unit=unit,
        stages=(
            Stage(widths[0], channels[0], modules[0], pool_levels=3),
            Stage(widths[1], channels[1], modules[1], pool_levels=2, stride=2),
            Stage(widths[2], channels[2], modules[2], pool_levels=1, stride=2),
            Stage(widths[3], channels[3], stride=2, units_before=3),
        ),
    )


# Bottleneck widths of the CIFAR networks' three stages (pre-activation ResNet-164's).
CIFAR_WIDTHS = (16, 32, 64)


def _cifar(m: int, p: int = 1, t: int = 2, r: int = 1) -> dict[str, Any]:
    return dict(
        stem="cifar",
        stem_width=16,
        p=p,
        t=t,
        r=r,
        stages=tuple(
            Stage(w, 4 * w, m, pool_levels=levels, stride=stride, units_after=1)
            for w, levels, stride in zip(CIFAR_WIDTHS, (3, 2, 1), (1, 2, 2))
        ),
    )


def _preact_resnet164() -> dict[str, Any]:
    """Pre-activation ResNet-164 (He et al. 2016), the paper's noisy-label baseline."""
    return dict(
        stem="cifar",
        stem_width=16,
        stages=tuple(
            Stage(w, 4 * w, stride=stride, units_before=18)
            for w, stride in zip(CIFAR_WIDTHS, (1, 2, 2))
        ),
    )


_MODELS: dict[str, Callable[[], dict[str, Any]]] = {
    "attention56": lambda: _imagenet((1, 1, 1)),
    "attention92": lambda: _imagenet((1, 2, 3)),
    "attentionnext56": lambda: _imagenet((1, 1, 1), unit="resnext"),
    "cifar_attention56": lambda: _cifar(1),
    "cifar_attention92": lambda: _cifar(2),
    "cifar_attention128": lambda: _cifar(3),
    "cifar_attention164": lambda: _cifar(4),
    "cifar_attention236": lambda: _cifar(6),
    "cifar_attention452": lambda: _cifar(6, p=2, t=4, r=3),
    "preact_resnet164": _preact_resnet164,
}

_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(ResidualAttentionNetwork)
    if f.name not in ("parent", "name", "num_classes", "stages")
)
OVERRIDES = _FIELDS + ("widths", "modules")


def list_models() -> list[str]:
    """Names accepted by ``get_model``."""
    return sorted(_MODELS)


def _per_stage(key: str, values: Any, stages: tuple[Stage, ...]) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) != len(stages):
        raise ValueError(f"{key} needs one value per stage ({len(stages)}); got {values}.")
    return values


def default_input(name: str) -> tuple[int, int]:
    """(num_classes, image_size) of the data set ``name`` is built for: ImageNet's
    (1000, 224) for networks with the ImageNet stem, CIFAR's (10, 32) for the others."""
    return (1000, 224) if get_model(name, num_classes=1).stem == "imagenet" else (10, 32)


def get_model(name: str, num_classes: int, **overrides: Any) -> ResidualAttentionNetwork:
    """Returns the named network as a Flax module, validated.

    Call it as ``model.apply(variables, images, train=...)`` with NHWC images.
    """
    check_choice("model", name, list_models())
    for key in overrides:
        check_choice("override", key, OVERRIDES)
    kwargs = _MODELS[name]()
    stages: tuple[Stage, ...] = kwargs.pop("stages")
    if "widths" in overrides:
        widths = _per_stage("widths", overrides.pop("widths"), stages)
        stages = tuple(
            dataclasses.replace(s, width=w, channels=w * s.channels // s.width)
            for s, w in zip(stages, widths)
        )
    if "modules" in overrides:
        modules = _per_stage("modules", overrides.pop("modules"), stages)
        stages = tuple(dataclasses.replace(s, num_modules=m) for s, m in zip(stages, modules))
    kwargs.update(overrides)
    model = ResidualAttentionNetwork(num_classes=num_classes, stages=stages, **kwargs)
    model.validate()
    return model
