"""What the model, the training loop and a trained run need to know about a data set.

No TensorFlow here: ``training/`` and the commands read these without starting it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

import ml_collections
import numpy as np


class DataNotFoundError(Exception):
    """The dataset is not prepared in the data_dir; the message says how to supply it."""


class DataReadError(Exception):
    """An example could not be read during training or evaluation (a damaged file)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Classes, sizes and input statistics of the data set a run trains on."""

    name: str  # a record of ``datasets.DATASETS``: "image_folder", "tfds" for all of theirs
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
    # How images are augmented and decoded, from the data: None (run.json files written
    # before these fields existed) means "as the record ``name`` of ``datasets.DATASETS``".
    # any_size: Inception-style crops in training, shorter side resized and centre crop in
    # evaluation; otherwise CIFAR's zero-pad-and-crop of fixed-size images. They follow from
    # the fields above and the data set, so equality leaves them out (compare=False).
    any_size: bool | None = dataclasses.field(default=None, compare=False)
    # Every image is a JPEG: training decodes only its crop.
    jpeg: bool | None = dataclasses.field(default=None, compare=False)
    flip: bool | None = dataclasses.field(default=None, compare=False)  # random flips in training

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> DatasetInfo:
        """The description ``run.json`` holds (``dataclasses.asdict`` of one, as JSON)."""
        mean, std = fields["normalisation"]
        return cls(
            **{
                **fields,
                "class_names": tuple(fields["class_names"]),
                "normalisation": (tuple(mean), tuple(std)),
            }
        )


class DataSource(Protocol):
    """Where training reads its data: the module ``ran_jax.data.input_pipeline``, or any
    object with its three functions. Training and analysis take it as an argument, so they
    import no TensorFlow."""

    def dataset_info(self, config: ml_collections.ConfigDict) -> DatasetInfo: ...

    def train_batches(
        self, config: ml_collections.ConfigDict, *, start_step: int = 0
    ) -> Iterator[dict[str, np.ndarray]]: ...

    def eval_batches(
        self, config: ml_collections.ConfigDict
    ) -> Iterator[dict[str, np.ndarray]]: ...
