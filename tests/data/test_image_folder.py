"""Own images: ``image_folder:ROOT`` layouts, errors naming the bad path, and its batches."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from helpers import folder_images
from ran_jax.data import image_folder, preprocess
from ran_jax.data import input_pipeline as ip
from ran_jax.data.datasets import IMAGENET_NORMALISATION
from ran_jax.data.info import DatasetInfo


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return folder_images.make(tmp_path_factory.mktemp("folder") / "root")


def test_info_lists_sorted_classes_and_split_sizes(root):
    info = ip.DataSet(folder_images.config(root, eval_image_size=40)).info
    assert info == DatasetInfo(
        "image_folder",
        3,
        32,
        3,
        18,
        6,
        "train",
        "test",
        40,
        folder_images.CLASSES,
        IMAGENET_NORMALISATION,
        "resized_crop_flip",  # the pictures differ in size
    )
    assert info.normalisation == IMAGENET_NORMALISATION


def test_batches_are_rgb_at_the_train_and_eval_sizes_and_every_test_image_is_seen(root):
    config = folder_images.config(root, eval_image_size=40)
    train = next(ip.DataSet(config).train_batches())
    assert train["image"].shape == (4, 32, 32, 3) and np.isfinite(train["image"]).all()
    assert set(train["label"]) <= {0, 1, 2}
    evals = list(ip.DataSet(config).eval_batches())
    assert [b["image"].shape for b in evals] == [(4, 40, 40, 3)] * 2
    mask = np.concatenate([b["mask"] for b in evals])
    assert mask.tolist() == [True] * 6 + [False] * 2
    labels = np.concatenate([b["label"] for b in evals])[mask]
    assert sorted(labels) == [0, 0, 1, 1, 2, 2]


def test_a_folder_of_small_images_of_one_size_is_augmented_as_cifar(root, tmp_path):
    """28x28 images (Fashion-MNIST saved as PNGs, say) are padded and cropped at their own
    size: ImageNet's random-resized crop would keep as little as 8% of them."""
    small = folder_images.make(tmp_path / "small", size=28)
    data = ip.DataSet(folder_images.config(small))
    assert (data.info.augmentation, data.info.image_size) == ("pad_crop_flip", 28)
    assert next(data.train_batches())["image"].shape == (4, 28, 28, 3)
    assert next(data.eval_batches())["image"].shape == (4, 28, 28, 3)
    resized = ip.DataSet(folder_images.config(small, augmentation="resized_crop_flip"))
    assert (resized.info.augmentation, resized.info.image_size) == ("resized_crop_flip", 32)
    assert next(resized.train_batches())["image"].shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="augmentation='pad_crop_flip' needs images of one size"):
        ip.DataSet(folder_images.config(root, augmentation="pad_crop_flip"))  # sizes 24-60


def test_grey_scale_images_become_three_equal_channels(root):
    info = ip.DataSet(folder_images.config(root)).info
    grey = np.full((30, 50, 1), 77, np.uint8)
    view = preprocess.eval_view(preprocess.decode_any(tf.io.encode_png(grey), 3), info).numpy()
    mean, std = IMAGENET_NORMALISATION
    pixels = (view * np.array(std) + np.array(mean)) * 255
    assert view.shape == (32, 32, 3)
    np.testing.assert_allclose(pixels, 77, atol=1e-3)


def _broken(root, tmp_path, change):
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    return change(copy)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: r / "absent", "does not exist"),
        (lambda r: (shutil.rmtree(r / "test"), r)[1], "has no test/ directory"),
        (lambda r: ((r / "train" / "x.png").write_bytes(b""), r)[1], "not inside a class folder"),
        (lambda r: ((r / "train" / "empty").mkdir(), r)[1], "holds no .jpg, .jpeg or .png"),
        (
            lambda r: ((r / "train" / "bars" / "7.png").write_text("text"), r)[1],
            "is not a JPEG, PNG, GIF or BMP file",
        ),
        (
            lambda r: (shutil.copytree(r / "test" / "ring", r / "test" / "zebra"), r)[1],
            "Test class 'zebra'",
        ),
    ],
)
def test_a_malformed_folder_is_one_error_naming_the_path(root, tmp_path, change, message):
    bad = _broken(root, tmp_path, change)
    with pytest.raises(image_folder.LayoutError, match=message) as error:
        ip.DataSet(folder_images.config(bad))
    text = str(error.value)
    assert str(tmp_path / "copy") in text and "\n" not in text


def test_no_split_or_class_folders_is_an_error(tmp_path):
    (tmp_path / "r" / "train").mkdir(parents=True)
    (tmp_path / "r" / "test").mkdir()
    with pytest.raises(image_folder.LayoutError, match="has no class folders"):
        image_folder.check_layout(str(tmp_path / "r"))
