"""``tfds:NAME``: any tfds image-classification data set, on tfds' mock data in the real
builders' layouts (mnist: 28x28 grey, fixed; oxford_flowers102: RGB of any size)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ran_jax import configs
from ran_jax.data import catalogue, downloads, image_files, input_pipeline
from ran_jax.data.info import DatasetInfo

NUM_EXAMPLES = 8  # mock examples per split (tfds' mock yields this many for any split)


def _prepared_metadata(data_dir, name, splits):
    """Writes ``name``'s dataset_info.json with ``splits``, as if prepared: tfds' mock data
    then reads the true features and these splits from ``data_dir``."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [tfds.core.SplitInfo(name=s, shard_lengths=[NUM_EXAMPLES], num_bytes=0) for s in splits]
        )
    )
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    return builder.data_dir


def _config(name, data_dir, **overrides):
    c = configs.base()
    c.dataset, c.data_dir = f"tfds:{name}", str(data_dir)
    c.batch_size, c.shuffle_buffer, c.image_size = 4, 8, 48
    c.update(overrides)
    return c


@pytest.mark.parametrize(
    "name, splits, shape, augmentation, eval_split",
    [
        ("mnist", ("train", "test"), (28, 28, 1), "pad_crop_flip", "test"),
        (
            "oxford_flowers102",
            ("train", "validation"),
            (48, 48, 3),
            "resized_crop_flip",
            "validation",
        ),
    ],
)
def test_a_catalogue_data_set_is_described_from_its_builder(
    tmp_path, name, splits, shape, augmentation, eval_split
):
    data_dir = _prepared_metadata(tmp_path, name, splits)
    with tfds.testing.mock_data(
        num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(tmp_path)
    ):
        data = input_pipeline.DataSet(_config(name, tmp_path))
        batch, evaluation = next(data.train_batches()), next(data.eval_batches())
    info = data.info
    size, _, channels = shape
    assert (info.name, info.image_size, info.num_channels) == ("tfds", size, channels)
    assert (info.train_split, info.eval_split) == ("train", eval_split)
    assert (info.num_train, info.num_eval) == (NUM_EXAMPLES, NUM_EXAMPLES)
    assert (
        info.num_classes == len(info.class_names) == {"mnist": 10, "oxford_flowers102": 102}[name]
    )
    assert info.augmentation == augmentation  # CIFAR-style at <= 64 px, else ImageNet's
    assert batch["image"].shape == (4, *shape) and batch["image"].dtype == np.float32
    assert evaluation["image"].shape == (4, *shape)
    # Normalisation: statistics of the (random) training pixels, stored beside the data.
    with open(os.path.join(data_dir, catalogue.STATISTICS_FILE)) as f:
        stored = json.load(f)
    assert stored["split"] == "train" and stored["examples"] == NUM_EXAMPLES
    assert info.normalisation == (tuple(stored["mean"]), tuple(stored["std"]))
    assert len(info.normalisation[0]) == channels and min(info.normalisation[1]) > 0
    if name == "oxford_flowers102":  # class names come from the label feature
        assert info.class_names[0] == "pink primrose"
    # run.json alone serves predict, evaluate, export and visualize: it keeps all of this.
    restored = DatasetInfo.from_dict(json.loads(json.dumps(dataclasses.asdict(info))))
    assert restored == info
    photo = tmp_path / "photo.png"
    photo.write_bytes(tf.io.encode_png(np.full((50, 70, 3), 200, np.uint8)).numpy())
    assert image_files.eval_views([str(photo)], restored).shape == (1, *shape)


def test_splits_can_be_chosen(tmp_path):
    _prepared_metadata(tmp_path, "mnist", ("train", "test"))
    with tfds.testing.mock_data(
        num_examples=NUM_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(tmp_path)
    ):
        info = input_pipeline.DataSet(
            _config("mnist", tmp_path, train_split="test", eval_split="train")
        ).info
        assert (info.train_split, info.eval_split) == ("test", "train")
        with pytest.raises(
            ValueError,
            match="eval_split='valid': tfds:mnist has no such split; its splits are: test, t",
        ):
            input_pipeline.DataSet(_config("mnist", tmp_path, eval_split="valid"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("no_such_dataset", "tfds has no data set 'no_such_dataset'"),
        (
            "celeb_a_hq",
            "tfds:celeb_a_hq cannot train a classifier: it has no class-label feature "
            "(its features: image (Image), image/filename (Text)).",
        ),
    ],
)
def test_unusable_names_are_refused_in_one_line_writing_nothing(tmp_path, name, message):
    with pytest.raises(ValueError) as e:
        input_pipeline.DataSet(_config(name, tmp_path / "tfds"))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "tfds").exists()


def test_offline_the_run_stops_within_seconds_naming_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "_reachable", lambda host: False)
    with pytest.raises(downloads.DataNotFoundError, match="cannot be downloaded: .* unreachable"):
        input_pipeline.DataSet(_config("mnist", tmp_path))
    with pytest.raises(
        downloads.DataNotFoundError, match=r"download is off \(config.download=False\)"
    ):
        input_pipeline.DataSet(_config("mnist", tmp_path, download=False))
    assert not any(tmp_path.iterdir())
