"""What the model, the training loop and a trained run need to know about a data set.

No TensorFlow here: ``training/`` and the commands read these without starting it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import ml_collections
import numpy as np


def any_size(augmentation: str) -> bool:
    """Whether ``augmentation`` takes images of any size (crops and resizes them)."""
    return augmentation == "resized_crop_flip"


def flips(augmentation: str) -> bool:
    """Whether ``augmentation`` flips training images at random."""
    return augmentation != "pad_crop"


class DataNotFoundError(Exception):
    """The dataset is not prepared in the data_dir; the message says how to supply it."""


class DataReadError(Exception):
    """An example could not be read during training or evaluation (a damaged file)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Classes, sizes and input statistics of the data set a run trains on."""

    name: str  # a registered data set (``data/datasets.py``): "image_folder", "tfds", ...
    num_classes: int
    image_size: int  # training input side
    num_channels: int
    num_train: int
    num_eval: int  # examples evaluated: the eval split, or its first config.eval_examples
    train_split: str
    eval_split: str
    eval_image_size: int  # evaluation input side
    class_names: tuple[str, ...]
    # Per-channel (mean, std) of pixels scaled to [0, 1].
    normalisation: tuple[tuple[float, ...], tuple[float, ...]]
    augmentation: str  # one of configs.AUGMENTATIONS

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> DatasetInfo:
        """The description ``run.json`` holds (``dataclasses.asdict`` of one, as JSON;
        ``training/run_file.py`` brings older ones up to date first)."""
        mean, std = fields["normalisation"]
        return cls(
            **{
                **fields,
                "class_names": tuple(fields["class_names"]),
                "normalisation": (tuple(mean), tuple(std)),
            }
        )


class DataSource(Protocol):
    """A data set opened once from a config (``data.input_pipeline.DataSet``, or any object
    with this interface): its description and its streams of numpy batches. Training and
    analysis take it as an argument, so they import no TensorFlow."""

    info: DatasetInfo

    def train_batches(self, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Endless training batches of this process, from batch ``start_step`` on."""
        ...

    def eval_batches(
        self, batch_size: int | None = None, num_examples: int | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """This process's part of the evaluation split (or of its first ``num_examples``)
        in padded batches of ``batch_size`` (default: the config's)."""
        ...


# Opens the data set of a config: what runs of many configs (studies, evaluations) take.
DataOpener = Callable[[ml_collections.ConfigDict], DataSource]
