"""Image operations of the input pipelines, apart from the streams (as big_vision's
``pp/ops_image.py``): decoding, the paper's augmentations (section 4), evaluation views,
normalisation and random erasing. Each takes and returns one image tensor.
"""

from __future__ import annotations

import numpy as np

from ran_jax.data import pillow_decode
from ran_jax.data.info import DatasetInfo, any_size, flips
from ran_jax.data.tf_runtime import tf

CIFAR_PAD = 4  # Zero padding before the random crop (translation) of small images.
EVAL_CROP_FRACTION = 0.875  # ImageNet eval: shorter side resized to image_size / 0.875.
ERASE_AREA = (0.02, 0.4)  # random erasing: fraction of the image area erased,
ERASE_ASPECT = (0.3, 1 / 0.3)  # and the rectangle's height/width ratio (Zhong et al.)


def decode_small(image_bytes: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """An image of the data set's one size (CIFAR, cluttered digits, Tiny ImageNet, a folder
    of small images, ...) as uint8 [S, S, C] (``decode_any``)."""
    image = decode_any(image_bytes, info.num_channels)
    return tf.ensure_shape(image, [info.image_size, info.image_size, info.num_channels])


def decode_any(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """A JPEG, PNG, GIF (first frame) or BMP image as uint8 [H, W, channels]; grey-scale
    images are repeated into RGB and alpha is dropped.

    TensorFlow decodes the bytes of files it reads as an image viewer does. In their place,
    image folders hand over a reference to each file it would misread
    (``pillow_decode.MAGIC`` and the path), which Pillow decodes.
    """
    magic = pillow_decode.MAGIC

    def by_pillow() -> tf.Tensor:
        return tf.numpy_function(
            pillow_decode.pixels_of_reference, [image_bytes, channels], tf.uint8, stateful=False
        )

    def by_tensorflow() -> tf.Tensor:
        return tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)

    is_reference = tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic)
    image = tf.cond(is_reference, by_pillow, by_tensorflow)
    return tf.ensure_shape(image, [None, None, channels])


def pad_and_crop(image: tf.Tensor, key: tf.Tensor, pad: int = CIFAR_PAD) -> tf.Tensor:
    """Zero-pads ``pad`` pixels per side and takes a random crop of the original size."""
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed=key)


def random_resized_crop(
    image_bytes: tf.Tensor, key: tf.Tensor, size: int, channels: int = 3
) -> tf.Tensor:
    """Inception-style crop of 8-100% of the area, aspect ratio 3/4-4/3, resized to size^2.

    Of a JPEG only the crop is decoded; other formats are decoded whole first
    (``decode_any``). After 10 failed draws the whole image is used. The resize is plain
    bilinear (as Inception's preprocessing): anti-aliasing cost 60% of the time per image
    and made this the limit of the step rate (``pipeline_benchmark.py``).
    """

    def box(shape: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape,
            bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
            seed=key,
            min_object_covered=0.0,  # The box is the whole image: area_range alone decides.
            aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0),
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        return begin, crop_size

    def jpeg_crop() -> tf.Tensor:
        begin, crop_size = box(tf.io.extract_jpeg_shape(image_bytes))
        window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
        return tf.io.decode_and_crop_jpeg(image_bytes, window, channels=channels)

    def other_crop() -> tf.Tensor:
        image = decode_any(image_bytes, channels)
        begin, crop_size = box(tf.shape(image))
        return tf.slice(image, begin, crop_size)

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg_crop, other_crop)
    return tf.image.resize(tf.ensure_shape(image, [None, None, channels]), [size, size])


def resize_and_centre_crop(image: tf.Tensor, size: int, crop_fraction: float) -> tf.Tensor:
    """Evaluation view of a decoded image of any size: the shorter side resized to
    ``size / crop_fraction`` (anti-aliased), then the central size^2 crop; float32 pixels."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = round(size / crop_fraction) / tf.reduce_min(shape)
    image = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32), antialias=True)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def normalise(image: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """Pixels (0-255) to the network's input: scaled to [0, 1], then per-channel mean/std."""
    mean, std = info.normalisation
    return (tf.cast(image, tf.float32) / 255.0 - mean) / std


def train_image(image_bytes: tf.Tensor, key: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """Decoded, augmented (paper section 4) and normalised training image."""
    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    if any_size(info.augmentation):
        image = random_resized_crop(image_bytes, crop_key, info.image_size, info.num_channels)
    else:
        image = pad_and_crop(decode_small(image_bytes, info), crop_key)
    if flips(info.augmentation):
        image = tf.image.stateless_random_flip_left_right(image, flip_key)
    return normalise(image, info)


def random_erase(image: tf.Tensor, key: tf.Tensor, prob: float) -> tf.Tensor:
    """With probability ``prob``, fills a random rectangle of a normalised image with
    standard normal noise (random erasing, Zhong et al. 2020).

    The rectangle covers ERASE_AREA of the image with a height/width ratio in ERASE_ASPECT
    (log-uniform), clipped to the image where it does not fit, at a uniform position.
    """
    keys = tf.unstack(tf.random.experimental.stateless_split(key, 6))
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    area = tf.random.stateless_uniform([], keys[0], *ERASE_AREA) * height * width
    log_aspect = tf.random.stateless_uniform([], keys[1], *np.log(ERASE_ASPECT))
    erase_h = tf.clip_by_value(tf.round(tf.sqrt(area * tf.exp(log_aspect))), 1.0, height)
    erase_w = tf.clip_by_value(tf.round(tf.sqrt(area / tf.exp(log_aspect))), 1.0, width)
    top = tf.floor(tf.random.stateless_uniform([], keys[2]) * (height - erase_h + 1))
    left = tf.floor(tf.random.stateless_uniform([], keys[3]) * (width - erase_w + 1))
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + erase_h) & (cols >= left) & (cols < left + erase_w)
    inside &= tf.random.stateless_uniform([], keys[4]) < prob
    noise = tf.random.stateless_normal(shape, keys[5])
    return tf.where(inside[:, :, None], noise, image)


def eval_view(image: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """A decoded uint8 image [H, W, C] of any size as the network sees it in evaluation.

    Datasets of images of any size: shorter side to eval_image_size / 0.875, centre crop.
    Fixed-size datasets: their own images pass unchanged; other sizes get the shorter side
    resized to the dataset's size and the centre crop (what ``predict`` needs).
    """
    size = info.eval_image_size
    if any_size(info.augmentation):
        image = resize_and_centre_crop(image, size, EVAL_CROP_FRACTION)
    elif tuple(image.shape[:2]) != (size, size):
        image = resize_and_centre_crop(image, size, 1.0)
    return normalise(image, info)


def foreground(image: tf.Tensor, info: DatasetInfo, threshold: int) -> tf.Tensor:
    """bool [H, W]: the pixels of a normalised image whose value (0-255) in any channel is
    above ``threshold``: the object of a plain-background image."""
    mean, std = info.normalisation
    pixels = (image * std + mean) * 255.0
    return tf.reduce_max(pixels, axis=-1) > threshold + 0.5  # above the integer threshold


def eval_image(image_bytes: tf.Tensor, info: DatasetInfo) -> tf.Tensor:
    """An encoded evaluation example as the network sees it."""
    if any_size(info.augmentation):
        return eval_view(decode_any(image_bytes, info.num_channels), info)
    return eval_view(decode_small(image_bytes, info), info)
