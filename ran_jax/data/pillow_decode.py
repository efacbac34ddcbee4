"""Image files as an image viewer shows them, for the files TensorFlow's decoders misread.

TensorFlow decodes plain JPEGs and every PNG as a viewer does, and the pipelines keep it for
them (fast, and bit-identical to what trained networks saw). It does not apply EXIF
orientation, reads the indices of 8-bit palette BMPs as grey levels, refuses 1- and 4-bit
BMPs and BMPs for grey-scale networks, and converts CMYK JPEGs with its own arithmetic.
``needs_pillow`` finds such files from their header alone (no pixel is decoded); ``pixels``
decodes them with Pillow, the reference decoder.

How ``pixels`` reads what it is given:

- palette images (BMP, PNG, GIF) through their palette; GIFs: the first frame;
- 16-bit PNGs: the high byte of each sample, as TensorFlow's PNG decoder;
- CMYK JPEGs (Adobe's inverted ones included) converted to RGB by Pillow;
- EXIF orientation applied (the ``Orientation`` tag of the header's EXIF block);
- alpha and transparency dropped: a transparent pixel keeps the colour stored under it, as
  TensorFlow reads PNGs with alpha in training, not a viewer's background;
- grey-scale repeated into RGB; RGB to grey with the arithmetic of TensorFlow's PNG decoder,
  so an image comes out as the same picture saved as a 24-bit RGB PNG would.

What cannot be read raises ``UnreadableImageError``: one line that names the file and why.
No TensorFlow here.
"""

from __future__ import annotations

import os
import struct

import numpy as np
from PIL import Image, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "GIF", "BMP")  # what the docs promise; Pillow's MPO is a JPEG
_ORIENTATION = 0x0112  # the EXIF tag
# What Pillow's ImageOps.exif_transpose does for each orientation (2-8; 1 is upright).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# TensorFlow's PNG decoder turns RGB into grey as (9797 R + 19234 G + 3737 B) >> 15
# (libpng's rgb_to_gray with weights 0.299 and 0.587), measured exact on all 2^24 colours.
_GREY_WEIGHTS = np.array([9797, 19234, 3737], np.int64)
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")  # and the 16-bit "I;16..." modes
# What Pillow raises on a damaged or unsupported file, besides OSError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class UnreadableImageError(ValueError):
    """An image file that cannot be read; the message names it and says why."""


def require_file(path: str) -> None:
    """A ValueError naming ``path`` unless it is a file (checked before any decoder loads)."""
    if not os.path.isfile(path):
        raise ValueError(f"Image {path} does not exist or is not a file.")


def _fail(path: str, reason: str) -> UnreadableImageError:
    return UnreadableImageError(f"Cannot read {path} as an image: {reason}")


def _damaged(path: str, error: Exception) -> UnreadableImageError:
    return _fail(path, f"it is truncated or damaged (Pillow: {error}).")


def _not_an_image(path: str) -> UnreadableImageError:
    try:
        with Image.open(path) as other:  # a format Pillow knows but we do not promise?
            return _fail(path, f"it is a {other.format} file; convert it to JPEG, PNG, GIF or BMP.")
    except Exception:  # noqa: BLE001 - whatever fails here, the answer is "not an image"
        pass
    with open(path, "rb") as f:
        head = f.read(8)
    return _fail(path, f"it is not a JPEG, PNG, GIF or BMP file (it starts with {head!r}).")


def _open(path: str) -> Image.Image:
    """The image at ``path`` with its header read and no pixel decoded."""
    try:
        return Image.open(path, formats=FORMATS)
    except UnidentifiedImageError:
        raise _not_an_image(path) from None
    except Image.DecompressionBombError as e:
        raise _fail(path, f"it is too large: {e}") from e
    except _DECODE_ERRORS as e:
        if str(e).startswith("Unsupported BMP"):
            raise _fail(
                path, f"this kind of BMP is not supported ({e}); save it as a 24-bit BMP or PNG."
            ) from e
        raise _damaged(path, e) from e


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation in the header (1, upright, where there is none or it is invalid).

    Only the header's EXIF block counts (a PNG's eXIf chunk after the pixels does not): it is
    what is known before decoding, so finding the files and decoding them agree.
    """
    raw = image.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
    except _DECODE_ERRORS:
        return 1  # a damaged EXIF block: viewers show the image upright
    orientation = exif.get(_ORIENTATION, 1)
    return orientation if orientation in _TRANSPOSE else 1


def header(path: str) -> tuple[bool, tuple[int, int]]:
    """Whether TensorFlow would read the image at ``path`` unlike a viewer, and its (height,
    width) as a viewer shows it, from the header alone.

    Raises ``UnreadableImageError`` for files that are not a JPEG, PNG, GIF or BMP, or whose
    header is damaged or of a kind that cannot be read.
    """
    with _open(path) as image:
        orientation = _orientation(image)
        width, height = image.size
        if orientation in (5, 6, 7, 8):  # a quarter turn
            width, height = height, width
        if orientation != 1:
            pillow = True
        elif image.format in ("JPEG", "MPO"):
            pillow = image.mode not in ("L", "RGB")  # CMYK and YCCK
        else:
            pillow = image.format != "PNG"  # TensorFlow misreads some BMPs and GIF transparency
    return pillow, (height, width)


def needs_pillow(path: str) -> bool:
    """Whether TensorFlow would read the image at ``path`` unlike a viewer (``header``)."""
    return header(path)[0]


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Grey [H, W] or RGB [H, W, 3] uint8 pixels as [H, W, channels]."""
    if image.ndim == 2:
        return np.repeat(image[..., None], channels, axis=-1)
    if channels == 1:
        grey = (image.astype(np.int64) @ _GREY_WEIGHTS) >> 15
        return grey.astype(np.uint8)[..., None]
    return image


def pixels(path: str, channels: int) -> np.ndarray:
    """The uint8 [H, W, channels] pixels a viewer shows of the image at ``path`` (the
    module's docstring says how); ``UnreadableImageError`` naming the file otherwise."""
    with _open(path) as image:
        orientation = _orientation(image)
        try:
            image.load()
        except _DECODE_ERRORS as e:
            raise _damaged(path, e) from e
        if orientation != 1:
            image = image.transpose(_TRANSPOSE[orientation])
        if image.mode.startswith("I;16"):
            array = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        elif image.mode in _GREY_MODES:
            array = np.asarray(image.convert("L"))
        elif image.mode in ("P", "PA"):
            array = np.asarray(image.convert("RGBA").convert("RGB"))  # through the palette
        else:
            array = np.asarray(image.convert("RGB"))
    return _to_channels(array, channels)


# What a tf.data pipeline carries in place of the bytes of a file to read by Pillow
# (``image_folder``): MAGIC and the file's path. ``preprocess.decode_any`` decodes it where it
# decodes the others, after the shuffle, so the pixels never wait in a shuffle buffer and a
# damaged file fails in the batch that holds it. No JPEG, PNG, GIF or BMP starts with a zero
# byte, so the two never mix up.
MAGIC = b"\x00ran_jax: read by Pillow\x00"


def pixels_of_reference(reference: bytes, channels: int) -> np.ndarray:
    """``pixels`` of the file that ``reference`` (MAGIC + path) names."""
    return pixels(reference[len(MAGIC) :].decode(), int(channels))
