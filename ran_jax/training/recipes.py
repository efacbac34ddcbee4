"""Options of the modern CIFAR recipe, each off by default so the paper's configs are unchanged.

The options and the recipe that turns them on are described in ``docs/training.md``, "Modern
recipe options". This module holds what the train step does for them on the device: mixup
and CutMix of a device's batch with soft targets (Zhang et al. 2018; Yun et al. 2019), label
smoothing (Szegedy et al. 2016), the weight-decay mask and an exponential moving average
(EMA) of the weights. Random erasing (Zhong et al. 2020) is per example, in
``data/preprocess.py``; gradient accumulation is in ``steps.train_step``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """What the train step needs from the config (static: changing one recompiles)."""

    seed: int = 0
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weights; 0 = off
    cutmix_alpha: float = 0.0  # with both on, each step uses one of them at random
    mix_until_step: int = 0  # steps >= this are not mixed ("switched off for the last epochs")
    label_smoothing: float = 0.0
    accumulate_steps: int = 1  # micro-batches per device batch, one update
    ema_decay: float = 0.0  # 0 = no EMA
    skip_nonfinite: bool = False

    @property
    def mixing(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> StepOptions:
        return cls(
            seed=config.seed,
            mixup_alpha=config.mixup_alpha,
            cutmix_alpha=config.cutmix_alpha,
            mix_until_step=config.num_train_steps - config.mix_off_last_steps,
            label_smoothing=config.label_smoothing,
            accumulate_steps=config.accumulate_steps,
            ema_decay=config.ema_decay,
            skip_nonfinite=bool(config.skip_nonfinite),
        )


def targets(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
    """One-hot targets, smoothed: (1 - smoothing) on the label plus smoothing / C on each."""
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return one_hot * (1 - smoothing) + smoothing / num_classes


def _cutmix_mask(key: jax.Array, shape: tuple[int, ...], lam: jax.Array) -> jax.Array:
    """A box covering about 1 - lam of an H x W image at a uniform centre, clipped: bool [H, W]."""
    height, width = shape
    cy_key, cx_key = jax.random.split(key)
    side = jnp.sqrt(1.0 - lam)
    cy = jax.random.uniform(cy_key) * height
    cx = jax.random.uniform(cx_key) * width
    rows = jnp.arange(height)[:, None] + 0.5
    cols = jnp.arange(width)[None, :] + 0.5
    inside_rows = jnp.abs(rows - cy) < side * height / 2
    inside_cols = jnp.abs(cols - cx) < side * width / 2
    return inside_rows & inside_cols


def mix(
    key: jax.Array, images: jax.Array, soft: jax.Array, options: StepOptions, step: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Mixup or CutMix of a batch with itself reversed; targets mixed in the same proportion.

    Returns the batch unchanged from ``options.mix_until_step`` on. Mixed targets still sum
    to one: they are convex combinations of the inputs' targets.
    """
    choice_key, lam_key, box_key = jax.random.split(key, 3)
    partner_images, partner_soft = images[::-1], soft[::-1]
    use_cutmix = jnp.asarray(options.cutmix_alpha > 0)
    if options.mixup_alpha > 0 and options.cutmix_alpha > 0:
        use_cutmix = jax.random.bernoulli(choice_key)
    alpha = jnp.where(use_cutmix, options.cutmix_alpha, options.mixup_alpha)
    lam = jax.random.beta(lam_key, alpha, alpha)
    lam = jnp.where(step < options.mix_until_step, lam, 1.0)

    box = _cutmix_mask(box_key, images.shape[1:3], lam)
    kept = 1.0 - jnp.mean(box)  # the exact share of each image's own pixels
    cut = jnp.where(box[None, :, :, None], partner_images, images)
    blend = lam * images + (1 - lam) * partner_images
    weight = jnp.where(use_cutmix, kept, lam)
    mixed_images = jnp.where(use_cutmix, cut, blend).astype(images.dtype)
    return mixed_images, weight * soft + (1 - weight) * partner_soft


def decay_mask(params: Any) -> Any:
    """True for convolution and dense kernels; False for BatchNorm scales, shifts and biases."""
    return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


def ema_update(ema: Any, new: Any, decay: float) -> Any:
    """``decay * ema + (1 - decay) * new``, leaf by leaf."""
    return jax.tree_util.tree_map(lambda e, n: decay * e + (1 - decay) * n, ema, new)
