"""Input pipeline on mocked tfds data: shapes, augmentation, exact resume, process parts, noise.

``tests/testdata/tfds`` holds hand-written metadata with the real split sizes; tests that need
small epochs write their own into tmp_path. ``_indexed_as_dataset`` stands in for the tfds reader
with example i = ``_source(i)``, so every output image can be traced back to its example.
"""

import itertools
import json
import re
import threading
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from helpers.noisy_labels import noisy_labels
from ran_jax import configs
from ran_jax.data import datasets, downloads, preprocess
from ran_jax.data import input_pipeline as ip
from ran_jax.data.info import DataNotFoundError, DatasetInfo

METADATA = Path(__file__).parent.parent / "testdata" / "tfds"
NORMALISATION = {
    "cifar10": datasets.CIFAR10_NORMALISATION,
    "cifar100": datasets.CIFAR100_NORMALISATION,
    "imagenet2012": datasets.IMAGENET_NORMALISATION,
    "cluttered_digits": ((0.0,), (1.0,)),  # only scaled to [0, 1]
}
SPLITS = {"imagenet2012": ("train", "validation")}  # the others: train and test
VERSIONS = {
    "cifar10": "3.0.2",
    "cifar100": "3.0.2",
    "imagenet2012": "5.1.0",
    "cluttered_digits": "1.1.0",
}


def _config(**overrides) -> ml_collections.ConfigDict:
    config = configs.base()
    config.batch_size, config.image_size, config.shuffle_buffer = 4, 64, 64
    config.download = False  # tests never reach for the network; see the download tests
    config.update(overrides)
    return config


def _take(iterator, n: int) -> list:
    return list(itertools.islice(iterator, n))


def _tiny_metadata(root: Path, name: str, num_train: int, num_eval: int) -> Path:
    """Metadata saying ``name`` has num_train / num_eval examples (small epochs under mocks)."""
    splits = [
        {"name": split, "numShards": "1", "shardLengths": [str(n)]}
        for split, n in zip(SPLITS.get(name, ("train", "test")), (num_train, num_eval), strict=True)
    ]
    info = {"name": name, "version": VERSIONS[name], "splits": splits}
    path = root / name / VERSIONS[name]
    path.mkdir(parents=True)
    (path / "dataset_info.json").write_text(json.dumps(info))
    return root


def _source(index, shape) -> tf.Tensor:
    """The uint8 image of example ``index`` of the fake datasets: noise seeded by the index."""
    seed = tf.stack([tf.cast(index, tf.int64), 7])
    return tf.cast(tf.random.stateless_uniform(shape, seed, maxval=256, dtype=tf.int64), tf.uint8)


def _indexed_as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
    """Fake tfds reader honouring ``name[start:stop]``: example i is _source(i), label i % C."""
    del decoders, read_config, shuffle_files  # Images come encoded, as with SkipDecoding.
    start, stop = map(int, re.fullmatch(r"\w+\[(\d+):(\d+)\]", split).groups())
    shape = self.info.features["image"].shape
    num_classes = self.info.features["label"].num_classes

    def example(index):
        ex = {"image": tf.io.encode_png(_source(index, shape)), "label": index % num_classes}
        if "box" in self.info.features:  # cluttered digits: a box that encodes the index
            ex["box"] = tf.cast(tf.stack([index, index + 1, index + 2, index + 3]), tf.int32)
        return ex

    return tf.data.Dataset.range(start, stop).map(example)


def _sources(num: int, shape) -> np.ndarray:
    return np.stack([_source(i, shape).numpy() for i in range(num)])


def _locate(image: np.ndarray, sources: np.ndarray, name: str, flips=(False, True)) -> tuple:
    """(index, dy, dx, flipped): the one source whose zero-padded crop (mirrored) is ``image``."""
    mean, std = NORMALISATION[name]
    pixels = np.rint((image * np.array(std) + np.array(mean)) * 255)
    pad, size = preprocess.CIFAR_PAD, image.shape[0]
    padded = np.pad(sources, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    hits = []
    for dy, dx, flipped in itertools.product(range(2 * pad + 1), range(2 * pad + 1), flips):
        window = padded[:, dy : dy + size, dx : dx + size]
        window = window[:, :, ::-1] if flipped else window
        for index in np.flatnonzero(np.all(window == pixels, axis=(1, 2, 3))):
            hits.append((int(index), dy, dx, flipped))
    assert len(hits) == 1, f"{len(hits)} sources match this image"
    return hits[0]


def _locate_all(batches: list[dict], sources: np.ndarray, name: str, **kwargs) -> list[tuple]:
    return [_locate(image, sources, name, **kwargs) for b in batches for image in b["image"]]


@pytest.mark.parametrize("name,num_classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_batches_have_the_right_shapes_and_normalised_values(name, num_classes):
    config = _config(dataset=name)
    with tfds.testing.mock_data(num_examples=8, data_dir=METADATA):
        info = ip.DataSet(config).info
        assert info == DatasetInfo(
            name,
            num_classes,
            32,
            3,
            50_000,
            10_000,
            "train",
            "test",
            32,
            info.class_names,
            NORMALISATION[name],
            "pad_crop_flip",
        )
        assert len(info.class_names) == num_classes
        train = next(ip.DataSet(config).train_batches())
        evals = next(ip.DataSet(config).eval_batches())
        raw = next(tfds.builder(name).as_dataset(split="test").batch(4).as_numpy_iterator())
    assert train["image"].shape == (4, 32, 32, 3) and train["image"].dtype == np.float32
    assert train["label"].shape == (4,) and train["label"].dtype == np.int32
    assert np.all((0 <= train["label"]) & (train["label"] < num_classes))
    assert np.all(np.isfinite(train["image"])) and abs(train["image"].mean()) < 0.5
    assert evals["image"].shape == (4, 32, 32, 3) and evals["image"].dtype == np.float32
    assert evals["mask"].dtype == bool and evals["mask"].all()
    mean, std = NORMALISATION[name]
    np.testing.assert_allclose(evals["image"], (raw["image"] / 255 - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(evals["label"], raw["label"])
    assert abs(evals["image"].mean()) < 0.3 and 0.8 < evals["image"].std() < 1.4


def test_cifar_augmentation_is_a_random_crop_of_the_zero_padded_image_or_its_mirror(tmp_path):
    config = _config(batch_size=8)
    with tfds.testing.mock_data(
        as_dataset_fn=_indexed_as_dataset, data_dir=_tiny_metadata(tmp_path, "cifar10", 16, 8)
    ):
        batches = _take(ip.DataSet(config).train_batches(), 4)  # Two epochs of 16 examples.
    hits = _locate_all(batches, _sources(16, (32, 32, 3)), "cifar10")
    labels = np.concatenate([b["label"] for b in batches])
    np.testing.assert_array_equal(labels, [index % 10 for index, *_ in hits])
    first, second = hits[:16], hits[16:]
    assert sorted(h[0] for h in first) == sorted(h[0] for h in second) == list(range(16))
    assert [h[0] for h in first] != [h[0] for h in second]  # Each epoch has its own order,
    crops = [dict((h[0], h[1:]) for h in epoch) for epoch in (first, second)]
    assert sum(crops[0][i] != crops[1][i] for i in range(16)) > 8  # and its own crops.
    assert len({h[1:3] for h in hits}) > 10 and {h[3] for h in hits} == {False, True}


def test_cluttered_digits_are_translated_but_never_mirrored(tmp_path):
    from ran_jax.data import cluttered_digits

    size = cluttered_digits.IMAGE_SIZE
    config = _config(dataset="cluttered_digits", batch_size=8)
    with tfds.testing.mock_data(
        as_dataset_fn=_indexed_as_dataset,
        data_dir=_tiny_metadata(tmp_path, "cluttered_digits", 16, 8),
    ):
        assert ip.DataSet(config).info == DatasetInfo(
            "cluttered_digits",
            10,
            size,
            1,
            16,
            8,
            "train",
            "test",
            size,
            tuple("0123456789"),
            NORMALISATION["cluttered_digits"],
            "pad_crop",
        )
        batches = _take(ip.DataSet(config).train_batches(), 4)
        evals = list(ip.DataSet(config).eval_batches())
    assert batches[0]["image"].shape == (8, size, size, 1)
    hits = _locate_all(batches, _sources(16, (size, size, 1)), "cluttered_digits", flips=(False,))
    assert len({h[1:3] for h in hits}) > 10
    assert len(evals) == 1 and evals[0]["image"].shape == (8, size, size, 1)
    np.testing.assert_array_equal(evals[0]["box"][:, 0], np.arange(8))  # boxes pass through


@pytest.mark.parametrize("start_step", [3, 5])
def test_resuming_yields_exactly_the_batches_of_an_uninterrupted_run(tmp_path, start_step):
    # 10 examples in batches of 4: batches straddle epochs; step 5 starts in the third epoch.
    config = _config(label_noise=0.3)
    with tfds.testing.mock_data(
        num_examples=10, data_dir=_tiny_metadata(tmp_path, "cifar10", 10, 10)
    ):
        full = _take(ip.DataSet(config).train_batches(), 7)
        resumed = _take(ip.DataSet(config).train_batches(start_step=start_step), 2)
        cached = _take(ip.DataSet(_config(label_noise=0.3, cache=True)).train_batches(), 7)
        other_seed = _take(ip.DataSet(_config(label_noise=0.3, seed=1)).train_batches(), 7)
    for expected, batch in zip(full[start_step : start_step + 2], resumed, strict=True):
        np.testing.assert_array_equal(batch["image"], expected["image"])
        np.testing.assert_array_equal(batch["label"], expected["label"])
    for expected, batch in zip(full, cached, strict=True):
        np.testing.assert_array_equal(batch["image"], expected["image"])
    for expected, batch in zip(full, other_seed, strict=True):
        assert not np.array_equal(batch["image"], expected["image"])


def test_each_process_reads_its_own_part_of_the_train_split(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    config = _config(batch_size=10)
    sources = _sources(20, (32, 32, 3))
    seen = []
    with tfds.testing.mock_data(
        as_dataset_fn=_indexed_as_dataset, data_dir=_tiny_metadata(tmp_path, "cifar10", 20, 8)
    ):
        for process in range(2):
            monkeypatch.setattr(jax, "process_index", lambda process=process: process)
            batches = _take(ip.DataSet(config).train_batches(), 2)  # One epoch of 10 per process.
            assert batches[0]["image"].shape == (5, 32, 32, 3)
            seen.append(sorted(h[0] for h in _locate_all(batches, sources, "cifar10")))
    assert seen == [list(range(10)), list(range(10, 20))]


def test_eval_pads_the_last_batch_with_masked_zeros(tmp_path):
    with tfds.testing.mock_data(
        num_examples=10, data_dir=_tiny_metadata(tmp_path, "cifar10", 10, 10)
    ):
        batches = list(ip.DataSet(_config()).eval_batches())
        raw = next(tfds.builder("cifar10").as_dataset(split="test").batch(10).as_numpy_iterator())
    assert len(batches) == 3 and all(b["image"].shape == (4, 32, 32, 3) for b in batches)
    mask = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(mask, [True] * 10 + [False] * 2)
    images = np.concatenate([b["image"] for b in batches])
    labels = np.concatenate([b["label"] for b in batches])
    mean, std = NORMALISATION["cifar10"]
    np.testing.assert_allclose(images[:10], (raw["image"] / 255 - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(labels[:10], raw["label"])
    assert not images[10:].any() and not labels[10:].any()


def test_eval_parts_cover_the_split_in_the_same_number_of_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    sources = _sources(7, (32, 32, 3))
    parts, num_batches = [], []
    with tfds.testing.mock_data(
        as_dataset_fn=_indexed_as_dataset, data_dir=_tiny_metadata(tmp_path, "cifar10", 9, 7)
    ):
        for process in range(3):
            monkeypatch.setattr(jax, "process_index", lambda process=process: process)
            batches = list(ip.DataSet(_config(batch_size=6)).eval_batches())
            num_batches.append(len(batches))
            images = np.concatenate([b["image"] for b in batches])
            mask = np.concatenate([b["mask"] for b in batches])
            hits = [_locate(image, sources, "cifar10", flips=(False,)) for image in images[mask]]
            assert all(
                h[1:] == (preprocess.CIFAR_PAD, preprocess.CIFAR_PAD, False) for h in hits
            )  # No crop.
            parts.append([h[0] for h in hits])
    assert num_batches == [2, 2, 2]  # 7 examples over 3 processes: 3/2/2, 2 per batch.
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]


def test_imagenet_batches_have_the_configured_size():
    config = _config(dataset="imagenet2012", batch_size=2)
    with tfds.testing.mock_data(num_examples=4, data_dir=METADATA):  # Random-sized JPEGs.
        info = ip.DataSet(config).info
        train = _take(ip.DataSet(config).train_batches(), 3)
        evals = next(ip.DataSet(config).eval_batches())
    assert info == DatasetInfo(
        "imagenet2012",
        1000,
        64,
        3,
        1_281_167,
        50_000,
        "train",
        "validation",
        64,
        info.class_names,
        NORMALISATION["imagenet2012"],
        "resized_crop_flip",
    )
    assert len(info.class_names) == 1000 and info.class_names[0] == "n01440764"  # WordNet ids
    for batch in [*train, evals]:
        assert batch["image"].shape == (2, 64, 64, 3) and batch["image"].dtype == np.float32
        assert np.all(np.isfinite(batch["image"]))
    assert evals["mask"].all()


def test_imagenet_eval_resizes_the_shorter_side_and_crops_the_centre():
    # 100x200: blue columns 50..149, red elsewhere. Resizing the shorter side to 64 / 0.875
    # = 73 and cropping the central 64 columns keeps original columns ~56..144: all blue.
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :, 0] = 255
    image[:, 50:150] = (0, 0, 255)

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        jpeg = tf.io.encode_jpeg(image, quality=100)
        return tf.data.Dataset.from_tensors({"image": jpeg, "label": tf.constant(3, tf.int64)})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset, data_dir=METADATA):
        batch = next(ip.DataSet(_config(dataset="imagenet2012", batch_size=1)).eval_batches())
    mean, std = NORMALISATION["imagenet2012"]
    pixels = (batch["image"][0] * std + mean) * 255
    assert pixels.shape == (64, 64, 3)
    np.testing.assert_allclose(pixels, np.broadcast_to([0, 0, 255], pixels.shape), atol=12)


def test_noisy_labels_follow_the_symmetric_corruption_matrix():
    labels = np.random.default_rng(0).integers(10, size=10_000)
    noisy = noisy_labels(labels, 10, 0.3, seed=1)
    changed = noisy != labels
    assert noisy.dtype == labels.dtype and abs(changed.mean() - 0.3) < 0.02  # P(change) = 1 - r
    shifts = np.bincount((noisy - labels)[changed] % 10, minlength=10)
    assert shifts[0] == 0  # A replaced label is never the original class,
    np.testing.assert_allclose(shifts[1:], changed.sum() / 9, rtol=0.25)  # others are uniform.
    np.testing.assert_array_equal(noisy_labels(labels, 10, 0.3, seed=1), noisy)
    np.testing.assert_array_equal(noisy_labels(labels[:100], 10, 0.3, seed=1), noisy[:100])
    assert (noisy_labels(labels, 10, 0.3, seed=2) != noisy).mean() > 0.2
    np.testing.assert_array_equal(noisy_labels(labels, 10, 0.0, seed=1), labels)


def test_train_labels_carry_the_noise_of_their_example_in_every_epoch(tmp_path):
    config = _config(batch_size=8, label_noise=0.5, seed=3)
    with tfds.testing.mock_data(
        as_dataset_fn=_indexed_as_dataset, data_dir=_tiny_metadata(tmp_path, "cifar10", 16, 8)
    ):
        batches = _take(ip.DataSet(config).train_batches(), 4)  # Two epochs.
        evals = next(ip.DataSet(config).eval_batches())
    indices = np.array([h[0] for h in _locate_all(batches, _sources(16, (32, 32, 3)), "cifar10")])
    labels = np.concatenate([b["label"] for b in batches])
    expected = noisy_labels(np.arange(16) % 10, 10, 0.5, seed=3)
    np.testing.assert_array_equal(labels, expected[indices])
    assert (labels != indices % 10).any()
    np.testing.assert_array_equal(evals["label"], np.arange(8) % 10)  # Eval labels are clean.


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(dataset="mnist"), "valid names are: cifar10, cifar100, imagenet2012, cluttered"),
        (dict(batch_size=4), "batch_size 4 is not divisible by the 3 processes"),
    ],
)
def test_bad_configs_raise_clear_errors(monkeypatch, overrides, message):
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    with tfds.testing.mock_data(num_examples=4, data_dir=METADATA):
        with pytest.raises(ValueError, match=message):
            ip.DataSet(_config(**overrides)).train_batches()


@pytest.mark.parametrize(
    "name,archive",
    [("cifar10", "cifar-10-binary.tar.gz"), ("imagenet2012", "ILSVRC2012_img_train.tar")],
)
def test_a_missing_dataset_raises_an_actionable_error_and_writes_nothing(tmp_path, name, archive):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    config = _config(dataset=name, data_dir=str(data_dir))
    with pytest.raises(DataNotFoundError) as error:
        ip.DataSet(config)
    message = str(error.value)
    assert str(data_dir / "downloads" / "manual") in message and archive in message
    assert f"tfds build {name} --data_dir={data_dir} --manual_dir=" in message
    assert list(tmp_path.rglob("*")) == [data_dir]


def _cifar_missing(tmp_path, **overrides):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    return data_dir, _config(dataset="cifar10", data_dir=str(data_dir), **overrides)


def test_a_missing_cifar_is_downloaded_when_the_host_answers(tmp_path, monkeypatch):
    data_dir, config = _cifar_missing(tmp_path, download=True)
    connections, prepared = [], []

    class Connection:
        def close(self):
            pass

    def connect(address, timeout):
        connections.append((address, timeout))
        return Connection()

    monkeypatch.setattr(downloads.socket, "create_connection", connect)
    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", lambda self: prepared.append(self.name)
    )
    build, argument = datasets.lookup("cifar10")  # the builder, before the data are described
    builder = build(argument, config).builder
    assert connections == [(("www.cs.toronto.edu", 443), downloads.CONNECT_TIMEOUT_S)]
    assert prepared == ["cifar10"] and builder.name == "cifar10"


@pytest.mark.parametrize("failure", ["refused", "hangs"])
def test_offline_the_download_stops_within_the_timeout_with_the_manual_steps(
    tmp_path, monkeypatch, failure
):
    data_dir, config = _cifar_missing(tmp_path, download=True)

    def connect(address, timeout):
        if failure == "hangs":  # a name lookup that never answers
            threading.Event().wait()
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(downloads.socket, "create_connection", connect)
    monkeypatch.setattr(downloads, "CONNECT_TIMEOUT_S", 0.2)
    monkeypatch.setattr(
        tfds.core.DatasetBuilder,
        "download_and_prepare",
        lambda self: pytest.fail("no download may start offline"),
    )
    start = time.monotonic()
    with pytest.raises(DataNotFoundError) as error:
        ip.DataSet(config)
    assert time.monotonic() - start < 10  # bounded by the connect timeout, never a hang
    message = str(error.value)
    assert "cannot be downloaded: www.cs.toronto.edu is unreachable" in message
    assert "cifar-10-binary.tar.gz" in message and str(data_dir / "downloads" / "manual") in message
    assert list(tmp_path.rglob("*")) == [data_dir]


def test_a_failed_download_is_reported_with_the_manual_steps(tmp_path, monkeypatch):
    data_dir, config = _cifar_missing(tmp_path, download=True)
    monkeypatch.setattr(downloads, "_reachable", lambda host: True)

    def fail(self):
        raise OSError("connection reset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(DataNotFoundError, match=r"its download failed \(OSError: connection"):
        ip.DataSet(config)


def test_imagenet_is_never_downloaded(tmp_path, monkeypatch):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    config = _config(dataset="imagenet2012", data_dir=str(data_dir), download=True)
    monkeypatch.setattr(downloads, "_reachable", lambda host: pytest.fail("no connection attempt"))
    with pytest.raises(DataNotFoundError, match="is never downloaded"):
        ip.DataSet(config)


def test_imagenet_evaluates_at_eval_image_size_and_trains_at_image_size():
    config = _config(dataset="imagenet2012", batch_size=2, image_size=32, eval_image_size=48)
    with tfds.testing.mock_data(num_examples=4, data_dir=METADATA):
        data = ip.DataSet(config)
        train, evals = next(data.train_batches()), next(data.eval_batches())
    assert (data.info.image_size, data.info.eval_image_size) == (32, 48)
    assert train["image"].shape == (2, 32, 32, 3) and evals["image"].shape == (2, 48, 48, 3)


def test_eval_image_size_is_refused_for_fixed_size_datasets():
    with tfds.testing.mock_data(num_examples=4, data_dir=METADATA):
        with pytest.raises(ValueError, match="cifar10 images are all 32x32"):
            ip.DataSet(_config(eval_image_size=40))


def test_eval_examples_and_eval_split_choose_what_is_evaluated(tmp_path):
    with tfds.testing.mock_data(
        as_dataset_fn=_indexed_as_dataset, data_dir=_tiny_metadata(tmp_path, "cifar10", 10, 10)
    ):
        batches = list(ip.DataSet(_config(eval_examples=5)).eval_batches())
        info = ip.DataSet(_config(eval_split="train", eval_examples=50)).info
        with pytest.raises(
            ValueError,
            match="config.eval_split='val': cifar10 has no such split; its splits are: test, train",
        ):
            ip.DataSet(_config(eval_split="val"))
    mask = np.concatenate([b["mask"] for b in batches])
    assert mask.tolist() == [True] * 5 + [False] * 3
    labels = np.concatenate([b["label"] for b in batches])
    assert labels[:5].tolist() == [0, 1, 2, 3, 4]  # the first five examples of the split
    assert (info.eval_split, info.num_eval) == ("train", 10)
