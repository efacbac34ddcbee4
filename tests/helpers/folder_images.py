"""A small generated image folder (ROOT/split/class/*.png|jpg) for the image_folder tests."""

from pathlib import Path

import ml_collections
import numpy as np
import tensorflow as tf

from ran_jax import configs

CLASSES = ("bars", "blob", "ring")  # sorted, as tfds.ImageFolder names them


def picture(label: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 RGB picture of class ``label``: vertical bars, a filled disc or a ring."""
    y, x = np.mgrid[:height, :width]
    cy, cx = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
    r = np.hypot(y - cy, x - cx) / min(height, width)
    shape = [x % 8 < 4, r < 0.3, np.abs(r - 0.3) < 0.08][label]
    colour = rng.integers(128, 256, size=3)
    image = np.where(shape[..., None], colour, rng.integers(0, 64, size=3))
    return image.astype(np.uint8)


def make(
    root: Path,
    train_per_class: int = 6,
    test_per_class: int = 2,
    seed: int = 0,
    size: int | None = None,
) -> Path:
    """Writes the folder: sizes 24-60 px (or all ``size`` x ``size``), every third image
    grey-scale, some JPEGs."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                shape = (size, size) if size else rng.integers(24, 61, size=2)
                image = picture(label, *shape, rng)
                if i % 3 == 2:
                    image = image.mean(axis=-1, keepdims=True).astype(np.uint8)
                if i % 4 == 1:
                    data, suffix = tf.io.encode_jpeg(image, quality=95), "jpg"
                else:
                    data, suffix = tf.io.encode_png(image), "png"
                (folder / f"{i}.{suffix}").write_bytes(data.numpy())
    return root


def config(root: Path, **overrides) -> ml_collections.ConfigDict:
    """What the input pipeline reads of a config, for the image folder at ``root``."""
    c = configs.base()
    c.dataset, c.batch_size, c.image_size, c.shuffle_buffer = f"image_folder:{root}", 4, 32, 64
    c.update(overrides)
    return c
