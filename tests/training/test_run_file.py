"""run.json: written and read back, and the descriptions of older runs brought up to date."""

import dataclasses
import json

import pytest

from ran_jax import configs
from ran_jax.data.info import DatasetInfo
from ran_jax.training import run_file

INFO = DatasetInfo(
    "cifar10", 10, 32, 3, 50_000, 10_000, "train", "test", 32, tuple("abcdefghij"),
    ((0.5,) * 3, (0.25,) * 3), "pad_crop_flip",
)  # fmt: skip


def _write_old(tmp_path, dataset: dict) -> str:
    content = {"config": {"model": "cifar_attention56", "dataset": dataset["name"]}}
    (tmp_path / run_file.NAME).write_text(json.dumps({**content, "dataset": dataset}))
    return str(tmp_path)


def test_a_run_file_reads_back_what_was_written(tmp_path):
    config = configs.base()
    run_file.write(str(tmp_path), config, INFO)
    read_config, info = run_file.read(str(tmp_path))
    assert info == INFO and read_config.to_dict() == config.to_dict()


@pytest.mark.parametrize(
    "name, fields, augmentation",
    [
        # Runs written before the description held how images are augmented.
        ("cluttered_digits", {}, "pad_crop"),
        ("imagenet2012", {}, "resized_crop_flip"),
        ("cifar100", {}, "pad_crop_flip"),
        # Runs that recorded any_size, jpeg and flip.
        ("tfds", {"any_size": True, "jpeg": True, "flip": True}, "resized_crop_flip"),
        ("tfds", {"any_size": False, "jpeg": False, "flip": True}, "pad_crop_flip"),
        ("cluttered_digits", {"any_size": None, "jpeg": None, "flip": None}, "pad_crop"),
        ("image_folder", {"any_size": None, "jpeg": None, "flip": None}, "resized_crop_flip"),
    ],
)
def test_older_descriptions_get_the_augmentation_they_were_trained_with(
    tmp_path, name, fields, augmentation
):
    old = {**dataclasses.asdict(INFO), "name": name, **fields}
    del old["augmentation"]
    _, info = run_file.read(_write_old(tmp_path, old))
    assert info == dataclasses.replace(INFO, name=name, augmentation=augmentation)
