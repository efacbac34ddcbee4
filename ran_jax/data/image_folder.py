"""Your own images: ``--config.dataset=image_folder:ROOT`` reads a folder tree with tfds.

The layout is the one of ``tfds.ImageFolder``, which reads it::

    ROOT/train/<class name>/*.jpg|*.jpeg|*.png
    ROOT/test/<class name>/*.jpg|*.jpeg|*.png

Any number of classes (the sorted class folder names of both splits), images of any size.
``check_layout`` rejects a missing, empty or malformed tree before training starts, with one
line naming the path at fault. It also reads the header of every image (its size: folders of
small images of one size are augmented as CIFAR, others as ImageNet), so a file that is
not a JPEG, PNG, GIF or BMP at all is caught then, not hours later, and it finds the files
TensorFlow would read unlike an image viewer (EXIF-rotated photos, CMYK JPEGs, palette BMPs:
``pillow_decode``). The stream reads those through Pillow and all others as before,
TensorFlow decoding the file's bytes, so images are read as ``predict`` reads them.
"""

from __future__ import annotations

import dataclasses
import os

from ran_jax.data import pillow_decode
from ran_jax.data.tf_runtime import tf, tfds

NAME = "image_folder"
SPLITS = ("train", "test")
EXTENSIONS = (".jpg", ".jpeg", ".png")  # what tfds.ImageFolder lists


class LayoutError(ValueError):
    """The image folder is missing, empty or not laid out as ROOT/split/class/image."""


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS)


def _header(path: str) -> tuple[bool, tuple[int, int]]:
    try:
        return pillow_decode.header(path)
    except pillow_decode.UnreadableImageError as e:
        raise LayoutError(f"{e} Remove it or replace it with a valid image.") from e


@dataclasses.dataclass(frozen=True)
class Layout:
    """What ``check_layout`` found in a usable tree."""

    through_pillow: frozenset[str]  # images to read through Pillow (``pillow_decode``)
    sizes: frozenset[tuple[int, int]]  # the (height, width) of the images, as shown


def check_layout(root: str) -> Layout:
    """Raises ``LayoutError`` naming the path at fault unless ``root`` is a usable tree."""
    hint = f"expected {root}/train/<class>/*.jpg|png and {root}/test/<class>/*.jpg|png"
    if not os.path.isdir(root):
        raise LayoutError(f"Image folder {root} does not exist or is not a directory; {hint}.")
    classes: dict[str, list[str]] = {}
    through_pillow, sizes = set(), set()
    for split in SPLITS:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            raise LayoutError(f"Image folder {root} has no {split}/ directory; {hint}.")
        entries = sorted(os.listdir(split_dir))
        loose = [e for e in entries if _is_image(e)]
        if loose:
            raise LayoutError(
                f"{os.path.join(split_dir, loose[0])} is not inside a class folder; "
                f"move the images of each class into {split_dir}/<class>/."
            )
        classes[split] = [e for e in entries if os.path.isdir(os.path.join(split_dir, e))]
        if not classes[split]:
            raise LayoutError(f"{split_dir} has no class folders; {hint}.")
        for name in classes[split]:
            class_dir = os.path.join(split_dir, name)
            images = [f for f in sorted(os.listdir(class_dir)) if _is_image(f)]
            if not images:
                raise LayoutError(
                    f"Class folder {class_dir} holds no .jpg, .jpeg or .png images; "
                    "add images or remove the folder."
                )
            for image in images:
                path = os.path.join(class_dir, image)
                pillow, size = _header(path)
                sizes.add(size)
                if pillow:
                    through_pillow.add(path)
    unknown = sorted(set(classes["test"]) - set(classes["train"]))
    if unknown:
        raise LayoutError(
            f"Test class {unknown[0]!r} ({os.path.join(root, 'test', unknown[0])}) has no "
            f"training images in {os.path.join(root, 'train')}/; every test class needs some."
        )
    return Layout(frozenset(through_pillow), frozenset(sizes))


class Folder(tfds.ImageFolder):
    """``tfds.ImageFolder`` that hands over, for each file TensorFlow would misread, a
    reference for Pillow in place of its bytes (``pillow_decode.MAGIC`` and the path). Read
    it with ``decoders={"image": tfds.decode.SkipDecoding()}`` and decode the images with
    ``preprocess.decode_any``, as the input pipeline does."""

    def __init__(self, root: str, layout: Layout):
        super().__init__(root)
        self.through_pillow = layout.through_pillow
        # The side of every image where all are square and of one size; None otherwise.
        (height, width), *others = layout.sizes
        self.image_size = height if not others and height == width else None

    def files(self, split: str) -> list[str]:
        """The image files of ``split``, in the order of its examples."""
        return [example.image_path for example in self._split_examples[split]]

    def _as_dataset(self, split, shuffle_files=False, decoders=None, read_config=None):
        """``tfds.ImageFolder._as_dataset``, with references to the ``through_pillow`` files."""
        del read_config
        if split not in self.info.splits.keys():
            raise ValueError(f"Unrecognized split {split}; splits: {list(self.info.splits)}.")
        paths = self.files(split)
        label = self.info.features["label"]
        labels = [label.str2int(example.label) for example in self._split_examples[split]]
        pillow = [path in self.through_pillow for path in paths]
        ds = tf.data.Dataset.from_tensor_slices((paths, labels, pillow))
        if shuffle_files:
            ds = ds.shuffle(len(paths))

        def load(path: tf.Tensor, label: tf.Tensor, pillow: tf.Tensor) -> dict:
            image = tf.cond(
                pillow,
                lambda: tf.strings.join([pillow_decode.MAGIC, path]),
                lambda: tf.io.read_file(path),
            )
            example = {"image": image, "label": tf.cast(label, tf.int64), "image/filename": path}
            return self.info.features.decode_example(example, decoders=decoders)

        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)


def builder(root: str) -> Folder:
    """The checked image folder of ``root``."""
    root = os.path.abspath(os.path.expanduser(root))
    return Folder(root, check_layout(root))
