"""The registered data sets: one small builder function each, as scenic's ``dataset_lib``.

``config.dataset`` names one, or ``NAME:ARGUMENT`` for one that takes an argument
(``image_folder:ROOT``, ``tfds:NAME``). A builder function takes the argument and the config
and returns the data set's ``Source``: its prepared tfds builder, default splits,
normalisation and augmentation (``configs.AUGMENTATIONS``). ``describe`` reads the rest from
the builder. To add a data set, register one more function.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable, Iterable

import ml_collections

from ran_jax.data import (
    catalogue,
    cluttered_digits,
    downloads,
    fashion_mnist,
    image_folder,
    tiny_imagenet,
)
from ran_jax.data.info import DatasetInfo, any_size
from ran_jax.data.tf_runtime import tfds

Normalisation = tuple[tuple[float, ...], tuple[float, ...]]
# Per-channel (mean, std) of ImageNet's pixels scaled to [0, 1].
IMAGENET_NORMALISATION: Normalisation = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Per-channel (mean, std) of Tiny ImageNet-200's training pixels as commonly published (std
# over all pixels, as CIFAR's below); not re-measured here, the archive cannot be downloaded
# on the machines this was written on.
TINY_IMAGENET_NORMALISATION: Normalisation = ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821))
# Per-channel (mean, std) of CIFAR's training pixels scaled to [0, 1].
CIFAR10_NORMALISATION: Normalisation = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_NORMALISATION: Normalisation = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
CIFAR_HOST = "www.cs.toronto.edu"
SMALL = 64  # square images of one size up to this side get CIFAR's augmentation


@dataclasses.dataclass(frozen=True)
class Source:
    """A data set's prepared tfds builder and how to read it."""

    builder: tfds.core.DatasetBuilder
    splits: tuple[str, str]  # default (train, evaluation) splits
    normalisation: Normalisation  # per-channel (mean, std) of pixels scaled to [0, 1]
    augmentation: str  # of ``configs.AUGMENTATIONS``; config.augmentation overrides it
    image_size: int | None = None  # side of every image where the builder's features lack it
    # Pixel value (0-255) above which a pixel is the object's, for sets of objects on a plain
    # background without boxes: their attention localisation region (``eval_batches``).
    foreground: int | None = None


Builder = Callable[[str, ml_collections.ConfigDict], Source]


@dataclasses.dataclass(frozen=True)
class _Entry:
    build: Builder
    argument: str | None  # what NAME:ARGUMENT's argument is, in messages; None: takes none


REGISTRY: dict[str, _Entry] = {}


def register(name: str, argument: str | None = None) -> Callable[[Builder], Builder]:
    """Registers a builder function as the data set ``name`` (``name:ARGUMENT`` where
    ``argument`` names what follows the colon)."""

    def add(build: Builder) -> Builder:
        REGISTRY[name] = _Entry(build, argument)
        return build

    return add


def lookup(dataset: str) -> tuple[Builder, str]:
    """(builder function, argument) of ``config.dataset``; ValueError naming the valid names."""
    name, _, argument = dataset.partition(":")
    entry = REGISTRY.get(name)
    if entry is None or (entry.argument is None) == bool(argument):
        valid = [f"{n}:{e.argument}" if e.argument else n for n, e in REGISTRY.items()]
        raise ValueError(
            f"Unknown dataset {dataset!r}; valid names are: {', '.join(valid[:-1])} or {valid[-1]}."
        )
    return entry.build, argument


def default_augmentation(height: int | None, width: int | None) -> str:
    """CIFAR's augmentation for square images of one size up to SMALL pixels, else ImageNet's."""
    small = height is not None and height == width and height <= SMALL
    return "pad_crop_flip" if small else "resized_crop_flip"


def check_split(dataset: str, key: str, split: str, splits: Iterable[str]) -> None:
    """A one-line ValueError naming ``config.<key>`` unless ``split`` is one of ``splits``."""
    if split not in splits:
        raise ValueError(
            f"config.{key}={split!r}: {dataset} has no such split; its splits are: "
            f"{', '.join(sorted(splits))}."
        )


def describe(config: ml_collections.ConfigDict, source: Source) -> DatasetInfo:
    """The ``DatasetInfo`` of ``config.dataset``, read from its ``source``; a one-line
    ValueError for a split, augmentation or evaluation size the data cannot have."""
    builder = source.builder
    image_key, label_key = catalogue.feature_keys(builder)
    features, splits = builder.info.features, builder.info.splits
    train_split = config.train_split or source.splits[0]
    eval_split = config.eval_split or source.splits[1]
    for key, split in (("train_split", train_split), ("eval_split", eval_split)):
        check_split(config.dataset, key, split, splits)
    height, _, channels = features[image_key].shape
    height = height or source.image_size
    channels = channels or 3
    augmentation = config.augmentation or source.augmentation
    if height is None and not any_size(augmentation):
        raise ValueError(
            f"config.augmentation={augmentation!r} needs images of one size, and "
            f"{config.dataset}'s differ; use 'resized_crop_flip'."
        )
    image_size = config.image_size if any_size(augmentation) else height
    eval_image_size = config.eval_image_size or image_size
    if not any_size(augmentation) and eval_image_size != height:
        raise ValueError(
            f"config.eval_image_size={eval_image_size} needs images of any size; "
            f"{config.dataset} images are all {height}x{height} and are evaluated at that size "
            f"with the augmentation {augmentation!r}."
        )
    num_eval = splits[eval_split].num_examples
    if config.eval_examples is not None:
        num_eval = min(num_eval, config.eval_examples)
    metadata = builder.info.metadata or {}
    class_names = metadata.get("class_names") or features[label_key].names  # readable names
    return DatasetInfo(
        name=config.dataset.partition(":")[0],
        num_classes=features[label_key].num_classes,
        image_size=image_size,
        num_channels=channels,
        num_train=splits[train_split].num_examples,
        num_eval=num_eval,
        train_split=train_split,
        eval_split=eval_split,
        eval_image_size=eval_image_size,
        class_names=tuple(class_names),
        normalisation=source.normalisation,
        augmentation=augmentation,
    )


@register("cifar10")
def _cifar10(_: str, config: ml_collections.ConfigDict) -> Source:
    builder = tfds.builder("cifar10", data_dir=config.data_dir)
    return Source(
        downloads.prepared(builder, config, CIFAR_HOST, ("cifar-10-binary.tar.gz",)),
        ("train", "test"),
        CIFAR10_NORMALISATION,
        "pad_crop_flip",
    )


@register("cifar100")
def _cifar100(_: str, config: ml_collections.ConfigDict) -> Source:
    builder = tfds.builder("cifar100", data_dir=config.data_dir)
    return Source(
        downloads.prepared(builder, config, CIFAR_HOST, ("cifar-100-binary.tar.gz",)),
        ("train", "test"),
        CIFAR100_NORMALISATION,
        "pad_crop_flip",
    )


@register("imagenet2012")
def _imagenet2012(_: str, config: ml_collections.ConfigDict) -> Source:
    builder = tfds.builder("imagenet2012", data_dir=config.data_dir)
    archives = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
    return Source(
        downloads.prepared(builder, config, None, archives),  # never downloaded
        ("train", "validation"),
        IMAGENET_NORMALISATION,
        "resized_crop_flip",
    )


@register("cluttered_digits")
def _cluttered_digits(_: str, config: ml_collections.ConfigDict) -> Source:
    # Generated locally in seconds, no download; pixels only scaled to [0, 1]; mirrored
    # digits are no digits, so no flips.
    return Source(
        cluttered_digits.prepare(config.data_dir), ("train", "test"), ((0.0,), (1.0,)), "pad_crop"
    )


@register(image_folder.NAME, "ROOT")
def _image_folder(root: str, _: ml_collections.ConfigDict) -> Source:
    folder = image_folder.builder(root)
    return Source(
        folder,
        image_folder.SPLITS,
        IMAGENET_NORMALISATION,  # every image is read as RGB
        default_augmentation(folder.image_size, folder.image_size),
        image_size=folder.image_size,
    )


@register(fashion_mnist.NAME)
def _fashion_mnist(_: str, config: ml_collections.ConfigDict) -> Source:
    # Prepared from the four local files where found; else downloaded by tfds if allowed.
    builder = fashion_mnist.prepare(config.data_dir)
    host = urllib.parse.urlparse(fashion_mnist.URL).hostname
    return Source(
        downloads.prepared(builder, config, host, message=fashion_mnist.not_found_message),
        ("train", "test"),
        fashion_mnist.NORMALISATION,
        "pad_crop_flip",
        foreground=fashion_mnist.FOREGROUND,
    )


@register(tiny_imagenet.NAME)
def _tiny_imagenet(_: str, config: ml_collections.ConfigDict) -> Source:
    return Source(
        tiny_imagenet.prepare(config.data_dir),
        ("train", "validation"),
        TINY_IMAGENET_NORMALISATION,
        "pad_crop_flip",
    )


@register(catalogue.NAME, "NAME")
def _tfds(name: str, config: ml_collections.ConfigDict) -> Source:
    builder = downloads.prepared(catalogue.builder(name, config.data_dir), config, catalogue.HOST)
    splits = catalogue.default_splits(builder)
    height, width, channels = builder.info.features[catalogue.feature_keys(builder)[0]].shape
    train_split = config.train_split or splits[0]
    check_split(config.dataset, "train_split", train_split, builder.info.splits)
    return Source(
        builder,
        splits,
        catalogue.statistics(builder, train_split, channels or 3),
        default_augmentation(height, width),
    )
