"""Image files read as a viewer shows them: every palette, bit-depth, colour-mode and
orientation variant against the same picture saved as a plain RGB file, plain files read by
TensorFlow as before, unreadable files refused in one line naming them, and image folders
(including a JPEG truncated partway, met in training) read the same way."""

import io
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from helpers import TINY, folder_images
from ran_jax import main
from ran_jax.data import image_files, image_folder, pillow_decode, preprocess
from ran_jax.data import input_pipeline as ip
from ran_jax.data.datasets import IMAGENET_NORMALISATION
from ran_jax.data.info import DataReadError, DatasetInfo

# JPEGs of the smooth picture below (quality 95, no chroma subsampling) decode within this
# many levels of it. Measured: 5 for plain ones (TensorFlow's fast integer DCT), 3 for rotated
# ones and 0 for CMYK ones (Pillow).
JPEG_ATOL = 5
JPEG = dict(quality=95, subsampling=0)

PALETTE = np.array(
    [[200, 30, 90], [0, 0, 0], [255, 255, 255], [12, 200, 40], [90, 90, 250], [250, 220, 0]]
    + [[17 * i, 255 - 17 * i, (97 * i) % 256] for i in range(10)],
    np.uint8,
)  # 16 colours, so that 4-bit and 8-bit palettes hold the picture exactly


def _indices(height=24, width=40, colours=16) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return ((x // 5 + 3 * (y // 4)) % colours).astype(np.uint8)


INDICES = _indices()
PICTURE = PALETTE[INDICES]  # what a viewer shows, [24, 40, 3]; not symmetric, so
GREY = PICTURE.mean(-1).astype(np.uint8)  # any wrong flip or rotation shows


def _bmp(indices: np.ndarray, palette: np.ndarray, bits: int, compression: int = 0) -> bytes:
    """An uncompressed palette BMP of 1, 4 or 8 bits per pixel (Pillow writes only 1 and 8)."""
    height, width = indices.shape
    per_byte = 8 // bits
    row_bytes = -(-width // per_byte)
    padded = np.zeros((height, row_bytes * per_byte), np.uint8)
    padded[:, :width] = indices
    shifts = 8 - bits * np.arange(1, per_byte + 1)
    rows = (padded.reshape(height, row_bytes, per_byte) << shifts).sum(-1).astype(np.uint8)
    stride = -(-row_bytes // 4) * 4
    data = np.zeros((height, stride), np.uint8)
    data[:, :row_bytes] = rows[::-1]  # bottom-up
    table = np.zeros((2**bits, 4), np.uint8)
    table[: len(palette), :3] = palette[:, ::-1]  # BGR0
    offset = 14 + 40 + table.nbytes
    info = struct.pack("<IiiHHII", 40, width, height, 1, bits, compression, data.nbytes)
    info += b"\0" * (40 - len(info))
    head = b"BM" + struct.pack("<IHHI", offset + data.nbytes, 0, 0, offset)
    return head + info + table.tobytes() + data.tobytes()


def _saved(image: Image.Image, format: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **options)
    return out.getvalue()


def _palette_image(indices=INDICES, palette=PALETTE) -> Image.Image:
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.ravel().tolist())
    return image


def _rgba(alpha_from: np.ndarray) -> Image.Image:
    alpha_from = alpha_from.astype(np.int64)
    return Image.fromarray(np.dstack([PICTURE, (alpha_from * 37 % 256).astype(np.uint8)]))


COLOUR_VARIANTS = {
    "24-bit BMP": lambda: _saved(Image.fromarray(PICTURE), "BMP"),
    "8-bit palette BMP": lambda: _saved(_palette_image(), "BMP"),
    "4-bit palette BMP": lambda: _bmp(INDICES, PALETTE, 4),
    "8-bit palette BMP, hand-written": lambda: _bmp(INDICES, PALETTE, 8),
    "32-bit BMP with alpha": lambda: _saved(_rgba(INDICES), "BMP"),
    "palette PNG": lambda: _saved(_palette_image(), "PNG"),
    "4-bit palette PNG with transparency": lambda: _saved(
        _palette_image(), "PNG", bits=4, transparency=3
    ),
    "palette GIF": lambda: _saved(_palette_image(), "GIF"),
    "palette GIF with transparency": lambda: _saved(_palette_image(), "GIF", transparency=3),
    "RGBA PNG": lambda: _saved(_rgba(INDICES), "PNG"),
    "16-bit RGB PNG": lambda: tf.io.encode_png(PICTURE.astype(np.uint16) * 257).numpy(),
    "16-bit RGBA PNG": lambda: tf.io.encode_png(
        np.dstack([PICTURE, INDICES]).astype(np.uint16) * 257
    ).numpy(),
}
GREY_VARIANTS = {
    "grey PNG": lambda: _saved(Image.fromarray(GREY), "PNG"),
    "grey BMP": lambda: _saved(Image.fromarray(GREY), "BMP"),
    "grey+alpha PNG": lambda: _saved(Image.fromarray(np.dstack([GREY, INDICES]), "LA"), "PNG"),
    "16-bit grey PNG": lambda: _saved(Image.fromarray(GREY.astype(np.uint16) * 257), "PNG"),
    "16-bit grey+alpha PNG": lambda: tf.io.encode_png(
        np.dstack([GREY, INDICES]).astype(np.uint16) * 257
    ).numpy(),
}
TWO_COLOURS = np.array([[255, 255, 255], [200, 30, 90]], np.uint8)
BLACK_WHITE = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
TWO_COLOUR_VARIANTS = {  # 1 bit per pixel: (file, the picture it holds)
    "1-bit palette BMP": lambda: (_bmp(INDICES % 2, TWO_COLOURS, 1), TWO_COLOURS[INDICES % 2]),
    "1-bit black-and-white BMP": lambda: (
        _saved(Image.fromarray(INDICES % 2 == 1), "BMP"),
        BLACK_WHITE[INDICES % 2],
    ),
    "1-bit PNG": lambda: (
        _saved(Image.fromarray(INDICES % 2 == 1), "PNG"),
        BLACK_WHITE[INDICES % 2],
    ),
}


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _plain_png(tmp_path, picture: np.ndarray) -> str:
    """The picture saved as a plain 24-bit RGB PNG: what TensorFlow reads as a viewer does."""
    return _write(tmp_path, "plain.png", _saved(Image.fromarray(picture), "PNG"))


def _read(path: str, channels: int) -> np.ndarray:
    return image_files.read_image(path, channels).numpy()


def _assert_reads_as(path: str, plain: str, grey_atol: int = 0) -> None:
    """``path`` reads exactly as the plain RGB file, for RGB and for grey-scale networks."""
    np.testing.assert_array_equal(_read(path, 3), _read(plain, 3))
    np.testing.assert_allclose(_read(path, 1), _read(plain, 1), atol=grey_atol)


@pytest.mark.parametrize("variant", sorted(COLOUR_VARIANTS))
def test_each_colour_variant_reads_as_the_plain_rgb_picture(tmp_path, variant):
    path = _write(tmp_path, "variant", COLOUR_VARIANTS[variant]())
    plain = _plain_png(tmp_path, PICTURE)
    np.testing.assert_array_equal(_read(plain, 3), PICTURE)
    # TensorFlow turns 16-bit colour PNGs grey before it drops their low bytes.
    _assert_reads_as(path, plain, grey_atol=1 if variant.startswith("16-bit") else 0)


@pytest.mark.parametrize("variant", sorted(GREY_VARIANTS))
def test_each_grey_variant_reads_as_the_plain_rgb_picture(tmp_path, variant):
    path = _write(tmp_path, "variant", GREY_VARIANTS[variant]())
    plain = _plain_png(tmp_path, np.repeat(GREY[..., None], 3, -1))
    np.testing.assert_array_equal(_read(path, 1)[..., 0], GREY)
    _assert_reads_as(path, plain)


@pytest.mark.parametrize("variant", sorted(TWO_COLOUR_VARIANTS))
def test_each_one_bit_variant_reads_as_the_plain_rgb_picture(tmp_path, variant):
    data, picture = TWO_COLOUR_VARIANTS[variant]()
    path = _write(tmp_path, "variant", data)
    _assert_reads_as(path, _plain_png(tmp_path, picture))
    np.testing.assert_array_equal(_read(path, 3), picture)


def test_the_issues_palette_bmp_is_read_through_its_palette(tmp_path):
    """Issue 20: index 137 of this palette is (200, 30, 90); it was read as grey 137."""
    image = Image.new("P", (50, 30), 137)
    image.putpalette([0] * 411 + [200, 30, 90] + [0] * 354)
    palette_bmp = _write(tmp_path, "p.bmp", _saved(image, "BMP"))
    rgb_bmp = _write(tmp_path, "rgb.bmp", _saved(image.convert("RGB"), "BMP"))
    info = DatasetInfo(
        "image_folder", 3, 32, 3, 1, 1, "train", "test", 32, ("a", "b", "c"),
        IMAGENET_NORMALISATION, "resized_crop_flip",
    )  # fmt: skip
    views = image_files.eval_views([palette_bmp, rgb_bmp], info)  # what predict classifies
    np.testing.assert_array_equal(views[0], views[1])
    assert (_read(palette_bmp, 3) == [200, 30, 90]).all()


def _smooth_picture(height=32, width=48) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return np.stack([40 + 4 * x, 30 + 5 * y, 200 - 2 * (x + y)], -1).astype(np.uint8)


# Pillow's transposition for EXIF orientations 2-8, and its inverse: the stored picture that a
# viewer turns upright.
UNDO = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _oriented(picture: np.ndarray, orientation: int, format: str, **options) -> bytes:
    stored = Image.fromarray(picture).transpose(UNDO[orientation])
    return _saved(stored, format, exif=_exif(orientation), **options)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    png = _write(tmp_path, "o.png", _oriented(PICTURE, orientation, "PNG"))
    upright = np.asarray(ImageOps.exif_transpose(Image.open(png)).convert("RGB"))
    np.testing.assert_array_equal(upright, PICTURE)  # the reference agrees with the test
    _assert_reads_as(png, _plain_png(tmp_path, PICTURE))

    smooth = _smooth_picture()
    jpeg = _write(tmp_path, "o.jpg", _oriented(smooth, orientation, "JPEG", **JPEG))
    plain_jpeg = _write(tmp_path, "plain.jpg", _saved(Image.fromarray(smooth), "JPEG", **JPEG))
    for path in (jpeg, plain_jpeg):
        np.testing.assert_allclose(_read(path, 3), smooth, atol=JPEG_ATOL)


def test_cmyk_jpegs_are_converted_to_rgb(tmp_path):
    smooth = _smooth_picture()
    cmyk = Image.fromarray(smooth).convert("CMYK")
    path = _write(tmp_path, "cmyk.jpg", _saved(cmyk, "JPEG", **JPEG))
    assert Image.open(path).info.get("adobe")  # Pillow writes Adobe's inverted CMYK
    np.testing.assert_allclose(_read(path, 3), smooth, atol=JPEG_ATOL)
    stored = Image.fromarray(smooth).transpose(UNDO[6]).convert("CMYK")
    rotated = _write(tmp_path, "r.jpg", _saved(stored, "JPEG", exif=_exif(6), **JPEG))
    np.testing.assert_allclose(_read(rotated, 3), smooth, atol=JPEG_ATOL)


def test_plain_jpegs_and_pngs_are_decoded_by_tensorflow_as_before(tmp_path):
    """Networks trained on them see them bit for bit as they did: TensorFlow decodes them."""
    smooth = _smooth_picture()
    files = {
        "rgb.jpg": _saved(Image.fromarray(smooth), "JPEG", quality=90),
        "grey.jpg": _saved(Image.fromarray(GREY), "JPEG", quality=90),
        "rgb.png": _saved(Image.fromarray(PICTURE), "PNG"),
        "palette.png": _saved(_palette_image(), "PNG"),
        "upright.jpg": _saved(Image.fromarray(smooth), "JPEG", exif=_exif(1)),
    }
    for name, data in files.items():
        path = _write(tmp_path, name, data)
        assert not pillow_decode.needs_pillow(path), name
        for channels in (3, 1):
            before = tf.io.decode_image(data, channels=channels, expand_animations=False)
            np.testing.assert_array_equal(_read(path, channels), before.numpy())


def _truncated_jpeg() -> bytes:
    """A JPEG cut partway through its pixels: its header reads, its pixels do not."""
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8)
    data = _saved(Image.fromarray(noise), "JPEG", quality=90)
    return data[: len(data) * 3 // 4]


TRUNCATED_JPEG = (
    "it is truncated or damaged (TensorFlow: jpeg::Uncompress failed. "
    "Invalid JPEG data or crop window.)."
)
TRUNCATED_BMP = "it is truncated or damaged (Pillow: image file is truncated"  # (N bytes...)


@pytest.mark.parametrize(
    "data,reason",
    [
        (
            lambda: _bmp(INDICES, PALETTE, 8, compression=4),
            "this kind of BMP is not supported (Unsupported BMP compression (4)); "
            "save it as a 24-bit BMP or PNG.",
        ),
        (
            lambda: _saved(Image.fromarray(PICTURE), "WEBP"),
            "it is a WEBP file; convert it to JPEG, PNG, GIF or BMP.",
        ),
        (
            lambda: b"no image here",
            "it is not a JPEG, PNG, GIF or BMP file (it starts with b'no image').",
        ),
        (_truncated_jpeg, TRUNCATED_JPEG),
        (lambda: _saved(Image.fromarray(PICTURE), "BMP")[:-100], TRUNCATED_BMP),
    ],
)
def test_what_cannot_be_read_is_refused_in_one_line_naming_the_file(tmp_path, data, reason):
    path = _write(tmp_path, "photo.jpg", data())
    with pytest.raises(ValueError) as error:
        image_files.read_image(path, 3)
    assert str(error.value).startswith(f"Cannot read {path} as an image: {reason}")
    assert "\n" not in str(error.value)


SMALL = dict(batch_size=2, image_size=24, shuffle_buffer=16)  # the pipeline's config


def test_image_folders_read_files_tensorflow_would_misread_as_predict_does(tmp_path):
    root = folder_images.make(tmp_path / "root", train_per_class=2, test_per_class=1)
    smooth = _smooth_picture()
    odd = {  # named as tfds lists them (.jpg, .png), whatever they hold
        "test/bars/rotated.jpg": _oriented(smooth, 6, "JPEG", **JPEG),
        "test/blob/cmyk.jpg": _saved(Image.fromarray(smooth).convert("CMYK"), "JPEG"),
        "test/ring/palette.png": _saved(_palette_image(), "BMP"),
        "train/bars/gif.png": _saved(_palette_image(), "GIF"),
    }
    for name, data in odd.items():
        (root / name).write_bytes(data)
    through_pillow = image_folder.check_layout(str(root)).through_pillow
    assert through_pillow == {str(root / name) for name in odd}

    data = ip.DataSet(folder_images.config(root, **{**SMALL, "batch_size": 6}))
    info = data.info
    (batch,) = data.eval_batches()
    files = image_folder.builder(str(root)).files("test")
    assert {str(root / name) for name in odd if name.startswith("test")} <= set(files)
    for view, path in zip(batch["image"], files):
        expected = preprocess.eval_view(image_files.read_image(path, 3), info).numpy()
        np.testing.assert_allclose(view, expected, atol=1e-6, err_msg=path)
    train = next(data.train_batches())
    assert train["image"].shape == (6, 24, 24, 3) and np.isfinite(train["image"]).all()


@pytest.mark.parametrize(
    "split,start_step,damaged",
    [
        ("train", 0, "cut.jpg"),
        ("train", 5, "cut.jpg"),  # a resumed stream
        ("test", 0, "cut.jpg"),
        ("train", 0, "cut_bmp.png"),  # read by Pillow
    ],
)
def test_a_damaged_file_stops_the_stream_in_one_line_naming_it(
    tmp_path, split, start_step, damaged
):
    root = folder_images.make(tmp_path / "root", train_per_class=2, test_per_class=1)
    bad = root / split / "blob" / damaged
    if damaged == "cut.jpg":
        data, reason = _truncated_jpeg(), TRUNCATED_JPEG
    else:
        data, reason = _saved(Image.fromarray(PICTURE), "BMP")[:-100], TRUNCATED_BMP
    bad.write_bytes(data)
    config = folder_images.config(root, **SMALL)
    if split == "train":
        stream = ip.DataSet(config).train_batches(start_step=start_step)
    else:
        stream = ip.DataSet(config).eval_batches()
    with pytest.raises(DataReadError) as error:
        for _ in range(20):  # more than 2 epochs
            next(stream)
    prefix = f"reading image_folder:{root} failed: Cannot read {bad} as an image: "
    assert str(error.value).startswith(prefix + reason) and "\n" not in str(error.value)


@pytest.mark.slow
def test_training_stops_at_a_truncated_jpeg_with_one_line_naming_it(tmp_path):
    """The command's start (``main.train``, here in this process) ends with one ``error:``
    line, and the checkpoints saved before are kept."""
    root = folder_images.make(tmp_path / "root", train_per_class=2, test_per_class=1)
    bad = root / "train" / "bars" / "cut.jpg"
    bad.write_bytes(_truncated_jpeg())
    # One image a step, in the files' order.
    config = folder_images.config(root, image_size=24, batch_size=1, shuffle_buffer=1)
    config.model_overrides.update(TINY)
    config.num_train_steps = 10
    config.log_every_steps = config.checkpoint_every_steps = 1
    config.eval_every_steps = 100
    config.attention_images = 0
    failing_step = image_folder.builder(str(root)).files("train").index(str(bad)) + 1
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        main.train(config, str(workdir))
    assert stopped.value.code == (
        f"error: reading image_folder:{root} failed: Cannot read {bad} as an image: "
        f"{TRUNCATED_JPEG} Every checkpoint saved in {workdir} is kept; fix the data and re-run."
    )
    # The steps before the failing one that ran (the loop reads a few batches ahead) are kept.
    kept = sorted(int(step) for step in os.listdir(workdir / "checkpoints") if step.isdigit())
    assert kept and kept == list(range(1, len(kept) + 1)) and kept[-1] < failing_step
