"""Fashion-MNIST (Xiao et al. 2017): tfds's ``fashion_mnist``, also from its four local files.

Zalando's article images: 60,000 training and 10,000 test images, 28x28 grey, 10 classes.
The builder is tfds's own ``fashion_mnist`` (same name, version, features, splits and example
order). Online, tfds downloads the four files from
http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ and checks their checksums as
usual. Offline, it reads the same four files from a local directory, searched in this order:
the manual dir ``<data_dir>/downloads/manual/``, its ``fashion-mnist/`` folder, then
``/usr/share/datasets/fashion-mnist`` (where Debian's and Ubuntu's package
``dataset-fashion-mnist`` puts them). Those copies hold the official contents but were
compressed again, so their gzip bytes are not checked: ``check`` reads what they hold (IDX
headers, official counts, 28x28 images, labels 0-9, complete bodies) and refuses anything
else in one line, before anything is written.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ran_jax.data.tf_runtime import tf, tfds

NAME = "fashion_mnist"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
IMAGE_SIZE = 28
# The official number of examples of each split.
COUNTS = {"train": 60_000, "test": 10_000}
# The four files: name -> (split, kind).
FILES = {
    "train-images-idx3-ubyte.gz": ("train", "images"),
    "train-labels-idx1-ubyte.gz": ("train", "labels"),
    "t10k-images-idx3-ubyte.gz": ("test", "images"),
    "t10k-labels-idx1-ubyte.gz": ("test", "labels"),
}
# IDX magic numbers: unsigned bytes (0x08), then the number of dimensions.
_MAGIC = {"images": 0x0803, "labels": 0x0801}
_HEADER = {"images": 16, "labels": 8}
_CHUNK = 1 << 20
_ENCODE_BATCH = 4096

# Mean and std of the 60,000 x 784 training pixels scaled to [0, 1], measured with numpy from
# the files of Debian's dataset-fashion-mnist on 2026-12-06 (0.28604060, 0.35302424).
NORMALISATION = ((0.2860,), (0.3530,))
# The garment is every pixel above this value: the background is 0 (half of all test pixels)
# with faint values near the garment's edge; above 10 lie 46.9% of the test pixels, above 0
# 50.0% (numpy, the test file, 2026-12-06).
FOREGROUND = 10


class FilesError(ValueError):
    """The Fashion-MNIST files of a directory are missing, damaged or not Fashion-MNIST's."""


def _name(split: str, kind: str) -> str:
    return next(name for name, value in FILES.items() if value == (split, kind))


def _manual_dir(builder: tfds.core.DatasetBuilder) -> Path:
    return Path(builder.data_dir_root) / "downloads" / "manual"


def _hint(manual_dir: Path) -> str:
    return (
        f"Place the four Fashion-MNIST files ({', '.join(FILES)}) in {manual_dir}/; Debian and "
        f"Ubuntu ship them as the package {PACKAGE} (apt-get install {PACKAGE})."
    )


class _Refused(Exception):
    """What is wrong with one file (``check`` adds which file and where the files go)."""


def _check_file(path: Path, split: str, kind: str, counts: dict[str, int]) -> None:
    other = "labels" if kind == "images" else "images"
    with gzip.open(path, "rb") as f:
        header = f.read(_HEADER[kind])
        if len(header) >= 8:
            magic, count = struct.unpack(">II", header[:8])
            if magic == _MAGIC[other]:
                swapped = _name(split, other)
                raise _Refused(f"holds {other}, not {kind}: is it swapped with {swapped}?")
            if magic != _MAGIC[kind]:
                raise _Refused(
                    f"is not an IDX file of {kind} (magic number {magic}, expected {_MAGIC[kind]})"
                )
        if len(header) < _HEADER[kind]:
            raise _Refused(f"is too short for the {_HEADER[kind]}-byte IDX header of {kind}")
        if count != counts[split]:
            elsewhere = [s for s, n in counts.items() if n == count and s != split]
            hint = f": is it {_name(elsewhere[0], kind)}?" if elsewhere else ""
            raise _Refused(f"holds {count:,} {kind}, expected {counts[split]:,}{hint}")
        size = count
        if kind == "images":
            rows, cols = struct.unpack(">II", header[8:16])
            if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
                raise _Refused(f"holds {rows}x{cols} images, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
            size *= rows * cols
        read = 0
        while chunk := f.read(_CHUNK):
            if kind == "labels":
                values = np.frombuffer(chunk, np.uint8)
                if values.max() > 9:
                    at = read + int(np.argmax(values > 9))
                    raise _Refused(f"has label {values.max()} at position {at:,}, expected 0-9")
            read += len(chunk)
    if read != size:
        truncated = " (truncated)" if read < size else ""
        raise _Refused(
            f"holds {read:,} bytes of {kind} after its header, which says {size:,}{truncated}"
        )


def check(
    directory: str | Path,
    manual_dir: str | Path | None = None,
    counts: dict[str, int] | None = None,
) -> None:
    """Accept the four files of ``directory`` by their contents; ``FilesError`` otherwise.

    Each file is read once, streaming: gzip, IDX header (magic, count, 28x28), a body of the
    size the header says, labels 0-9. Images and labels of a split both hold the split's
    count, so they match. ``counts`` (split -> examples; the official ``COUNTS`` by default)
    serves small test files; ``manual_dir`` is where the refusal says the files go
    (``directory`` by default).
    """
    directory = Path(directory)
    hint = _hint(Path(manual_dir or directory))
    present = [name for name in FILES if (directory / name).is_file()]
    for name in FILES:
        if name not in present:
            holds = f"holds only {', '.join(present)}" if present else "holds none of them"
            raise FilesError(f"{directory / name} is missing ({directory} {holds}). {hint}")
    for name, (split, kind) in FILES.items():
        try:
            _check_file(directory / name, split, kind, counts or COUNTS)
        except _Refused as e:
            what = str(e)
        except EOFError:
            what = "is truncated: its gzip stream ends early"
        except (gzip.BadGzipFile, zlib.error) as e:
            what = f"is not a readable gzip file ({e})"
        except OSError as e:
            what = f"cannot be read ({e.strerror or e})"
        else:
            continue
        raise FilesError(f"{directory / name} {what}. {hint}")


def _read(path: os.PathLike, kind: str) -> np.ndarray:
    """The body of an IDX gzip file, as uint8."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=_HEADER[kind])


class FashionMnist(tfds.image_classification.FashionMNIST, skip_registration=True):
    """tfds's Fashion-MNIST, also prepared from its four local files (the manual dir)."""

    name = NAME
    # tfds keeps the download checksums with its own builder's code.
    url_infos = tfds.image_classification.FashionMNIST.url_infos
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Place the four Fashion-MNIST files ({', '.join(FILES)}) in the manual dir, or install "
        f"the Debian/Ubuntu package {PACKAGE}; or let tfds download them from {URL}."
    )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> list:
        try:
            directory = Path(dl_manager.manual_dir)
        except AssertionError:  # no manual dir, or an empty one
            return super()._split_generators(dl_manager)
        if not all((directory / name).is_file() for name in FILES):
            return super()._split_generators(dl_manager)
        generators = []
        for split in COUNTS:
            labels = directory / _name(split, "labels")
            with gzip.open(labels, "rb") as f:
                count = struct.unpack(">II", f.read(8))[1]
            kwargs = dict(
                num_examples=count,
                data_path=directory / _name(split, "images"),
                label_path=labels,
                compressed=True,
            )
            generators.append(tfds.core.SplitGenerator(name=split, gen_kwargs=kwargs))
        return generators

    def _generate_examples(
        self,
        num_examples: int,
        data_path: os.PathLike,
        label_path: os.PathLike,
        compressed: bool = False,
    ) -> Iterator:
        """tfds's examples; read from the gzip files themselves when ``compressed``."""
        if not compressed:
            yield from super()._generate_examples(num_examples, data_path, label_path)
            return
        images = _read(data_path, "images").reshape(num_examples, IMAGE_SIZE, IMAGE_SIZE, 1)
        labels = _read(label_path, "labels").astype(np.int64)
        for index, (png, label) in enumerate(zip(_encode_png(images), labels)):
            yield index, {"image": png, "label": label}


def _encode_png(images: np.ndarray) -> Iterator[bytes]:
    """Each image as the PNG bytes tfds's ``Image`` feature would write for it.

    The feature would encode them one eager TensorFlow call at a time; the same
    ``encode_png`` mapped in a tf.data pipeline gives the same bytes in parallel, and the
    feature stores bytes as they are (docs/data.md, "Fashion-MNIST").
    """
    encoded = (
        tf.data.Dataset.from_tensor_slices(images)
        .map(tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(_ENCODE_BATCH)
    )
    for batch in encoded.as_numpy_iterator():
        yield from batch


def _search(builder: tfds.core.DatasetBuilder) -> list[Path]:
    manual_dir = _manual_dir(builder)
    return [manual_dir, manual_dir / "fashion-mnist", DEBIAN_DIR]


def find_source(builder: tfds.core.DatasetBuilder) -> Path | None:
    """The first directory of the search that holds any of the four files; None if none."""
    for directory in _search(builder):
        if any((directory / name).is_file() for name in FILES):
            return directory
    return None


def not_found_message(builder: tfds.core.DatasetBuilder, why: str) -> str:
    """Why the data set is missing (``why``), and the ways to supply it, in one line."""
    return (
        f"Dataset '{NAME}' is not prepared in data_dir {builder.data_dir_root} and {why}. "
        f"Place the four Fashion-MNIST files ({', '.join(FILES)}) in the "
        f"manual dir {_manual_dir(builder)}/, or install the Debian/Ubuntu package {PACKAGE} "
        f"(apt-get install {PACKAGE}; found at {DEBIAN_DIR}), or download them from {URL}; "
        "the next run prepares it once."
    )


def prepare_from(
    builder: tfds.core.DatasetBuilder, directory: str | Path, counts: dict[str, int] | None = None
) -> None:
    """Check the four files of ``directory`` (``FilesError``, nothing written) and prepare
    ``builder`` from them."""
    check(directory, _manual_dir(builder), counts)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(directory))
    )


def prepare(data_dir: str | None) -> FashionMnist:
    """The builder, prepared from the local files if it was not and they are found.

    Without local files it is returned unprepared: the caller decides whether to download.
    """
    builder = FashionMnist(data_dir=data_dir)
    if not builder.is_prepared():
        directory = find_source(builder)
        if directory is not None:
            prepare_from(builder, directory)
    return builder
