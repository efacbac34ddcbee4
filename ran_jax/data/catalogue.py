"""Any tfds image-classification data set: ``--config.dataset=tfds:NAME``.

NAME is what ``tfds.builder`` takes, with a config and version where wanted
(``tfds:oxford_flowers102``, ``tfds:imagenette/160px-v2``, ``tfds:svhn_cropped``). What the
network needs is read from the builder's info:

- the image and label features: the top-level ``Image`` and ``ClassLabel`` features (the ones
  named ``image`` and ``label`` where there are several); a data set without such a pair is
  refused in one line that lists the features it has;
- the splits: ``train``, and ``test`` or else ``validation`` (``config.train_split`` and
  ``config.eval_split`` choose others);
- image size and channels; square images of one size up to ``datasets.SMALL`` pixels get
  CIFAR's augmentation, larger or variable ones ImageNet's (``datasets.default_augmentation``);
- normalisation: per-channel mean and std of the pixels, scaled to [0, 1], of the first
  ``STATISTICS_EXAMPLES`` training images (each image weighs the same), computed once and
  stored beside the data in ``<builder data_dir>/STATISTICS_FILE``.
"""

from __future__ import annotations

import difflib
import json
import os

import numpy as np

from ran_jax.data.tf_runtime import tf, tfds

NAME = "tfds"
# tfds downloads each data set from its own hosts; reaching this one stands for "online".
HOST = "storage.googleapis.com"
STATISTICS_EXAMPLES = 1000
STATISTICS_FILE = "ran_jax_statistics.json"


def builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """``tfds.builder(name)``, prepared or not; a one-line ValueError for an unknown name or
    a data set without an image and a class label."""
    try:
        found = tfds.builder(name, data_dir=data_dir)
    except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
        base = name.split("/")[0].split(":")[0]
        if isinstance(e, tfds.core.registered.DatasetNotFoundError):
            close = difflib.get_close_matches(
                base, tfds.list_builders(with_community_datasets=False), 3
            )
            hint = f"; did you mean {', '.join(close)}?" if close else "; see tfds.list_builders()."
            raise ValueError(f"tfds has no data set {base!r}{hint}") from None
        raise ValueError(f"tfds:{name}: {str(e).splitlines()[0].rstrip(': ')}.") from None
    feature_keys(found)
    return found


def feature_keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    """(image, label) feature names of ``builder``; ValueError listing its features if it
    has no such pair."""
    features = builder.info.features
    if not isinstance(features, tfds.features.FeaturesDict):
        raise ValueError(
            f"{builder.name} has a single {type(features).__name__} feature, "
            "not an image and a class label."
        )
    kinds = {key: type(feature) for key, feature in features.items()}

    def first(kind: type, preferred: str) -> str | None:
        if preferred in features.keys() and isinstance(features[preferred], kind):
            return preferred
        return next((k for k, f in features.items() if isinstance(f, kind)), None)

    image = first(tfds.features.Image, "image")
    label = first(tfds.features.ClassLabel, "label")
    if image is None or label is None:
        has = ", ".join(f"{k} ({v.__name__})" for k, v in kinds.items())
        missing = "image feature" if image is None else "class-label feature"
        raise ValueError(
            f"tfds:{builder.name} cannot train a classifier: it has no {missing} "
            f"(its features: {has})."
        )
    return image, label


def default_splits(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    """(train, evaluation) split: ``train`` and ``test``, else ``validation``."""
    splits = builder.info.splits
    evaluation = next((s for s in ("test", "validation") if s in splits), "test")
    return "train", evaluation


def statistics(
    builder: tfds.core.DatasetBuilder, split: str, channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of the first STATISTICS_EXAMPLES images of ``split``, pixels
    scaled to [0, 1]: read from STATISTICS_FILE beside the data, else computed and stored."""
    path = os.path.join(os.fspath(builder.data_dir), STATISTICS_FILE)
    try:
        with open(path) as f:
            stored = json.load(f)
        if stored["split"] == split:
            return tuple(stored["mean"]), tuple(stored["std"])
    except (OSError, ValueError, KeyError):
        pass
    key = feature_keys(builder)[0]
    ds = builder.as_dataset(split=split, decoders={key: tfds.decode.SkipDecoding()})
    ds = ds.take(STATISTICS_EXAMPLES).map(
        lambda ex: (
            tf.cast(
                tf.io.decode_image(ex[key], channels=channels, expand_animations=False), tf.float32
            )
            / 255.0
        )
    )
    sums, squares, n = np.zeros(channels), np.zeros(channels), 0
    for image in ds.map(lambda x: (tf.reduce_mean(x, [0, 1]), tf.reduce_mean(x * x, [0, 1]))):
        sums += image[0].numpy()
        squares += image[1].numpy()
        n += 1
    if n == 0:
        raise ValueError(f"tfds:{builder.name} split {split!r} has no examples.")
    mean = sums / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 1e-12))
    result = tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)
    try:
        with open(path, "w") as f:
            json.dump({"split": split, "examples": n, "mean": result[0], "std": result[1]}, f)
    except OSError:  # read-only data: computed again by the next process
        pass
    return result
