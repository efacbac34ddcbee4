"""The data set of a config, opened once: ``DataSet``, its description and tf.data streams.

``DataSet(config)`` prepares the data set (``datasets``: one registered builder each) and
reads its ``DatasetInfo`` once; its streams give this process's training and evaluation
batches. Every process reads its own part of a split and yields numpy batches of
``batch_size // jax.process_count()`` examples; splitting them over local devices is the
training loop's job. How images are decoded and augmented lives in ``preprocess``. The
training loop, the evaluators and the commands take the ``DataSet``.

Exact resume: the training stream is a pure function of (config, process, ``start_step``).
Each epoch is a fixed shuffle of the process's examples seeded by (seed, epoch), and every
random draw of an example (augmentation, noisy label) comes from stateless ops keyed by the
seed and the example's index in the split, never by pipeline state. Resuming at step k skips
whole epochs without reading them and then ``k * B`` modulo the epoch size still-encoded
examples, so ``train_batches(start_step=k)`` yields exactly the batches an
uninterrupted run yields from its k-th on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import jax
import ml_collections
import numpy as np

from ran_jax.data import catalogue, datasets, image_files, image_folder, preprocess
from ran_jax.data.info import DataReadError, DatasetInfo
from ran_jax.data.tf_runtime import tf, tfds

# Independent random streams derived from config.seed.
_SHUFFLE, _AUGMENT, _NOISE, _ERASE = range(4)


def _reading(
    dataset: str,
    batches: Iterator[dict],
    damaged_file: Callable[[int], str | None] = lambda n: None,
) -> Iterator[dict]:
    """``batches``, with a failed read (a damaged image file) as one ``DataReadError``,
    which names the file where ``damaged_file(n)`` finds it in the n-th batch (from 0)."""
    n = 0
    try:
        for batch in batches:
            yield batch
            n += 1
    except tf.errors.OpError as e:
        why = damaged_file(n) or e.message.splitlines()[0]
        raise DataReadError(f"reading {dataset} failed: {why}") from e


def _damaged_file(
    builder: tfds.core.DatasetBuilder, split: str, info: DatasetInfo, indices: Iterable[int]
) -> str | None:
    """Why the first unreadable image among examples ``indices`` of ``split`` cannot be read,
    in one line naming its file; None where there is none or the builder names no files.

    A stream stops at the batch that holds a damaged example (tf.data keeps errors in order),
    so its examples are the only ones to read again.
    """
    if not isinstance(builder, image_folder.Folder):
        return None
    files = builder.files(split)
    for index in indices:
        try:
            image_files.read_image(files[index], info.num_channels)
        except ValueError as e:
            return str(e)
    return None


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
    image_key, label_key = catalogue.feature_keys(builder)
    decoders = {image_key: tfds.decode.SkipDecoding()}
    if isinstance(builder, tfds.ImageFolder):  # ImageFolder reads whole splits only.
        ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
        ds = ds.enumerate().skip(start).take(stop - start)
    else:
        ds = builder.as_dataset(
            split=f"{split}[{start}:{stop}]", shuffle_files=False, decoders=decoders
        )
        ds = ds.enumerate(start=start)
    if with_box:
        ds = ds.map(lambda index, ex: (index, ex[image_key], ex[label_key], ex["box"]))
    else:
        ds = ds.map(lambda index, ex: (index, ex[image_key], ex[label_key]))
    return ds.cache() if cache else ds


def _key(seed: int, stream: int, *data: tf.Tensor) -> tf.Tensor:
    """A seed for stateless random ops that depends only on ``seed``, ``stream`` and ``data``."""
    key = tf.constant([seed, stream], tf.int64)
    for value in data:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(value, tf.int64))
    return key


def noisy_label(
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


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


class DataSet:
    """``config.dataset``, prepared (downloaded where allowed) and described once.

    Raises ``DataNotFoundError`` when it is missing and cannot be downloaded, and a one-line
    ValueError for a name, split or size it cannot have, before anything is written.
    """

    def __init__(self, config: ml_collections.ConfigDict):
        build, argument = datasets.lookup(config.dataset)
        self.config = config
        source = build(argument, config)
        self._builder = source.builder
        self._foreground = source.foreground
        self.info: DatasetInfo = datasets.describe(config, source)

    def train_batches(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Endless augmented training batches of a process, from batch ``start_step`` on.

        Yields {'image': float32 [B, H, W, C], 'label': int32 [B]} with B = config.batch_size //
        process count. Batches run across epoch boundaries.
        """
        config, builder, info = self.config, self._builder, self.info
        process = _this_process()
        batch_size = _process_batch_size(config.batch_size, process[1])
        start, stop = _process_range(info.num_train, process, drop_remainder=True)
        examples = _read(builder, info.train_split, start, stop, config.cache)
        first_epoch, skip = divmod(start_step * batch_size, stop - start)

        def epochs(examples: tf.data.Dataset) -> tf.data.Dataset:
            """(epoch, *example) from epoch ``first_epoch`` on, each a fixed shuffle of
            ``examples``; their order depends on the seed and their number only."""

            def shuffled_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
                seed = tf.random.stateless_uniform(
                    [], _key(config.seed, _SHUFFLE, epoch), minval=None, maxval=None, dtype=tf.int64
                )
                shuffled = examples.shuffle(
                    config.shuffle_buffer, seed, reshuffle_each_iteration=False
                )
                return shuffled.map(lambda *example: (epoch, *example))

            return tf.data.Dataset.counter(first_epoch).flat_map(shuffled_epoch).skip(skip)

        def damaged_file(n: int) -> str | None:
            order = epochs(tf.data.Dataset.range(start, stop)).skip(n * batch_size)
            indices = (int(index) for _, index in order.take(batch_size).as_numpy_iterator())
            return _damaged_file(builder, info.train_split, info, indices)

        def prepare(
            epoch: tf.Tensor, index: tf.Tensor, image: tf.Tensor, label: tf.Tensor
        ) -> dict[str, tf.Tensor]:
            image = preprocess.train_image(image, _key(config.seed, _AUGMENT, epoch, index), info)
            if config.random_erasing:
                erase_key = _key(config.seed, _ERASE, epoch, index)
                image = preprocess.random_erase(image, erase_key, config.random_erasing)
            if config.label_noise:
                label = noisy_label(
                    label,
                    index,
                    num_classes=info.num_classes,
                    noise=config.label_noise,
                    seed=config.seed,
                )
            return {"image": image, "label": tf.cast(label, tf.int32)}

        ds = epochs(examples).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        batches = ds.with_options(_options()).as_numpy_iterator()
        return _reading(config.dataset, batches, damaged_file)

    def eval_batches(
        self, batch_size: int | None = None, num_examples: int | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """This process's part of the eval split (its first ``info.num_eval`` examples, or
        ``num_examples``), unaugmented, in padded batches of ``batch_size`` (global; default
        ``config.batch_size``).

        Yields {'image', 'label', 'mask'}, plus, for the attention localisation score, 'box'
        (int32 [B, 4]: top, left, bottom, right of the object) where the dataset records one,
        or else 'region' (bool [B, H, W]: the object's pixels) where its objects lie on a
        plain background (``Source.foreground``); mask (bool [B]) is False for the zero
        padding that fills the last batches. Every process yields the same number of batches,
        so collectives over them cannot hang, and no example is dropped.
        """
        config, builder, info = self.config, self._builder, self.info
        num_eval = min(info.num_eval, num_examples or info.num_eval)
        process = _this_process()
        batch_size = _process_batch_size(batch_size or config.batch_size, process[1])
        start, stop = _process_range(num_eval, process, drop_remainder=False)
        largest_part = -(-num_eval // process[1])
        num_batches = -(-largest_part // batch_size)

        with_box = "box" in builder.info.features
        threshold = None if with_box else self._foreground

        def prepare(index: tf.Tensor, image: tf.Tensor, label: tf.Tensor, *box: tf.Tensor) -> dict:
            del index
            example = {
                "image": preprocess.eval_image(image, info),
                "label": tf.cast(label, tf.int32),
            }
            if box:
                example["box"] = tf.cast(box[0], tf.int32)
            if threshold is not None:
                example["region"] = preprocess.foreground(example["image"], info, threshold)
            return {**example, "mask": True}

        ds = _read(builder, info.eval_split, start, stop, config.cache, with_box)
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        size = info.eval_image_size
        pad = {"image": tf.zeros([size, size, info.num_channels]), "label": 0}
        if with_box:
            pad["box"] = tf.zeros([4], tf.int32)
        if threshold is not None:
            pad["region"] = tf.zeros([size, size], tf.bool)
        padding = tf.data.Dataset.from_tensors({**pad, "mask": False}).repeat(
            num_batches * batch_size - (stop - start)
        )
        ds = ds.concatenate(padding).batch(batch_size).prefetch(tf.data.AUTOTUNE)

        def damaged_file(n: int) -> str | None:
            indices = range(start + n * batch_size, min(start + (n + 1) * batch_size, stop))
            return _damaged_file(builder, info.eval_split, info, indices)

        batches = ds.with_options(_options()).as_numpy_iterator()
        return _reading(config.dataset, batches, damaged_file)
