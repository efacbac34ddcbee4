"""The prepared tfds builder of ``config.dataset``, and the ``DatasetInfo`` it describes.

CIFAR is downloaded by tfds when it is missing, the machine is online and
``config.download`` is true; ImageNet is never downloaded. A dataset that is missing and
cannot be downloaded raises ``DataNotFoundError`` saying how to supply it offline, within
seconds (``CONNECT_TIMEOUT_S``) and before anything is written.
"""

from __future__ import annotations

import socket
import threading

import ml_collections
from absl import logging

from ran_jax.data import catalogue
from ran_jax.data.datasets import Dataset, lookup
from ran_jax.data.info import DataNotFoundError, DatasetInfo
from ran_jax.data.tf_runtime import tfds

CONNECT_TIMEOUT_S = 5.0


def _not_prepared_message(record: Dataset, builder: tfds.core.DatasetBuilder, why: str) -> str:
    """Explains why nothing was downloaded and where the prepared data or archives go."""
    name, root = builder.name, builder.data_dir_root
    manual_dir = root / "downloads" / "manual"
    build = f"tfds build {name} --data_dir={root} --manual_dir={manual_dir}"
    archives = " and ".join(record.manual_archives)
    if not archives:  # tfds:NAME
        return (
            f"Dataset '{name}' is not prepared in data_dir {root} and {why}. Either copy a "
            f"prepared tfds folder to {builder.data_dir}/, or run `{build}` where it can be "
            f"downloaded (data sets that need manual archives say which in `tfds build`)."
        )
    return (
        f"Dataset '{name}' is not prepared in data_dir {root} and {why}. Either copy a "
        f"prepared tfds folder to {builder.data_dir}/, or place {archives} in the manual dir "
        f"{manual_dir}/ and run `{build}`."
    )


def _reachable(host: str, port: int = 443) -> bool:
    """Whether a TCP connection to ``host`` opens within ``CONNECT_TIMEOUT_S`` seconds.

    Name resolution has no timeout of its own, so the attempt runs in a daemon thread that is
    abandoned after the timeout: an offline machine never waits longer than that.
    """
    timeout = CONNECT_TIMEOUT_S
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


def _download(record: Dataset, builder: tfds.core.DatasetBuilder, allowed: bool) -> None:
    """Downloads and prepares ``builder`` if that is allowed and possible, else raises."""
    host = record.download_host
    if host is None:
        raise DataNotFoundError(_not_prepared_message(record, builder, "is never downloaded"))
    if not allowed:
        raise DataNotFoundError(
            _not_prepared_message(record, builder, "download is off (config.download=False)")
        )
    if not _reachable(host):
        raise DataNotFoundError(
            _not_prepared_message(record, builder, f"cannot be downloaded: {host} is unreachable")
        )
    logging.info("Downloading and preparing %s in %s (once).", builder.name, builder.data_dir_root)
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - any failure of the download means: supply it
        raise DataNotFoundError(
            _not_prepared_message(record, builder, f"its download failed ({type(e).__name__}: {e})")
        ) from e


def builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    """The prepared tfds builder of ``config.dataset``, downloading it if allowed."""
    record, argument = lookup(config.dataset)
    builder = record.builder(argument, config.data_dir)
    if not record.prepares_itself and not builder.is_prepared():
        _download(record, builder, allowed=config.get("download", True))
    return builder


def describe(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder) -> DatasetInfo:
    """The ``DatasetInfo`` of ``config.dataset`` read from its prepared builder."""
    record, _ = lookup(config.dataset)
    image_key, label_key = catalogue.feature_keys(builder)
    if record.from_data:
        train_split, eval_split = catalogue.default_splits(builder)
        any_size, jpeg, flip = catalogue.augmentation(builder)
    else:
        (train_split, eval_split), any_size = record.splits, record.any_size
        jpeg, flip = record.jpeg, record.flip
    train_split = config.get("train_split") or train_split
    eval_split = config.get("eval_split") or eval_split
    features, splits = builder.info.features, builder.info.splits
    for split in (train_split, eval_split):
        if split not in splits:
            raise ValueError(
                f"{config.dataset} has no split {split!r}; its splits are: "
                f"{', '.join(sorted(splits))}."
            )
    height, _, channels = features[image_key].shape
    channels = channels or 3
    image_size = config.image_size if height is None else height
    eval_image_size = config.get("eval_image_size") or image_size
    if height is not None and not any_size and eval_image_size != height:
        raise ValueError(
            f"config.eval_image_size={eval_image_size} needs images of any size; "
            f"{config.dataset} images are all {height}x{height} and are evaluated at that size."
        )
    num_eval = splits[eval_split].num_examples
    limit = config.get("eval_examples")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"config.eval_examples must be positive, got {limit}.")
        num_eval = min(num_eval, limit)
    label = features[label_key]
    metadata = builder.info.metadata or {}
    class_names = metadata.get("class_names") or label.names  # readable names where kept
    if record.from_data:
        normalisation = catalogue.statistics(builder, train_split, channels)
    else:
        normalisation = record.normalisation
    return DatasetInfo(
        name=record.name,
        num_classes=label.num_classes,
        image_size=image_size,
        num_channels=channels,
        num_train=splits[train_split].num_examples,
        num_eval=num_eval,
        train_split=train_split,
        eval_split=eval_split,
        eval_image_size=eval_image_size,
        class_names=tuple(class_names),
        normalisation=normalisation,
        any_size=any_size,
        jpeg=jpeg,
        flip=flip,
    )
