"""Tiny ImageNet-200 from its archive: a generated miniature ``tiny-imagenet-200.zip`` in the
official layout (3 classes, 4 training and 2 validation 64x64 JPEGs each, with words.txt,
boxes and val_annotations.txt), read as the zip and as its unpacked folder; bad archives are
refused in one line before anything is written."""

import zipfile

import pytest
import tensorflow_datasets as tfds

from helpers import tiny_imagenet_archive as archive
from ran_jax import configs
from ran_jax.data import input_pipeline, tiny_imagenet
from ran_jax.data.info import DataNotFoundError
from ran_jax.training import loop


def _config(data_dir):
    c = configs.cifar("cifar_attention56", "tiny_imagenet")
    c.data_dir, c.batch_size, c.shuffle_buffer, c.image_size = str(data_dir), 4, 8, 64
    return c


def _manual_dir(data_dir):
    manual = data_dir / "downloads" / "manual"
    manual.mkdir(parents=True)
    return manual


@pytest.mark.parametrize("unpacked", [False, True])
def test_the_archive_or_its_folder_gives_images_labels_names_and_boxes(tmp_path, unpacked):
    zip_path = archive.make(_manual_dir(tmp_path) / tiny_imagenet.ARCHIVE)
    if unpacked:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(zip_path.parent)
        zip_path.unlink()
    info = input_pipeline.DataSet(_config(tmp_path)).info
    assert info.name == "tiny_imagenet" and info.class_names == archive.CLASS_NAMES
    assert (info.num_train, info.num_eval, info.train_split, info.eval_split) == (
        12,
        6,
        "train",
        "validation",
    )
    assert (info.image_size, info.num_channels, info.augmentation) == (64, 3, "pad_crop_flip")
    if unpacked:
        return
    builder = tiny_imagenet.TinyImagenet(data_dir=str(tmp_path))
    assert builder.info.features["label"].names == list(archive.WNIDS)
    with zipfile.ZipFile(zip_path) as z:
        annotations = z.read("tiny-imagenet-200/val/val_annotations.txt").decode().split("\n")
        expected = {}
        for line in filter(None, annotations):
            name, wnid, x0, y0, x1, y1 = line.split("\t")
            jpeg = z.read(f"tiny-imagenet-200/val/images/{name}")
            expected[archive.WNIDS.index(wnid), int(y0), int(x0)] = (int(y1) + 1, int(x1) + 1, jpeg)
    decoders = {"image": tfds.decode.SkipDecoding()}
    examples = builder.as_dataset(split="validation", decoders=decoders).as_numpy_iterator()
    for example in examples:
        top, left, bottom, right = example["box"]
        want_bottom, want_right, jpeg = expected[example["label"], top, left]
        assert (bottom, right) == (want_bottom, want_right)  # exclusive, as cluttered digits'
        assert example["image"] == jpeg  # the JPEG as stored in the archive
    grey = builder.as_dataset(split="train").filter(lambda ex: ex["label"] == 0)
    assert all(ex["image"].shape == (64, 64, 3) for ex in grey.as_numpy_iterator())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"wnids_file": False}, "tiny-imagenet-200.zip has no wnids.txt: it is not the Tiny"),
        (
            {"val_class": "n00000001"},
            "val/val_annotations.txt line 1 names class 'n00000001', which is not in wnids.txt.",
        ),
    ],
)
def test_a_bad_archive_is_refused_in_one_line_before_anything_is_written(tmp_path, kwargs, message):
    archive.make(_manual_dir(tmp_path) / tiny_imagenet.ARCHIVE, **kwargs)
    workdir = tmp_path / "run"
    with pytest.raises(loop.SetupError) as e:
        loop.open_data(_config(tmp_path), str(workdir), input_pipeline.DataSet)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not workdir.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["downloads"]


def test_without_the_archive_the_message_names_the_file_and_where_it_goes(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        input_pipeline.DataSet(_config(tmp_path))
    assert "tiny-imagenet-200.zip" in str(e.value)
    assert f"manual dir {tmp_path}/downloads/manual/" in str(e.value)
    assert not any(tmp_path.iterdir())
