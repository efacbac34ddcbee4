"""Images per second of the training input pipeline alone, on offline mock data.

A train step can only be as fast as its input: this times ``DataSet.train_batches``,
the very decode / augment / normalise / batch code the trainer runs, with no model attached,
to show that tf.data is not what limits the step rate (compare with the trainer's steps/s).

Nothing is downloaded. ``tfds.testing.mock_data`` stands in for the prepared dataset, with
metadata giving the real split sizes, so shuffling and epochs behave as in training. Its
default ImageNet images are 5..49 pixel noise made by a Python generator per example, which
would time the mock, so the reader is replaced (``as_dataset_fn``) by one serving a pool of
images encoded once up front: photo-like 375x500 / 500x375 / 333x500 JPEGs (quality 90, about
100 KB, like ImageNet's) that go through the pipeline's own JPEG decode, random-resized crop
and resize; 32x32 PNGs for CIFAR. Reading and parsing TFRecord files are not timed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ml_collections
import numpy as np

from ran_jax import configs
from ran_jax.checks import check_choice
from ran_jax.data import input_pipeline
from ran_jax.data.tf_runtime import tf, tfds

# Examples per split of the real datasets: epochs and shuffling behave as in training.
SPLIT_SIZES = {
    "cifar10": {"train": 50_000, "test": 10_000},
    "imagenet2012": {"train": 1_281_167, "validation": 50_000},
}
# Source images (height, width) cycled through the pool: common ImageNet photo sizes.
IMAGENET_SOURCE_SHAPES = ((375, 500), (500, 375), (333, 500), (375, 500))
POOL_SIZE = 64  # Distinct encoded images the mock reader serves in turn.
JPEG_QUALITY = 90


def make_config(
    dataset: str, batch_size: int | None = None, image_size: int | None = None
) -> ml_collections.ConfigDict:
    """The trainer's recipe config of ``dataset``, with the batch and crop size overridden."""
    check_choice("dataset", dataset, list(SPLIT_SIZES))
    if dataset == "imagenet2012":
        config = configs.imagenet("attention56", 224 if image_size is None else image_size)
    elif image_size not in (None, 32):
        raise ValueError(f"--image_size applies to imagenet2012 only; {dataset} images are 32.")
    else:
        config = configs.cifar("cifar_attention56", dataset)
    if batch_size is not None:
        config.batch_size = batch_size
    if config.batch_size < 1 or config.image_size < 1:
        raise ValueError(
            f"batch_size and image_size must be positive, got {config.batch_size} "
            f"and {config.image_size}."
        )
    return config


def _photo(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A uint8 image with smooth structure and grain, so it compresses like a photo."""
    height, width, channels = shape
    coarse = rng.uniform(0, 255, (1, height // 8 + 2, width // 8 + 2, channels))
    image = tf.image.resize(coarse, [height, width], method="bicubic")[0].numpy()
    return np.clip(image + rng.normal(0, 16, image.shape), 0, 255).astype(np.uint8)


def _source_shapes(dataset: str) -> list[tuple[int, int, int]]:
    """Shapes of the POOL_SIZE source images of ``dataset``."""
    if dataset == "imagenet2012":
        return [(*IMAGENET_SOURCE_SHAPES[i % 4], 3) for i in range(POOL_SIZE)]
    return [(32, 32, 3)] * POOL_SIZE


def _encode(image: np.ndarray, dataset: str) -> bytes:
    """As the prepared tfds datasets store images: JPEG for ImageNet, PNG for CIFAR."""
    if dataset == "imagenet2012":
        return tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy()
    return tf.io.encode_png(image).numpy()


@contextmanager
def _mock_dataset(dataset: str, pool: list[bytes]) -> Iterator[None]:
    """tfds mocked: ``dataset`` has its real split sizes; example i is pool[i % len(pool)]."""
    images = tf.constant(pool)

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del decoders, read_config, shuffle_files  # Images stay encoded, as with SkipDecoding.
        num_classes = self.info.features["label"].num_classes
        return tf.data.Dataset.range(self.info.splits[split].num_examples).map(
            lambda i: {"image": tf.gather(images, i % len(pool)), "label": i % num_classes}
        )

    with tempfile.TemporaryDirectory() as data_dir:
        version = str(tfds.builder_cls(dataset).VERSION)
        splits = [
            {"name": name, "numShards": "1", "shardLengths": [str(n)]}
            for name, n in SPLIT_SIZES[dataset].items()
        ]
        metadata = Path(data_dir, dataset, version, "dataset_info.json")
        metadata.parent.mkdir(parents=True)
        metadata.write_text(json.dumps({"name": dataset, "version": version, "splits": splits}))
        with tfds.testing.mock_data(as_dataset_fn=as_dataset, data_dir=data_dir):
            yield


def benchmark(config: ml_collections.ConfigDict, batches: int, warmup: int) -> dict:
    """Times ``batches`` training batches of ``config`` after ``warmup`` untimed ones."""
    if batches < 1 or warmup < 0:
        raise ValueError(f"batches must be >= 1 and warmup >= 0, got {batches} and {warmup}.")
    rng = np.random.default_rng(0)
    shapes = _source_shapes(config.dataset)
    pool = [_encode(_photo(shape, rng), config.dataset) for shape in shapes]
    with _mock_dataset(config.dataset, pool):
        stream = input_pipeline.DataSet(config).train_batches()
        for _ in range(warmup):
            next(stream)
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(stream)
        seconds = time.perf_counter() - start
    return {
        "dataset": config.dataset,
        "batch_size": len(batch["image"]),
        "image_size": batch["image"].shape[1],
        "source_sizes": sorted({f"{h}x{w}" for h, w, _ in shapes}),
        "source_format": "jpeg" if config.dataset == "imagenet2012" else "png",
        "source_mean_bytes": sum(map(len, pool)) // len(pool),
        "batches": batches,
        "warmup": warmup,
        "seconds": seconds,
        "images_per_second": batches * len(batch["image"]) / seconds,
        "cpu_cores": len(os.sched_getaffinity(0)),
    }
