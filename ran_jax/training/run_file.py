"""``WORKDIR/run.json``: the config and dataset description of a training run.

Training writes it at every start (process 0), after the checkpoint check passed; the
commands that use a trained network (evaluate, predict, export) rebuild the model from it,
and predict takes the class names and input normalisation from it, so they need neither
the config file nor the dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os

import ml_collections

from ran_jax import configs
from ran_jax.data.info import DatasetInfo

NAME = "run.json"


def write(workdir: str, config: ml_collections.ConfigDict, info: DatasetInfo) -> None:
    """Writes ``{"config": ..., "dataset": ...}`` atomically."""
    dataset = dataclasses.asdict(info)
    content = {"config": json.loads(config.to_json_best_effort()), "dataset": dataset}
    path = os.path.join(workdir, NAME)
    with open(path + ".tmp", "w") as f:
        json.dump(content, f, indent=1)
    os.replace(path + ".tmp", path)


def read(workdir: str) -> tuple[ml_collections.ConfigDict, DatasetInfo]:
    """(config, dataset description) of the run in ``workdir``; ValueError if there is none.

    The config is the current defaults updated with the saved values, so keys added to
    ``configs.base`` after the run was trained take their defaults.
    """
    if not os.path.isdir(workdir):
        raise ValueError(f"--workdir={workdir} does not exist.")
    path = os.path.join(workdir, NAME)
    if not os.path.exists(path):
        raise ValueError(
            f"{workdir} has no {NAME}, so it is not a ran_jax training directory, or it was "
            "trained by an older version: re-run its training command once (it resumes "
            f"and writes {NAME})."
        )
    with open(path) as f:
        content = json.load(f)
    return _config(content["config"]), DatasetInfo.from_dict(_dataset(content["dataset"]))


def _config(saved: dict) -> ml_collections.ConfigDict:
    """The current defaults updated with a run's saved config: keys added to
    ``configs.base`` after the run was trained take their defaults."""
    config = configs.base()
    with config.unlocked():
        config.model_overrides = ml_collections.ConfigDict(saved.pop("model_overrides", {}))
        for key, value in saved.items():
            config[key] = tuple(value) if isinstance(value, list) else value
    return config


# The augmentation of each data set before run.json recorded it (configs.AUGMENTATIONS).
_OLD_AUGMENTATIONS = {
    "cifar10": "pad_crop_flip",
    "cifar100": "pad_crop_flip",
    "imagenet2012": "resized_crop_flip",
    "cluttered_digits": "pad_crop",
    "image_folder": "resized_crop_flip",
    "tiny_imagenet": "pad_crop_flip",
}


def _dataset(saved: dict) -> dict:
    """A run's saved data set description in today's fields.

    Runs written before ``augmentation`` existed recorded ``any_size``, ``jpeg`` and ``flip``
    (None, or absent in the oldest runs: the data set's defaults then).
    """
    saved = dict(saved)
    any_size, flip = saved.pop("any_size", None), saved.pop("flip", None)
    saved.pop("jpeg", None)  # JPEGs are now found image by image
    if "augmentation" not in saved:
        if any_size is None:
            saved["augmentation"] = _OLD_AUGMENTATIONS[saved["name"]]
        elif any_size:
            saved["augmentation"] = "resized_crop_flip"
        else:
            saved["augmentation"] = "pad_crop_flip" if flip else "pad_crop"
    return saved
