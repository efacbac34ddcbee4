"""The soft masks M of a network's Attention Modules, as maps over the input (paper Fig. 1).

Every Attention Module sows its mask ``M`` (``[B, h, w, C]``, the trunk's shape). For
pictures and for the localisation score each mask is reduced over channels, by the mean and
by the most active channel (the one with the largest mean over the image), and upsampled
bilinearly to the input size.

Localisation score (a check of the paper's claim that masks pick out the object): for an
image with a known object region (its box, or the pixels of an object on a plain background),
the mean of the upsampled channel-mean mask inside the region divided by its mean outside.
1 means no preference; above 1, the mask is higher on the object. Per stage it is the mean
over the stage's modules. Channel-attention masks (L2-normalised, in [-1, 1]) make the ratio
hard to read; it is meant for the mixed and spatial activations, whose masks are positive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def masks(
    apply_fn: Callable, variables: Any, images: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(logits, {'stage1/attention1': M, ...}) in network order, in evaluation mode;
    ``apply_fn`` is the network's ``apply``."""
    logits, state = apply_fn(variables, images, train=False, mutable=["intermediates"])
    found = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.get("intermediates", {}))[0]:
        names = [str(getattr(k, "key", k)) for k in path]
        if "mask" in names:  # .../attentionN/mask/0
            found["/".join(names[: names.index("mask")])] = leaf.astype(jnp.float32)
    return logits, found


def channel_mean(mask: jax.Array) -> jax.Array:
    """[B, h, w]: the mask averaged over channels."""
    return jnp.mean(mask, axis=-1)


def top_channel(mask: jax.Array) -> jax.Array:
    """[B, h, w]: per image, the channel whose mean over the image is largest."""
    best = jnp.argmax(jnp.mean(mask, axis=(1, 2)), axis=-1)
    return jnp.take_along_axis(mask, best[:, None, None, None], axis=-1)[..., 0]


def upsample(maps: jax.Array, height: int, width: int) -> jax.Array:
    """[B, h, w] -> [B, height, width], bilinear."""
    return jax.image.resize(maps, (maps.shape[0], height, width), "bilinear")


def stage_of(name: str) -> str:
    return name.split("/")[0]


def box_region(boxes: jax.Array, height: int, width: int) -> jax.Array:
    """[B, height, width] bool: the pixels inside ``boxes`` (top, left, bottom, right)."""
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def localisation(found: dict[str, jax.Array], region: jax.Array) -> dict:
    """{stage: [B] ratio of the mean mask inside ``region`` ([B, H, W] bool, at the input's
    size) to its mean outside}."""
    inside = region.astype(jnp.float32)
    outside = 1.0 - inside
    height, width = region.shape[1:]
    per_stage: dict[str, list[jax.Array]] = {}
    for name, mask in found.items():
        m = upsample(channel_mean(mask), height, width)
        mean_in = jnp.sum(m * inside, (1, 2)) / jnp.maximum(jnp.sum(inside, (1, 2)), 1.0)
        mean_out = jnp.sum(m * outside, (1, 2)) / jnp.maximum(jnp.sum(outside, (1, 2)), 1.0)
        per_stage.setdefault(stage_of(name), []).append(mean_in / (mean_out + 1e-6))
    return {stage: jnp.mean(jnp.stack(r), axis=0) for stage, r in per_stage.items()}
