"""Your own image files as a trained network sees them (``predict``, ``visualize --images``).

Images of any size in the JPEG, PNG, GIF or BMP format are read as an image viewer shows
them (``pillow_decode`` says how: palettes, 16 bits, CMYK, EXIF orientation, alpha) and
prepared as evaluation prepares its examples (``preprocess.eval_view``: shorter side
resized, centre crop, the run's normalisation; colour or grey-scale converted to what the
network was trained on). Image folders read their files the same way (``image_folder``).
"""

from __future__ import annotations

import re

import numpy as np

from ran_jax.data import pillow_decode, preprocess
from ran_jax.data.info import DatasetInfo
from ran_jax.data.tf_runtime import tf


def _tensorflow_reason(error: tf.errors.OpError) -> str:
    """TensorFlow's message without its op and node decorations."""
    message = error.message.strip().splitlines()[0]
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    return re.sub(r"\s*\[Op:\w+\].*$", "", message)


def read_image(path: str, channels: int) -> tf.Tensor:
    """The uint8 image [H, W, channels] a viewer shows of the file at ``path``; a
    ValueError naming the file and the reason otherwise.

    Files that TensorFlow reads as a viewer does are decoded by it, as training decodes them;
    the others by Pillow (``pillow_decode.needs_pillow``).
    """
    pillow_decode.require_file(path)
    if pillow_decode.needs_pillow(path):
        return tf.constant(pillow_decode.pixels(path, channels))
    try:
        return preprocess.decode_any(tf.io.read_file(path), channels)
    except tf.errors.OpError as e:
        raise pillow_decode.UnreadableImageError(
            f"Cannot read {path} as an image: it is truncated or damaged "
            f"(TensorFlow: {_tensorflow_reason(e)})."
        ) from e


def eval_views(paths: list[str], info: DatasetInfo) -> np.ndarray:
    """The image files at ``paths`` as the network sees them in evaluation, [N, S, S, C]."""
    return np.stack(
        [preprocess.eval_view(read_image(p, info.num_channels), info).numpy() for p in paths]
    )
