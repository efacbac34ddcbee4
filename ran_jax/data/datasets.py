"""One record per data set: everything the code knows about it, in one place.

To add a data set, register one ``Dataset`` (as scenic's ``dataset_lib`` registers one
builder per data set). ``config.dataset`` names a record, or ``NAME:ARGUMENT`` for a record
that takes an argument (``image_folder:ROOT``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ran_jax.data import catalogue, cluttered_digits, image_folder, tiny_imagenet
from ran_jax.data.tf_runtime import tfds

Normalisation = tuple[tuple[float, ...], tuple[float, ...]]
# Per-channel (mean, std) of ImageNet's pixels scaled to [0, 1].
IMAGENET_NORMALISATION: Normalisation = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Per-channel (mean, std) of Tiny ImageNet-200's training pixels as commonly published (std
# over all pixels, as CIFAR's above); not re-measured here, the archive cannot be downloaded
# on the machines this was written on.
TINY_IMAGENET_NORMALISATION: Normalisation = ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821))


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set's splits, statistics, augmentation and where its data comes from."""

    name: str
    splits: tuple[str, str]  # (train split, evaluation split)
    normalisation: Normalisation  # per-channel (mean, std) of pixels scaled to [0, 1]
    # Images of any size: Inception-style crops in training, shorter side resized and centre
    # crop in evaluation, at config.image_size / eval_image_size. Otherwise fixed-size images
    # get CIFAR's zero-pad-and-crop.
    any_size: bool = False
    jpeg: bool = False  # every image is a JPEG: training decodes only its crop
    flip: bool = True  # random horizontal flips in training (mirrored digits are no digits)
    download_host: str | None = None  # tfds downloads it from there when online; None: never
    manual_archives: tuple[str, ...] = ()  # what to place in the manual dir offline
    # A builder of our own, from (argument, data_dir); None: tfds.builder(name).
    make_builder: Callable[[str, str | None], tfds.core.DatasetBuilder] | None = None
    takes_argument: bool = False  # config.dataset is NAME:ARGUMENT
    argument_name: str = "ROOT"  # what the argument is, in messages
    prepares_itself: bool = False  # make_builder returns it prepared (or raises)
    # The data decides splits, augmentation and normalisation (catalogue.py), not this record.
    from_data: bool = False

    def builder(self, argument: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
        """The tfds builder: prepared for our own data sets, maybe not yet for tfds' ones."""
        if self.make_builder is None:
            return tfds.builder(self.name, data_dir=data_dir)
        return self.make_builder(argument, data_dir)


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    DATASETS[dataset.name] = dataset
    return dataset


def lookup(dataset: str) -> tuple[Dataset, str]:
    """(record, argument) of ``config.dataset``; ValueError naming the valid names."""
    name, _, argument = dataset.partition(":")
    record = DATASETS.get(name)
    if record is None or record.takes_argument != bool(argument):
        valid = [f"{n}:{d.argument_name}" if d.takes_argument else n for n, d in DATASETS.items()]
        raise ValueError(
            f"Unknown dataset {dataset!r}; valid names are: {', '.join(valid[:-1])} or {valid[-1]}."
        )
    return record, argument


register(
    Dataset(
        "cifar10",
        ("train", "test"),
        ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        download_host="www.cs.toronto.edu",
        manual_archives=("cifar-10-binary.tar.gz",),
    )
)
register(
    Dataset(
        "cifar100",
        ("train", "test"),
        ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        download_host="www.cs.toronto.edu",
        manual_archives=("cifar-100-binary.tar.gz",),
    )
)
register(
    Dataset(
        "imagenet2012",
        ("train", "validation"),
        IMAGENET_NORMALISATION,
        any_size=True,
        jpeg=True,  # tfds stores all of ImageNet as JPEG
        manual_archives=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
    )
)
register(
    Dataset(
        "cluttered_digits",
        ("train", "test"),
        ((0.0,), (1.0,)),  # only scaled to [0, 1]
        flip=False,
        # Generated locally in seconds, no download.
        make_builder=lambda _, data_dir: cluttered_digits.prepare(data_dir),
        prepares_itself=True,
    )
)
register(
    Dataset(
        image_folder.NAME,
        ("train", "test"),
        IMAGENET_NORMALISATION,  # every image is read as RGB
        any_size=True,
        make_builder=lambda root, _: image_folder.builder(root),
        takes_argument=True,
        prepares_itself=True,
    )
)
register(
    Dataset(
        tiny_imagenet.NAME,
        ("train", "validation"),
        TINY_IMAGENET_NORMALISATION,
        manual_archives=(tiny_imagenet.ARCHIVE,),
        make_builder=lambda _, data_dir: tiny_imagenet.prepare(data_dir),
        prepares_itself=True,
    )
)
register(
    Dataset(
        catalogue.NAME,
        ("train", "test"),  # defaults; catalogue.default_splits reads the builder's
        IMAGENET_NORMALISATION,  # unused: catalogue.statistics computes them from the data
        # tfds downloads each data set from its own hosts; this one stands for "online".
        download_host="storage.googleapis.com",
        make_builder=catalogue.builder,
        takes_argument=True,
        argument_name="NAME",
        from_data=True,
    )
)
