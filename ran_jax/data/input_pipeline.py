"""tf.data input pipelines for CIFAR-10/100, ImageNet, cluttered digits and image folders.

Every process reads its own part of a split and yields numpy batches of ``batch_size //
jax.process_count()`` examples; splitting them over local devices is the training loop's job.

Exact resume: the training stream is a pure function of (config, process, ``start_step``).
Each epoch is a fixed shuffle of the process's examples seeded by (seed, epoch), and every
random draw of an example (augmentation, noisy label) comes from stateless ops keyed by the
seed and the example's index in the split, never by pipeline state. Resuming at step k skips
whole epochs without reading them and then ``k * B`` modulo the epoch size still-encoded
examples, so ``train_batches(config, start_step=k)`` yields exactly the batches an
uninterrupted run yields from its k-th on.

``config.dataset`` is a tfds name or ``image_folder:ROOT`` (``ROOT/train/<class>/*.jpg|png``
and ``ROOT/test/<class>/...``, read by tfds' ``ImageFolder``). CIFAR is downloaded by tfds
when it is missing, the machine is online and ``config.download`` is true; ImageNet is never
downloaded. A dataset that is missing and cannot be downloaded raises ``DataNotFoundError``
saying how to supply it offline.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from absl import logging  # noqa: E402

try:  # TensorFlow only feeds the host; the accelerators belong to JAX.
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TensorFlow had already initialised its devices.
    pass

from ran_jax.data import image_folder  # noqa: E402

IMAGE_FOLDER = image_folder.NAME  # config.dataset = "image_folder:ROOT"
# (train split, eval split) of each supported dataset.
SPLITS = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "imagenet2012": ("train", "validation"),
    "cluttered_digits": ("train", "test"),
    IMAGE_FOLDER: ("train", "test"),
}
# Per-channel (mean, std) of pixels scaled to [0, 1]; cluttered digits are only scaled.
# Image folders use ImageNet's statistics (every image is read as RGB).
IMAGENET_NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": IMAGENET_NORMALISATION,
    "cluttered_digits": ((0.0,), (1.0,)),
    IMAGE_FOLDER: IMAGENET_NORMALISATION,
}
# Datasets of images of any size: Inception-style crops for training, resize and centre
# crop for evaluation, at config.image_size and config.eval_image_size.
ANY_SIZE = ("imagenet2012", IMAGE_FOLDER)
CIFAR_PAD = 4  # Zero padding before the random crop (translation) of small images.
EVAL_CROP_FRACTION = 0.875  # ImageNet eval: shorter side resized to image_size / 0.875.
_MANUAL_ARCHIVES = {
    "cifar10": ("cifar-10-binary.tar.gz",),
    "cifar100": ("cifar-100-binary.tar.gz",),
    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
}
# Where tfds downloads what it may download (the host of the builders' URLs).
_DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "cifar100": "www.cs.toronto.edu"}
_CONNECT_TIMEOUT_S = 5.0
# Independent random streams derived from config.seed.
_SHUFFLE, _AUGMENT, _NOISE, _ERASE = range(4)
ERASE_AREA = (0.02, 0.4)  # random erasing: fraction of the image area erased,
ERASE_ASPECT = (0.3, 1 / 0.3)  # and the rectangle's height/width ratio (Zhong et al.)


class DataNotFoundError(Exception):
    """The dataset is not prepared in the data_dir; the message says how to supply it."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the model and the training loop need to know about a dataset."""

    name: str  # a key of SPLITS: "image_folder" for every image folder
    num_classes: int
    image_size: int  # training input side
    num_channels: int
    num_train: int
    num_eval: int  # examples evaluated: the eval split, or its first config.eval_examples
    train_split: str
    eval_split: str
    eval_image_size: int  # evaluation input side
    class_names: tuple[str, ...]

    @property
    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of pixels scaled to [0, 1]."""
        return NORMALISATION[self.name]


def base_name(dataset: str) -> str:
    """The SPLITS key of ``config.dataset``: ``image_folder:ROOT`` -> ``image_folder``."""
    return IMAGE_FOLDER if dataset.startswith(IMAGE_FOLDER + ":") else dataset


def _not_prepared_message(builder: tfds.core.DatasetBuilder, why: str) -> str:
    """Explains why nothing was downloaded and where the prepared data or archives go."""
    name, root = builder.name, builder.data_dir_root
    manual_dir = root / "downloads" / "manual"
    build = f"tfds build {name} --data_dir={root} --manual_dir={manual_dir}"
    archives = " and ".join(_MANUAL_ARCHIVES[name])
    return (
        f"Dataset '{name}' is not prepared in data_dir {root} and {why}. Either copy a "
        f"prepared tfds folder to {builder.data_dir}/, or place {archives} in the manual dir "
        f"{manual_dir}/ and run `{build}`."
    )


def _reachable(host: str, port: int = 443, timeout: float = _CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds.

    Name resolution has no timeout of its own, so the attempt runs in a daemon thread that is
    abandoned after ``timeout``: an offline machine never waits longer than that.
    """
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _download(builder: tfds.core.DatasetBuilder, allowed: bool) -> None:
    """Downloads and prepares ``builder`` if that is allowed and possible, else raises."""
    name = builder.name
    if name not in _DOWNLOAD_HOSTS:
        raise DataNotFoundError(_not_prepared_message(builder, "is never downloaded"))
    if not allowed:
        raise DataNotFoundError(
            _not_prepared_message(builder, "download is off (config.download=False)")
        )
    host = _DOWNLOAD_HOSTS[name]
    if not _reachable(host):
        raise DataNotFoundError(
            _not_prepared_message(builder, f"cannot be downloaded: {host} is unreachable")
        )
    logging.info("Downloading and preparing %s in %s (once).", name, builder.data_dir_root)
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - any failure of the download means: supply it
        raise DataNotFoundError(
            _not_prepared_message(builder, f"its download failed ({type(e).__name__}: {e})")
        ) from e


def _builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder of ``config.dataset``, downloading CIFAR if allowed."""
    name = base_name(config.dataset)
    if name not in SPLITS:
        raise ValueError(
            f"Unknown dataset {config.dataset!r}; valid names are: "
            f"{', '.join(n for n in SPLITS if n != IMAGE_FOLDER)} or {IMAGE_FOLDER}:ROOT."
        )
    if name == IMAGE_FOLDER:
        return image_folder.builder(config.dataset[len(IMAGE_FOLDER) + 1 :])
    if name == "cluttered_digits":  # Generated locally in seconds, no download.
        from ran_jax.data import cluttered_digits

        return cluttered_digits.prepare(config.data_dir)
    builder = tfds.builder(name, data_dir=config.data_dir)
    if not builder.is_prepared():
        _download(builder, allowed=config.get("download", True))
    return builder


def _info(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder) -> DatasetInfo:
    name = base_name(config.dataset)
    train_split, eval_split = SPLITS[name]
    eval_split = config.get("eval_split") or eval_split
    features, splits = builder.info.features, builder.info.splits
    for split in (train_split, eval_split):
        if split not in splits:
            raise ValueError(
                f"{config.dataset} has no split {split!r}; its splits are: "
                f"{', '.join(sorted(splits))}."
            )
    height, _, channels = features["image"].shape
    image_size = config.image_size if height is None else height
    eval_image_size = config.get("eval_image_size") or image_size
    if height is not None and eval_image_size != height:
        raise ValueError(
            f"config.eval_image_size={eval_image_size} needs images of any size; "
            f"{name} images are all {height}x{height} and are evaluated at that size."
        )
    num_eval = splits[eval_split].num_examples
    limit = config.get("eval_examples")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"config.eval_examples must be positive, got {limit}.")
        num_eval = min(num_eval, limit)
    label = features["label"]
    return DatasetInfo(
        name=name,
        num_classes=label.num_classes,
        image_size=image_size,
        num_channels=channels,
        num_train=splits[train_split].num_examples,
        num_eval=num_eval,
        train_split=train_split,
        eval_split=eval_split,
        eval_image_size=eval_image_size,
        class_names=tuple(label.names),
    )


def dataset_info(config: ml_collections.ConfigDict) -> DatasetInfo:
    """Classes, image shape and split sizes of ``config.dataset`` (must be prepared)."""
    return _info(config, _builder(config))


def _this_process() -> tuple[int, int]:
    return jax.process_index(), jax.process_count()


def _process_batch_size(global_batch_size: int, count: int) -> int:
    if global_batch_size % count:
        raise ValueError(
            f"batch_size {global_batch_size} is not divisible by the {count} processes."
        )
    return global_batch_size // count


def _process_range(
    num_examples: int, process: tuple[int, int], *, drop_remainder: bool
) -> tuple[int, int]:
    """[start, stop) of process ``(index, count)``'s part of a split, as
    ``tfds.split_for_jax_process``."""
    index, count = process
    size, rest = divmod(num_examples, count)
    if drop_remainder:
        return index * size, (index + 1) * size
    start = index * size + min(index, rest)
    return start, start + size + int(index < rest)


def _read(
    builder: tfds.core.DatasetBuilder,
    split: str,
    start: int,
    stop: int,
    cache: bool,
    with_box: bool = False,
) -> tf.data.Dataset:
    """(index in the split, encoded image, label[, box]) of examples start..stop-1, in file
    order; ``box`` is the object's (top, left, bottom, right) where the dataset has one.

    Images stay encoded so that skipping examples on resume costs no decoding.
    """
    decoders = {"image": tfds.decode.SkipDecoding()}
    if isinstance(builder, tfds.ImageFolder):  # ImageFolder reads whole splits only.
        ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        ds = ds.enumerate().skip(start).take(stop - start)
    else:
        ds = builder.as_dataset(
            split=f"{split}[{start}:{stop}]", shuffle_files=False, decoders=decoders
        )
        ds = ds.enumerate(start=start)
    if with_box:
        ds = ds.map(lambda index, ex: (index, ex["image"], ex["label"], ex["box"]))
    else:
        ds = ds.map(lambda index, ex: (index, ex["image"], ex["label"]))
    return ds.cache() if cache else ds


def _key(seed: int, stream: int, *data: tf.Tensor) -> tf.Tensor:
    """A seed for stateless random ops that depends only on ``seed``, ``stream`` and ``data``."""
    key = tf.constant([seed, stream], tf.int64)
    for value in data:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(value, tf.int64))
    return key


def _noisy_label(
    label: tf.Tensor, index: tf.Tensor, *, num_classes: int, noise: float, seed: int
) -> tf.Tensor:
    """Keeps ``label`` with probability 1 - noise, else draws one of the other classes uniformly.

    The corruption matrix of paper section 4.1: Q_ii = r = 1 - noise, Q_ij = (1 - r) / (C - 1).
    Keyed by the example's index in the split, so it is the same in every epoch and process.
    """
    flip_key, class_key = tf.unstack(
        tf.random.experimental.stateless_split(_key(seed, _NOISE, index), 2)
    )
    flip = tf.random.stateless_uniform([], flip_key) < noise
    shift = tf.random.stateless_uniform([], class_key, minval=1, maxval=num_classes, dtype=tf.int64)
    return tf.where(flip, (label + shift) % num_classes, label)


def noisy_labels(labels: np.ndarray, num_classes: int, noise: float, seed: int) -> np.ndarray:
    """The noisy training labels, ``labels[i]`` being the label of example i of the train split.

    Exactly the labels ``train_batches`` yields when ``config.label_noise == noise``.
    """
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(labels, np.int64)).enumerate()
    ds = ds.map(
        lambda index, label: _noisy_label(
            label, index, num_classes=num_classes, noise=noise, seed=seed
        )
    )
    batches = list(ds.batch(4096).as_numpy_iterator())
    return np.concatenate([np.empty(0, np.int64), *batches]).astype(np.asarray(labels).dtype)


def _decode_small(image_bytes: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """A CIFAR or cluttered digits PNG as uint8 [S, S, C]."""
    image = tf.io.decode_png(image_bytes, channels=info.num_channels)
    return tf.ensure_shape(image, [info.image_size, info.image_size, info.num_channels])


def decode_any(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """A JPEG, PNG, GIF (first frame) or BMP image as uint8 [H, W, channels]; grey-scale
    images are repeated into RGB and alpha is dropped."""
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


def _pad_and_crop(image: tf.Tensor, key: tf.Tensor, pad: int = CIFAR_PAD) -> tf.Tensor:
    """Zero-pads ``pad`` pixels per side and takes a random crop of the original size."""
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed=key)


def _random_resized_crop(
    image_bytes: tf.Tensor, key: tf.Tensor, size: int, jpeg: bool = True
) -> tf.Tensor:
    """Inception-style crop of 8-100% of the area, aspect ratio 3/4-4/3, resized to size^2.

    For JPEGs (``jpeg``) only the crop is decoded; other formats are decoded whole first.
    After 10 failed draws the whole image is used. The resize is plain bilinear (as
    Inception's preprocessing): anti-aliasing cost 60% of the time per image and made this
    the limit of the step rate (``pipeline_benchmark.py``).
    """
    if jpeg:
        shape = tf.io.extract_jpeg_shape(image_bytes)
    else:
        image = decode_any(image_bytes, 3)
        shape = tf.shape(image)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=key,
        min_object_covered=0.0,  # The box is the whole image: area_range alone decides.
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    if jpeg:
        window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
        image = tf.io.decode_and_crop_jpeg(image_bytes, window, channels=3)
    else:
        image = tf.slice(image, begin, crop_size)
    return tf.image.resize(image, [size, size])


def resize_and_centre_crop(image: tf.Tensor, size: int, crop_fraction: float) -> tf.Tensor:
    """Evaluation view of a decoded image of any size: the shorter side resized to
    ``size / crop_fraction`` (anti-aliased), then the central size^2 crop; float32 pixels."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = round(size / crop_fraction) / tf.reduce_min(shape)
    image = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32), antialias=True)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def normalise(image: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """Pixels (0-255) to the network's input: scaled to [0, 1], then per-channel mean/std."""
    mean, std = info.normalisation
    return (tf.cast(image, tf.float32) / 255.0 - mean) / std


def _train_image(image_bytes: tf.Tensor, key: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """Decoded, augmented (paper section 4) and normalised training image."""
    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    if info.name in ANY_SIZE:
        jpeg = info.name == "imagenet2012"  # tfds stores all of ImageNet as JPEG
        image = _random_resized_crop(image_bytes, crop_key, info.image_size, jpeg)
    else:
        image = _pad_and_crop(_decode_small(image_bytes, info), crop_key)
    if info.name != "cluttered_digits":  # Mirrored digits are not digits.
        image = tf.image.stateless_random_flip_left_right(image, flip_key)
    return normalise(image, info)


def random_erase(image: tf.Tensor, key: tf.Tensor, prob: float) -> tf.Tensor:
    """With probability ``prob``, fills a random rectangle of a normalised image with
    standard normal noise (random erasing, Zhong et al. 2020).

    The rectangle covers ERASE_AREA of the image with a height/width ratio in ERASE_ASPECT
    (log-uniform), clipped to the image where it does not fit, at a uniform position.
    """
    keys = tf.unstack(tf.random.experimental.stateless_split(key, 6))
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    area = tf.random.stateless_uniform([], keys[0], *ERASE_AREA) * height * width
    log_aspect = tf.random.stateless_uniform([], keys[1], *np.log(ERASE_ASPECT))
    erase_h = tf.clip_by_value(tf.round(tf.sqrt(area * tf.exp(log_aspect))), 1.0, height)
    erase_w = tf.clip_by_value(tf.round(tf.sqrt(area / tf.exp(log_aspect))), 1.0, width)
    top = tf.floor(tf.random.stateless_uniform([], keys[2]) * (height - erase_h + 1))
    left = tf.floor(tf.random.stateless_uniform([], keys[3]) * (width - erase_w + 1))
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + erase_h) & (cols >= left) & (cols < left + erase_w)
    inside &= tf.random.stateless_uniform([], keys[4]) < prob
    noise = tf.random.stateless_normal(shape, keys[5])
    return tf.where(inside[:, :, None], noise, image)


def eval_view(image: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """A decoded uint8 image [H, W, C] of any size as the network sees it in evaluation.

    Datasets of images of any size: shorter side to eval_image_size / 0.875, centre crop.
    Fixed-size datasets: their own images pass unchanged; other sizes get the shorter side
    resized to the dataset's size and the centre crop (what ``predict`` needs).
    """
    size = info.eval_image_size
    if info.name in ANY_SIZE:
        image = resize_and_centre_crop(image, size, EVAL_CROP_FRACTION)
    elif tuple(image.shape[:2]) != (size, size):
        image = resize_and_centre_crop(image, size, 1.0)
    return normalise(image, info)


def _eval_image(image_bytes: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    if info.name in ANY_SIZE:
        return eval_view(decode_any(image_bytes, info.num_channels), info)
    return eval_view(_decode_small(image_bytes, info), info)


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def train_batches(
    config: ml_collections.ConfigDict,
    *,
    start_step: int = 0,
    process: tuple[int, int] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless augmented training batches of a process, from batch ``start_step`` on.

    Yields {'image': float32 [B, H, W, C], 'label': int32 [B]} with B = config.batch_size //
    count, where ``process`` = (index, count) defaults to this process of this job. Batches
    run across epoch boundaries.
    """
    if not 0 <= config.label_noise < 1:
        raise ValueError(f"label_noise must be in [0, 1), got {config.label_noise}.")
    builder = _builder(config)
    info = _info(config, builder)
    process = process or _this_process()
    batch_size = _process_batch_size(config.batch_size, process[1])
    start, stop = _process_range(info.num_train, process, drop_remainder=True)
    examples = _read(builder, info.train_split, start, stop, config.get("cache", False))
    first_epoch, skip = divmod(start_step * batch_size, stop - start)

    def shuffled_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        seed = tf.random.stateless_uniform(
            [], _key(config.seed, _SHUFFLE, epoch), minval=None, maxval=None, dtype=tf.int64
        )
        shuffled = examples.shuffle(config.shuffle_buffer, seed, reshuffle_each_iteration=False)
        return shuffled.map(lambda index, image, label: (epoch, index, image, label))

    def preprocess(
        epoch: tf.Tensor, index: tf.Tensor, image: tf.Tensor, label: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        image = _train_image(image, _key(config.seed, _AUGMENT, epoch, index), info)
        if config.get("random_erasing"):
            erase_key = _key(config.seed, _ERASE, epoch, index)
            image = random_erase(image, erase_key, config.random_erasing)
        if config.label_noise:
            label = _noisy_label(
                label,
                index,
                num_classes=info.num_classes,
                noise=config.label_noise,
                seed=config.seed,
            )
        return {"image": image, "label": tf.cast(label, tf.int32)}

    ds = tf.data.Dataset.counter(first_epoch).flat_map(shuffled_epoch).skip(skip)
    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()


def eval_batches(config: ml_collections.ConfigDict) -> Iterator[dict[str, np.ndarray]]:
    """This process's part of the whole eval split, unaugmented, in padded batches.

    Yields {'image', 'label', 'mask'}, plus 'box' (int32 [B, 4]: top, left, bottom, right
    of the object, for the attention localisation score) where the dataset records one;
    mask (bool [B]) is False for the zero padding that fills the last batches. Every process
    yields the same number of batches, so collectives over them cannot hang, and no example
    is dropped.
    """
    builder = _builder(config)
    info = _info(config, builder)
    process = _this_process()
    batch_size = _process_batch_size(config.batch_size, process[1])
    start, stop = _process_range(info.num_eval, process, drop_remainder=False)
    largest_part = -(-info.num_eval // process[1])
    num_batches = -(-largest_part // batch_size)

    with_box = "box" in builder.info.features

    def preprocess(index: tf.Tensor, image: tf.Tensor, label: tf.Tensor, *box: tf.Tensor) -> dict:
        del index
        example = {"image": _eval_image(image, info), "label": tf.cast(label, tf.int32)}
        if box:
            example["box"] = tf.cast(box[0], tf.int32)
        return {**example, "mask": True}

    ds = _read(builder, info.eval_split, start, stop, config.get("cache", False), with_box)
    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    size = info.eval_image_size
    pad = {"image": tf.zeros([size, size, info.num_channels]), "label": 0}
    if with_box:
        pad["box"] = tf.zeros([4], tf.int32)
    padding = tf.data.Dataset.from_tensors({**pad, "mask": False}).repeat(
        num_batches * batch_size - (stop - start)
    )
    ds = ds.concatenate(padding).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options()).as_numpy_iterator()
