"""Prepared tfds builders: downloads where allowed, and the offline message where not.

CIFAR is downloaded by tfds when it is missing, the machine is online and
``config.download`` is true; ImageNet is never downloaded. A dataset that is missing and
cannot be downloaded raises ``DataNotFoundError`` saying how to supply it offline, within
seconds (``CONNECT_TIMEOUT_S``) and before anything is written.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Callable

import ml_collections
from absl import logging

from ran_jax.data.info import DataNotFoundError
from ran_jax.data.tf_runtime import tfds

CONNECT_TIMEOUT_S = 5.0


# (builder, why it is missing) -> the one-line message of DataNotFoundError.
Message = Callable[[tfds.core.DatasetBuilder, str], str]


def _not_prepared_message(
    builder: tfds.core.DatasetBuilder, why: str, archives: tuple[str, ...]
) -> str:
    """Explains why nothing was downloaded and where the prepared data or archives go."""
    name, root = builder.name, builder.data_dir_root
    manual_dir = root / "downloads" / "manual"
    build = f"tfds build {name} --data_dir={root} --manual_dir={manual_dir}"
    if not archives:  # tfds:NAME
        return (
            f"Dataset '{name}' is not prepared in data_dir {root} and {why}. Either copy a "
            f"prepared tfds folder to {builder.data_dir}/, or run `{build}` where it can be "
            f"downloaded (data sets that need manual archives say which in `tfds build`)."
        )
    return (
        f"Dataset '{name}' is not prepared in data_dir {root} and {why}. Either copy a "
        f"prepared tfds folder to {builder.data_dir}/, or place {' and '.join(archives)} in the "
        f"manual dir {manual_dir}/ and run `{build}`."
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


def _download(
    builder: tfds.core.DatasetBuilder, host: str | None, message: Message, allowed: bool
) -> None:
    """Downloads and prepares ``builder`` if that is allowed and possible, else raises."""
    if host is None:
        raise DataNotFoundError(message(builder, "is never downloaded"))
    if not allowed:
        raise DataNotFoundError(message(builder, "download is off (config.download=False)"))
    if not _reachable(host):
        raise DataNotFoundError(message(builder, f"cannot be downloaded: {host} is unreachable"))
    logging.info("Downloading and preparing %s in %s (once).", builder.name, builder.data_dir_root)
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - any failure of the download means: supply it
        why = f"its download failed ({type(e).__name__}: {e})"
        raise DataNotFoundError(message(builder, why)) from e


def prepared(
    builder: tfds.core.DatasetBuilder,
    config: ml_collections.ConfigDict,
    host: str | None,
    archives: tuple[str, ...] = (),
    message: Message | None = None,
) -> tfds.core.DatasetBuilder:
    """``builder``, downloaded and prepared first if it is not yet and ``config.download``
    allows it; else ``DataNotFoundError`` saying where the prepared data or ``archives`` go
    (or ``message(builder, why)``, for data sets with their own way in).

    ``host`` is where tfds downloads it from (None: never downloaded).
    """
    if not builder.is_prepared():
        message = message or functools.partial(_not_prepared_message, archives=archives)
        _download(builder, host, message, allowed=config.download)
    return builder
