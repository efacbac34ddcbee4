"""Cluttered digits: an offline, translated-and-cluttered digit benchmark for attention models.

In the spirit of cluttered MNIST (Mnih et al., "Recurrent Models of Visual Attention", 2014):
each example is a blank ``IMAGE_SIZE x IMAGE_SIZE`` grey-scale canvas holding one handwritten
digit at a uniformly random position, plus ``NUM_CLUTTER`` distractor patches cut from other
digits. The label is the class of the whole digit, so a model has to find it among strokes that
look like pieces of digits.

The source digits are the 1,797 8x8 UCI handwritten digits (``digits.npz``, a copy of the data
shipped by scikit-learn; see ``DIGITS_LICENSE.md``), upscaled ``DIGIT_SCALE`` times. They are
split once, by a fixed seed and per class, into disjoint train and test pools, so test examples
are built only from digit images never seen in training (targets and clutter alike). Everything
is seeded, so preparation is deterministic, needs no network access and takes a few seconds.

Importing this module registers the ``cluttered_digits`` tensorflow-datasets builder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ran_jax.data.tf_runtime import tfds

IMAGE_SIZE = 40
NUM_CLASSES = 10
NUM_TRAIN_EXAMPLES = 20_000
NUM_TEST_EXAMPLES = 4_000

DIGIT_SCALE = 2  # 8x8 source digits -> 16x16 targets (nearest-neighbour upscaling).
NUM_CLUTTER = 4  # Distractor patches per example.
CLUTTER_MIN_SIZE = 6  # Distractor crops are h x w, h and w uniform in [min, max], in
CLUTTER_MAX_SIZE = 8  # pixels of the upscaled digits.

TEST_POOL_FRACTION = 0.2
POOL_SEED = 0
SPLIT_SEEDS = {"train": 1, "test": 2}

_DIGITS_PATH = Path(__file__).with_name("digits.npz")
_SOURCE_MAX = 16  # UCI digit pixels count "on" bits in 4x4 blocks: 0..16.

Examples = Iterator[tuple[int, dict[str, np.ndarray]]]


class ClutteredBatch(NamedTuple):
    """Generated examples plus where each target digit came from and where it was pasted."""

    images: np.ndarray  # (n, IMAGE_SIZE, IMAGE_SIZE) uint8
    labels: np.ndarray  # (n,) int64
    target_index: np.ndarray  # (n,) index into the source digits
    target_offset: np.ndarray  # (n, 2) top-left (row, col) of the target on the canvas


def load_source_digits() -> tuple[np.ndarray, np.ndarray]:
    """Returns the upscaled source digits, (1797, 16, 16) uint8 in 0..255, and their labels."""
    with np.load(_DIGITS_PATH) as data:
        images, labels = data["images"], data["labels"]
    images = images.repeat(DIGIT_SCALE, axis=1).repeat(DIGIT_SCALE, axis=2)
    images = np.rint(images.astype(np.float32) * (255 / _SOURCE_MAX)).astype(np.uint8)
    return images, labels.astype(np.int64)


def source_pools(labels: np.ndarray, seed: int = POOL_SEED) -> dict[str, np.ndarray]:
    """Splits source digit indices into disjoint, sorted 'train' and 'test' pools, per class."""
    rng = np.random.default_rng(seed)
    test = []
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: round(len(members) * TEST_POOL_FRACTION)])
    is_test = np.zeros(len(labels), bool)
    is_test[np.concatenate(test)] = True
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


def _paste_max(canvas: np.ndarray, patch: np.ndarray, offset: np.ndarray) -> None:
    """canvas[i, r:r+h, c:c+w] = max(canvas[...], patch[i]) for each i, with (r, c) = offset[i]."""
    n, h, w = patch.shape
    rows = offset[:, 0, None, None] + np.arange(h)[None, :, None]
    cols = offset[:, 1, None, None] + np.arange(w)[None, None, :]
    batch = np.arange(n)[:, None, None]
    canvas[batch, rows, cols] = np.maximum(canvas[batch, rows, cols], patch)


def generate(
    digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, num_examples: int, seed: int
) -> ClutteredBatch:
    """Draws ``num_examples`` cluttered canvases using only the source digits in ``pool``."""
    rng = np.random.default_rng(seed)
    n, size, digit_size = num_examples, IMAGE_SIZE, digits.shape[1]
    canvas = np.zeros((n, size, size), np.uint8)

    target_pos = rng.integers(len(pool), size=n)
    target_offset = rng.integers(size - digit_size + 1, size=(n, 2))
    _paste_max(canvas, digits[pool[target_pos]], target_offset)

    # Clutter crops are cut as CLUTTER_MAX_SIZE windows and masked down to their random extent;
    # window indices past the digit's edge wrap around and are always masked out.
    inside = np.arange(CLUTTER_MAX_SIZE)
    for _ in range(NUM_CLUTTER):
        # A random digit of the same pool, never the target itself.
        other = pool[(target_pos + rng.integers(1, len(pool), size=n)) % len(pool)]
        extent = rng.integers(CLUTTER_MIN_SIZE, CLUTTER_MAX_SIZE + 1, size=(n, 2))
        corner = rng.integers(digit_size - extent + 1)
        rows, cols = ((corner[:, :, None] + inside) % digit_size).transpose(1, 0, 2)
        patch = digits[other[:, None, None], rows[:, :, None], cols[:, None, :]]
        mask = (inside[:, None] < extent[:, 0, None, None]) & (inside < extent[:, 1, None, None])
        offset = rng.integers(size - CLUTTER_MAX_SIZE + 1, size=(n, 2))
        _paste_max(canvas, patch * mask, offset)

    return ClutteredBatch(canvas, labels[pool[target_pos]], pool[target_pos], target_offset)


class ClutteredDigits(tfds.core.GeneratorBasedBuilder):
    """Handwritten digits at random positions on a canvas cluttered with digit fragments."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Adds 'box', where the target digit lies (same images and labels).",
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
                    "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
                    # The target digit's square: top, left, bottom, right (exclusive), pixels.
                    "box": tfds.features.Tensor(shape=(4,), dtype=np.int32),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            citation="""@misc{alpaydin1998digits,
  author = {Alpaydin, E. and Kaynak, C.},
  title = {{Optical Recognition of Handwritten Digits}},
  year = {1998},
  howpublished = {UCI Machine Learning Repository},
  doi = {10.24432/C50P49}
}""",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Examples]:
        del dl_manager  # Everything is generated from the packaged digits.
        return {
            "train": self._generate_examples("train", NUM_TRAIN_EXAMPLES),
            "test": self._generate_examples("test", NUM_TEST_EXAMPLES),
        }

    def _generate_examples(self, split: str, num_examples: int) -> Examples:
        digits, labels = load_source_digits()
        pool = source_pools(labels)[split]
        batch = generate(digits, labels, pool, num_examples, SPLIT_SEEDS[split])
        size = digits.shape[1]
        boxes = np.concatenate([batch.target_offset, batch.target_offset + size], axis=1)
        examples = zip(batch.images, batch.labels, boxes.astype(np.int32), strict=True)
        for key, (image, label, box) in enumerate(examples):
            yield key, {"image": image[..., None], "label": label, "box": box}


def prepare(data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Returns the ``cluttered_digits`` builder, generating the dataset first if needed."""
    builder = ClutteredDigits(data_dir=data_dir)
    builder.download_and_prepare()
    return builder
