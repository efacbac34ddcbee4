"""The network a config names (``config.model`` with its overrides and compute dtype), and
what a run builds from its config and data set: the network and the devices it runs on."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from ran_jax import configs
from ran_jax.data.info import DatasetInfo, DataSource
from ran_jax.models import ResidualAttentionNetwork, get_model
from ran_jax.training.parallel import AXIS, DataParallel

DTYPES = {name: getattr(jnp, name) for name in configs.DTYPES}


def make_model(
    config: ml_collections.ConfigDict, num_classes: int, image_size: int, in_channels: int = 3
) -> ResidualAttentionNetwork:
    """``config.model`` with its overrides and compute dtype; raises if the size cannot fit."""
    model = get_model(
        config.model,
        num_classes,
        dtype=DTYPES[config.dtype],
        axis_name=AXIS,
        in_channels=in_channels,
        **config.model_overrides,
    )
    model.check_fits(image_size, what="Images", name=config.model)
    return model


def build(
    config: ml_collections.ConfigDict, data: DataSource
) -> tuple[ResidualAttentionNetwork, DatasetInfo, DataParallel]:
    """The network for ``data``'s images and classes, their description and the parallel
    runner; raises a one-line ValueError where the images cannot fit the network."""
    dp = DataParallel(config.parallelism)
    info = data.info
    model = make_model(config, info.num_classes, info.image_size, info.num_channels)
    model.check_fits(info.eval_image_size, what="Evaluation images", name=config.model)
    return model, info, dp
