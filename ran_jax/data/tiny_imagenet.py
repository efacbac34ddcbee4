"""Tiny ImageNet-200: ``--config.dataset=tiny_imagenet`` reads the official archive.

200 ImageNet classes, 64x64 colour JPEGs: 100,000 training images (500 per class) and
10,000 validation images (50 per class); the 10,000 test images are unlabelled and not read.
The archive ``tiny-imagenet-200.zip`` (http://cs231n.stanford.edu/tiny-imagenet-200.zip), or
the folder ``tiny-imagenet-200/`` it unpacks to, goes in the manual dir
``<data_dir>/downloads/manual/``; the first run checks and prepares it once. Its layout::

    tiny-imagenet-200/wnids.txt                        the 200 class ids (WordNet ids)
    tiny-imagenet-200/words.txt                        id <TAB> readable names, comma-separated
    tiny-imagenet-200/train/<wnid>/images/*.JPEG
    tiny-imagenet-200/train/<wnid>/<wnid>_boxes.txt    file <TAB> x0 y0 x1 y1 per image
    tiny-imagenet-200/val/images/*.JPEG
    tiny-imagenet-200/val/val_annotations.txt          file <TAB> wnid <TAB> x0 y0 x1 y1
    tiny-imagenet-200/test/images/*.JPEG               unlabelled

Features: ``image`` (64x64x3 JPEG as stored; the few grey-scale files are read as RGB),
``label`` (the wnids; the readable names users see, the first name of each class in
``words.txt``, are kept in the info's metadata as ``class_names``) and ``box`` (top, left,
bottom, right, bottom and right exclusive, int32, as cluttered digits' ``box``, so the
attention localisation score works on these photos). ``check`` refuses an archive that is not
laid out so, in one line, before anything is written.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ran_jax.data.info import DataNotFoundError
from ran_jax.data.tf_runtime import tfds

NAME = "tiny_imagenet"
ARCHIVE = "tiny-imagenet-200.zip"
FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGE_SIZE = 64


class ArchiveError(ValueError):
    """The archive or folder is not laid out as Tiny ImageNet-200's."""


class _Source:
    """The files of the archive or of its unpacked folder, by path below its root."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self._zip = None
            names = [
                os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
                for d, _, files in os.walk(path)
                for f in files
            ]
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except (OSError, zipfile.BadZipFile) as e:
                raise ArchiveError(f"{path} is not a readable zip archive ({e}).") from e
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
        roots = sorted((n for n in names if posixpath.basename(n) == "wnids.txt"), key=len)
        if not roots:
            raise ArchiveError(
                f"{path} has no wnids.txt: it is not the Tiny ImageNet-200 archive "
                f"(expected {FOLDER}/wnids.txt, words.txt, train/ and val/; {URL})."
            )
        self.root = posixpath.dirname(roots[0])
        prefix = self.root + "/" if self.root else ""
        self.names = {n[len(prefix) :] for n in names if n.startswith(prefix)}

    def where(self, name: str) -> str:
        return f"{self.path}:{name}" if self._zip else str(self.path / name)

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise ArchiveError(f"{self.path} has no {name}; expected the {FOLDER} layout.")
        full = posixpath.join(self.root, name) if self.root else name
        if self._zip is not None:
            return self._zip.read(full)
        return (self.path / full).read_bytes()

    def lines(self, name: str) -> list[list[str]]:
        text = self.read(name).decode("utf-8")
        return [line.split("\t") for line in text.splitlines() if line.strip()]


@dataclasses.dataclass(frozen=True)
class Layout:
    """What ``check`` found: class ids, readable names, and (file, class index, box) per
    example of each split."""

    wnids: tuple[str, ...]
    class_names: tuple[str, ...]
    splits: dict[str, list[tuple[str, int, tuple[int, int, int, int]]]]


def _box(source: _Source, name: str, number: int, fields: list[str]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive, of Tiny ImageNet's inclusive x0 y0 x1 y1."""
    try:
        x0, y0, x1, y1 = (int(v) for v in fields)
    except ValueError:
        raise ArchiveError(
            f"{source.where(name)} line {number}: expected 4 box coordinates, got {fields}."
        ) from None
    return y0, x0, y1 + 1, x1 + 1


def check(source: _Source) -> Layout:
    """The layout of ``source``; ``ArchiveError`` naming the file at fault otherwise."""
    wnids = tuple(fields[0].strip() for fields in source.lines("wnids.txt"))
    if not wnids:
        raise ArchiveError(f"{source.where('wnids.txt')} lists no classes.")
    index = {wnid: i for i, wnid in enumerate(wnids)}
    words = {}
    if "words.txt" in source.names:
        words = {f[0].strip(): f[1].split(",")[0].strip() for f in source.lines("words.txt")}
    class_names = tuple(words.get(wnid) or wnid for wnid in wnids)
    train = []
    for wnid in wnids:
        boxes = f"train/{wnid}/{wnid}_boxes.txt"
        if boxes not in source.names:
            raise ArchiveError(
                f"{source.where(boxes)} is missing: class {wnid} of wnids.txt has no "
                "training images with boxes."
            )
        for number, fields in enumerate(source.lines(boxes), 1):
            image = f"train/{wnid}/images/{fields[0]}"
            if image not in source.names:
                raise ArchiveError(
                    f"{source.where(boxes)} line {number} names {image}, "
                    "which is not in the archive."
                )
            train.append((image, index[wnid], _box(source, boxes, number, fields[1:5])))
    annotations = "val/val_annotations.txt"
    validation = []
    for number, fields in enumerate(source.lines(annotations), 1):
        if len(fields) < 6:
            raise ArchiveError(
                f"{source.where(annotations)} line {number}: expected file, class and box."
            )
        if fields[1] not in index:
            raise ArchiveError(
                f"{source.where(annotations)} line {number} names class {fields[1]!r}, "
                "which is not in wnids.txt."
            )
        image = f"val/images/{fields[0]}"
        if image not in source.names:
            raise ArchiveError(
                f"{source.where(annotations)} line {number} names {image}, "
                "which is not in the archive."
            )
        validation.append((image, index[fields[1]], _box(source, annotations, number, fields[2:6])))
    return Layout(wnids, class_names, {"train": train, "validation": validation})


def find_source(manual_dir: Path) -> _Source | None:
    """The archive (or its unpacked folder) in ``manual_dir``; None if neither is there."""
    for candidate in (manual_dir / ARCHIVE, manual_dir / FOLDER):
        if candidate.exists():
            return _Source(candidate)
    return None


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
    """Tiny ImageNet-200 (Stanford CS231n): 200 classes of 64x64 photos with boxes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: train and validation, with boxes."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Download {ARCHIVE} from {URL} and place it (or the {FOLDER}/ folder it unpacks to) "
        "in the manual dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="jpeg"
                    ),
                    "label": tfds.features.ClassLabel(),  # names: the wnids, set when built
                    # The object's box: top, left, bottom, right (exclusive), pixels.
                    "box": tfds.features.Tensor(shape=(4,), dtype=np.int32),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.kaggle.com/c/tiny-imagenet",
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        source = find_source(Path(dl_manager.manual_dir))
        if source is None:
            raise DataNotFoundError(f"No {ARCHIVE} in {dl_manager.manual_dir}.")
        layout = check(source)
        self.info.features["label"].names = list(layout.wnids)
        self.info.metadata["class_names"] = list(layout.class_names)
        return {
            split: self._generate_examples(source, examples)
            for split, examples in layout.splits.items()
        }

    def _generate_examples(self, source: _Source, examples: list) -> Iterator:
        for name, label, box in examples:
            image = source.read(name)
            yield name, {"image": image, "label": label, "box": np.array(box, np.int32)}


def not_found_message(builder: tfds.core.DatasetBuilder) -> str:
    manual_dir = builder.data_dir_root / "downloads" / "manual"
    return (
        f"Dataset '{NAME}' is not prepared in data_dir {builder.data_dir_root} and is never "
        f"downloaded. Download {ARCHIVE} ({URL}) and place it, or the {FOLDER}/ folder it "
        f"unpacks to, in the manual dir {manual_dir}/; the next run prepares it once."
    )


def prepare(data_dir: str | None) -> TinyImagenet:
    """The prepared builder; prepares it from the manual dir first if need be.

    The archive is checked before anything is written (``ArchiveError``); without it,
    ``DataNotFoundError`` says where it goes.
    """
    builder = TinyImagenet(data_dir=data_dir)
    if builder.is_prepared():
        return builder
    manual_dir = Path(builder.data_dir_root) / "downloads" / "manual"
    source = find_source(manual_dir)
    if source is None:
        raise DataNotFoundError(not_found_message(builder))
    check(source)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder
