"""Fashion-MNIST from its four local files: generated IDX gzip files (small ones, with the
expected counts made small too, and one full-size set) are checked by their contents and
prepared into exactly what tfds's own builder prepares; bad files are refused in one line
before anything is written; the real files of Debian's package pass where installed."""

import gzip
import shutil
import struct

import numpy as np
import pytest

from ran_jax import configs
from ran_jax.data import fashion_mnist, input_pipeline
from ran_jax.data.info import DataNotFoundError
from ran_jax.data.tf_runtime import tf, tfds

SMALL = {"train": 20, "test": 10}
NAME_VERSION = ("fashion_mnist", "3.0.1")
IMAGES, LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def _idx(array: np.ndarray, count: int | None = None) -> bytes:
    """An IDX file of uint8 ``array``; its header may claim another ``count``."""
    dims = (len(array) if count is None else count, *array.shape[1:])
    return struct.pack(f">I{len(dims)}I", 0x0800 + len(dims), *dims) + array.tobytes()


def _arrays(counts: dict[str, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in counts.items():
        prefix = "train" if split == "train" else "t10k"
        arrays[f"{prefix}-images-idx3-ubyte.gz"] = rng.integers(0, 256, (n, 28, 28), np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte.gz"] = (np.arange(n) % 10).astype(np.uint8)
    return arrays


def _write(directory, counts=SMALL, compressed=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in _arrays(counts).items():
        data = _idx(array)
        if compressed:
            (directory / name).write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (directory / name.removesuffix(".gz")).write_bytes(data)
    return directory


def _manual(data_dir):
    return _write(data_dir / "downloads" / "manual")


@pytest.fixture(autouse=True)
def _no_debian_files(monkeypatch, tmp_path):
    """The tests search only their own directories, even where Debian's package is installed."""
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "usr-share-datasets")


def _records(builder, split):
    path = builder.data_path / f"fashion_mnist-{split}.tfrecord-00000-of-00001"
    records = tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    return [tf.train.Example.FromString(record) for record in records]


def test_the_files_prepare_what_tfds_prepares_and_read_back(tmp_path, monkeypatch):
    ours = fashion_mnist.FashionMnist(data_dir=str(tmp_path / "ours"))
    fashion_mnist.prepare_from(ours, _write(tmp_path / "files"), counts=SMALL)
    # tfds's own builder, given the same files as its download would give them (uncompressed).
    raw = _write(tmp_path / "raw", compressed=False)
    mnist = tfds.image_classification.FashionMNIST.__module__
    monkeypatch.setattr(f"{mnist}._TRAIN_EXAMPLES", SMALL["train"])
    monkeypatch.setattr(f"{mnist}._TEST_EXAMPLES", SMALL["test"])
    monkeypatch.setattr(
        tfds.download.DownloadManager,
        "download_and_extract",
        lambda self, urls: {k: raw / url.rsplit("/", 1)[1][:-3] for k, url in urls.items()},
    )
    theirs = tfds.builder("fashion_mnist", data_dir=str(tmp_path / "theirs"))
    theirs.download_and_prepare()
    assert (ours.name, str(ours.version)) == (theirs.name, str(theirs.version)) == NAME_VERSION
    assert ours.info.features.to_json() == theirs.info.features.to_json()
    assert ours.info.features["label"].names[:2] == ["T-shirt/top", "Trouser"]
    for split in SMALL:
        # Equal examples in the same order (the bytes of a record depend on protobuf's map order).
        records = _records(ours, split)
        assert len(records) == SMALL[split] and records == _records(theirs, split)
    arrays = _arrays(SMALL)
    examples = list(ours.as_dataset(split="train").as_numpy_iterator())
    assert len(examples) == 20 and len(list(ours.as_dataset(split="test"))) == 10
    first = examples[0]
    assert first["image"].shape == (28, 28, 1) and first["image"].dtype == np.uint8
    index = next(
        i for i, image in enumerate(arrays[IMAGES]) if (image == first["image"][..., 0]).all()
    )
    assert first["label"] == arrays[LABELS][index]
    assert sorted(int(e["label"]) for e in examples) == sorted(arrays[LABELS].tolist())


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _rewrite(name, array, count=None, compressed=True):
    def rewrite(directory):
        data = _idx(array, count)
        (directory / name).write_bytes(gzip.compress(data) if compressed else data)

    return rewrite


def _swap(directory):
    (directory / IMAGES).rename(directory / "x")
    (directory / LABELS).rename(directory / IMAGES)
    (directory / "x").rename(directory / LABELS)


GOOD_LABELS = (np.arange(20) % 10).astype(np.uint8)
BLANK_IMAGES = np.zeros((20, 28, 28), np.uint8)


@pytest.mark.parametrize(
    "damage, name, message",
    [
        (lambda d: _cut(d / IMAGES), IMAGES, "is truncated: its gzip stream ends early."),
        (
            _rewrite(IMAGES, BLANK_IMAGES[:19], count=20),
            IMAGES,
            "holds 14,896 bytes of images after its header, which says 15,680 (truncated).",
        ),
        (_swap, IMAGES, f"holds labels, not images: is it swapped with {LABELS}?"),
        (_rewrite(LABELS, GOOD_LABELS[:19]), LABELS, "holds 19 labels, expected 20."),
        (
            _rewrite(IMAGES, BLANK_IMAGES[:10]),
            IMAGES,
            f"holds 10 images, expected 20: is it {TEST_IMAGES}?",
        ),
        (
            _rewrite(LABELS, np.where(np.arange(20) == 5, 10, GOOD_LABELS).astype(np.uint8)),
            LABELS,
            "has label 10 at position 5, expected 0-9.",
        ),
        (
            _rewrite(IMAGES, np.zeros((20, 32, 32), np.uint8)),
            IMAGES,
            "holds 32x32 images, expected 28x28.",
        ),
        (_rewrite(IMAGES, BLANK_IMAGES, compressed=False), IMAGES, "is not a readable gzip file"),
        (
            lambda d: (d / TEST_LABELS).write_bytes(gzip.compress(b"<html>Not Found</html>")),
            TEST_LABELS,
            "is not an IDX file of labels (magic number 1013478509, expected 2049).",
        ),
        (lambda d: (d / TEST_LABELS).unlink(), TEST_LABELS, "is missing ("),
    ],
    ids=[
        "gzip",
        "body",
        "swapped",
        "count",
        "t10k",
        "label",
        "shape",
        "not-gzip",
        "not-idx",
        "missing",
    ],
)
def test_bad_files_are_refused_in_one_line_before_anything_is_written(
    tmp_path, monkeypatch, damage, name, message
):
    monkeypatch.setattr(fashion_mnist, "COUNTS", SMALL)
    manual = _manual(tmp_path)
    damage(manual)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(fashion_mnist.FilesError) as e:
        fashion_mnist.prepare(str(tmp_path))
    text = str(e.value)
    assert text.startswith(f"{manual / name} {message}") and "\n" not in text, text
    assert f"in {manual}/; Debian and Ubuntu ship them as the package dataset-fashion-mnist" in text
    assert text.endswith("(apt-get install dataset-fashion-mnist).")
    assert sorted(tmp_path.rglob("*")) == before


def test_prepare_finds_the_files_in_the_manual_dir_and_reuses_what_it_prepared(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(fashion_mnist, "COUNTS", SMALL)
    _write(tmp_path / "downloads" / "manual" / "fashion-mnist")
    builder = fashion_mnist.prepare(str(tmp_path))
    assert builder.is_prepared() and builder.info.splits["train"].num_examples == 20
    shutil.rmtree(tmp_path / "downloads" / "manual")
    assert fashion_mnist.prepare(str(tmp_path)).is_prepared()


def test_without_files_the_builder_stays_unprepared_and_the_message_says_where_they_go(tmp_path):
    builder = fashion_mnist.prepare(str(tmp_path / "data"))
    assert not builder.is_prepared() and fashion_mnist.find_source(builder) is None
    assert not (tmp_path / "data").exists()
    config = configs.base()
    config.dataset, config.data_dir, config.download = (
        "fashion_mnist",
        str(tmp_path / "data"),
        False,
    )
    with pytest.raises(DataNotFoundError) as error:
        input_pipeline.DataSet(config)
    text = str(error.value)
    assert not (tmp_path / "data").exists()
    assert "\n" not in text and "download is off (config.download=False)" in text
    assert f"manual dir {tmp_path}/data/downloads/manual/" in text
    assert "apt-get install dataset-fashion-mnist" in text
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in text


def test_the_search_takes_the_manual_dir_then_its_folder_then_debians(tmp_path):
    builder = fashion_mnist.FashionMnist(data_dir=str(tmp_path))
    manual = tmp_path / "downloads" / "manual"
    for directory in (fashion_mnist.DEBIAN_DIR, manual / "fashion-mnist", manual):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TEST_LABELS).write_bytes(b"")  # one of the four names is enough
        assert fashion_mnist.find_source(builder) == directory


def test_online_the_builder_downloads_as_tfds_with_its_checksums(tmp_path):
    class Online:
        @property
        def manual_dir(self):
            raise AssertionError("Manual directory not enabled.")

        def download_and_extract(self, urls):
            self.urls = urls
            return dict.fromkeys(urls, tmp_path)

    online = Online()
    builder = fashion_mnist.FashionMnist(data_dir=str(tmp_path))
    assert [g.name for g in builder._split_generators(online)] == ["train", "test"]
    assert sorted(online.urls.values()) == sorted(
        fashion_mnist.URL + n for n in fashion_mnist.FILES
    )
    assert fashion_mnist.FashionMnist.url_infos == tfds.image_classification.FashionMNIST.url_infos
    assert set(fashion_mnist.FashionMnist.url_infos) == set(online.urls.values())


def test_full_size_files_pass_with_the_official_counts(tmp_path):
    directory = tmp_path / "files"
    directory.mkdir()
    for name, (split, kind) in fashion_mnist.FILES.items():
        n = fashion_mnist.COUNTS[split]
        shape = (n, 28, 28) if kind == "images" else (n,)
        (directory / name).write_bytes(gzip.compress(_idx(np.zeros(shape, np.uint8)), 1))
    fashion_mnist.check(directory)


@pytest.mark.skipif(
    not fashion_mnist.DEBIAN_DIR.is_dir(),
    reason="Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) is absent",
)
def test_the_files_of_debians_package_pass():
    fashion_mnist.check("/usr/share/datasets/fashion-mnist")


def test_evaluation_batches_carry_the_garments_pixels_for_the_localisation_score(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(fashion_mnist, "COUNTS", SMALL)
    _write(tmp_path / "downloads" / "manual")
    config = configs.base()
    config.dataset, config.data_dir, config.download = "fashion_mnist", str(tmp_path), False
    config.batch_size = 4
    batches = list(input_pipeline.DataSet(config).eval_batches())
    real = np.concatenate([b["mask"] for b in batches])
    regions = np.concatenate([b["region"] for b in batches])
    images = np.concatenate([b["image"][..., 0] for b in batches])
    assert real.sum() == SMALL["test"] and regions.shape == (12, 28, 28)
    (mean,), (std,) = fashion_mnist.NORMALISATION
    pixels = np.rint((images * std + mean) * 255)[real]
    # The random images hold values on both sides of the threshold: the region is exactly
    # the pixels above it, and the padding has none.
    assert {fashion_mnist.FOREGROUND, fashion_mnist.FOREGROUND + 1} <= set(pixels.ravel())
    np.testing.assert_array_equal(regions[real], pixels > fashion_mnist.FOREGROUND)
    assert not regions[~real].any()
