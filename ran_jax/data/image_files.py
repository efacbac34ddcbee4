"""Your own image files as a trained network sees them (``predict``, ``visualize --images``).

Images of any size in the JPEG, PNG, GIF or BMP format are prepared as evaluation prepares
its examples (``preprocess.eval_view``: shorter side resized, centre crop, the run's
normalisation; colour or grey-scale converted to what the network was trained on).
"""

from __future__ import annotations

import os

import numpy as np

from ran_jax.data import preprocess
from ran_jax.data.info import DatasetInfo
from ran_jax.data.tf_runtime import tf


def read_image(path: str, channels: int) -> tf.Tensor:
    """The decoded uint8 image [H, W, channels] at ``path``; ValueError naming it otherwise."""
    if not os.path.isfile(path):
        raise ValueError(f"Image {path} does not exist or is not a file.")
    try:
        return preprocess.decode_any(tf.io.read_file(path), channels)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise ValueError(
            f"Cannot read {path} as an image: it is not a valid JPEG, PNG, GIF or BMP file."
        ) from e


def eval_views(paths: list[str], info: DatasetInfo) -> np.ndarray:
    """The image files at ``paths`` as the network sees them in evaluation, [N, S, S, C]."""
    return np.stack(
        [preprocess.eval_view(read_image(p, info.num_channels), info).numpy() for p in paths]
    )
