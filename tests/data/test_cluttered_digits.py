"""Tests for the offline cluttered-digits tensorflow-datasets builder."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ran_jax.data import cluttered_digits as cd

S = cd.IMAGE_SIZE
Source = tuple[np.ndarray, np.ndarray]
SPLIT_SIZES = {"train": cd.NUM_TRAIN_EXAMPLES, "test": cd.NUM_TEST_EXAMPLES}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("tfds"))
    cd.prepare(path)
    return path


@pytest.fixture(scope="module")
def source() -> Source:
    return cd.load_source_digits()


def _load(data_dir: str, split: str) -> Source:
    ds = tfds.load("cluttered_digits", split=split, data_dir=data_dir, as_supervised=True)
    return tfds.as_numpy(ds.batch(SPLIT_SIZES[split]).get_single_element())


def _as_set(images: np.ndarray, labels: np.ndarray) -> set[tuple[bytes, int]]:
    return {(image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True)}


def test_registered_with_declared_features(data_dir: str) -> None:
    assert "cluttered_digits" in tfds.list_builders()
    builder = tfds.builder("cluttered_digits", data_dir=data_dir)
    assert str(builder.version) == "1.1.0"
    assert builder.info.features["image"].shape == (S, S, 1)
    assert builder.info.features["box"].shape == (4,)
    assert builder.info.features["label"].num_classes == cd.NUM_CLASSES == 10
    assert builder.info.supervised_keys == ("image", "label")
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == SPLIT_SIZES


def test_prepare_reuses_prepared_data(data_dir: str) -> None:
    assert cd.prepare(data_dir).info.splits["test"].num_examples == cd.NUM_TEST_EXAMPLES


@pytest.mark.parametrize("split", ["train", "test"])
def test_split_contents(data_dir: str, source: Source, split: str) -> None:
    images, labels = _load(data_dir, split)
    assert images.shape == (SPLIT_SIZES[split], S, S, 1)
    assert images.dtype == np.uint8
    assert labels.min() >= 0 and labels.max() < cd.NUM_CLASSES
    assert set(labels.tolist()) == set(range(cd.NUM_CLASSES))
    assert (images.max(axis=(1, 2, 3)) > 0).all()
    # The stored split is exactly what the generator makes from this split's source pool.
    digits, digit_labels = source
    pool = cd.source_pools(digit_labels)[split]
    expected = cd.generate(digits, digit_labels, pool, SPLIT_SIZES[split], cd.SPLIT_SEEDS[split])
    assert _as_set(images[..., 0], labels) == _as_set(expected.images, expected.labels)


def test_box_is_where_the_target_digit_was_pasted(data_dir: str, source: Source) -> None:
    ds = tfds.load("cluttered_digits", split="test[:64]", data_dir=data_dir)
    examples = tfds.as_numpy(ds.batch(64).get_single_element())
    digits, digit_labels = source
    pool = cd.source_pools(digit_labels)["test"]
    n = SPLIT_SIZES["test"]
    expected = cd.generate(digits, digit_labels, pool, n, cd.SPLIT_SEEDS["test"])
    size = digits.shape[1]
    where = {
        image.tobytes(): offset for image, offset in zip(expected.images, expected.target_offset)
    }
    # tfds stores examples in its own order: find each one's generated twin by its pixels.
    for image, box in zip(examples["image"][..., 0], examples["box"], strict=True):
        np.testing.assert_array_equal(box[:2], where[image.tobytes()])
        np.testing.assert_array_equal(box[2:] - box[:2], size)


def test_source_digits(source: Source) -> None:
    digits, labels = source
    assert digits.shape == (1797, 8 * cd.DIGIT_SCALE, 8 * cd.DIGIT_SCALE)
    assert digits.dtype == np.uint8 and digits.max() == 255
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_source_pools_are_disjoint_stratified_and_deterministic(source: Source) -> None:
    _, labels = source
    pools = cd.source_pools(labels)
    assert not set(pools["train"]) & set(pools["test"])
    assert sorted(np.concatenate([pools["train"], pools["test"]])) == list(range(len(labels)))
    per_class = np.bincount(labels)
    expected_test = np.round(per_class * cd.TEST_POOL_FRACTION).astype(int)
    np.testing.assert_array_equal(np.bincount(labels[pools["test"]]), expected_test)
    again = cd.source_pools(labels)
    assert all(np.array_equal(pools[k], again[k]) for k in pools)
    assert not np.array_equal(cd.source_pools(labels, seed=1)["test"], pools["test"])


def test_generate_is_deterministic(source: Source) -> None:
    digits, labels = source
    pool = cd.source_pools(labels)["train"]
    a = cd.generate(digits, labels, pool, 32, seed=7)
    b = cd.generate(digits, labels, pool, 32, seed=7)
    c = cd.generate(digits, labels, pool, 32, seed=8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.images, c.images)


def test_target_is_intact_and_labelled(source: Source) -> None:
    digits, labels = source
    pool = cd.source_pools(labels)["test"]
    batch = cd.generate(digits, labels, pool, 256, seed=0)
    assert set(batch.target_index.tolist()) <= set(pool.tolist())
    np.testing.assert_array_equal(batch.labels, labels[batch.target_index])
    size = digits.shape[1]
    assert batch.target_offset.min() >= 0 and batch.target_offset.max() <= S - size
    assert len({tuple(o) for o in batch.target_offset}) > 100  # Positions vary.
    outside_target = 0
    for image, index, (r, c) in zip(batch.images, batch.target_index, batch.target_offset):
        window = image[r : r + size, c : c + size]
        assert (window >= digits[index]).all()  # Clutter never erases the digit.
        outside_target += int(image.sum()) - int(window.sum())
    assert outside_target > 0  # There is clutter outside the target's box.


def test_clutter_comes_only_from_the_pool() -> None:
    # Pool digits are solid 100s and all others solid 200s: no 200 may reach the canvas.
    digits = np.full((50, 16, 16), 200, np.uint8)
    pool = np.arange(0, 50, 5)
    digits[pool] = 100
    batch = cd.generate(digits, np.arange(50) % 10, pool, 64, seed=0)
    assert set(np.unique(batch.images).tolist()) == {0, 100}
    # Each canvas holds the 16x16 target plus clutter of at least one min-size crop.
    assert ((batch.images > 0).sum(axis=(1, 2)) > 16 * 16).all()
