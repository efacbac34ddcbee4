"""Your own images: ``--config.dataset=image_folder:ROOT`` reads a folder tree with tfds.

The layout is the one of ``tfds.ImageFolder``, which reads it::

    ROOT/train/<class name>/*.jpg|*.jpeg|*.png
    ROOT/test/<class name>/*.jpg|*.jpeg|*.png

Any number of classes (the sorted class folder names of both splits), RGB or grey-scale
images of any size. ``check_layout`` rejects a missing, empty or malformed tree before
training starts, with one line naming the path at fault; it also reads the first bytes of
every image, so a file that is not a JPEG or PNG at all is caught then, not hours later.
"""

from __future__ import annotations

import functools
import os

from ran_jax.data.tf_runtime import tfds

NAME = "image_folder"
SPLITS = ("train", "test")
EXTENSIONS = (".jpg", ".jpeg", ".png")  # what tfds.ImageFolder lists
# Leading bytes of the formats tf.io.decode_image reads, whatever the file's extension says.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


class LayoutError(ValueError):
    """The image folder is missing, empty or not laid out as ROOT/split/class/image."""


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS)


def _check_readable(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(_SIGNATURES):
        raise LayoutError(
            f"{path} is not a JPEG or PNG image (it starts with {head!r}); "
            "remove it or replace it with a valid image."
        )


def check_layout(root: str) -> None:
    """Raises ``LayoutError`` naming the path at fault unless ``root`` is a usable tree."""
    hint = f"expected {root}/train/<class>/*.jpg|png and {root}/test/<class>/*.jpg|png"
    if not os.path.isdir(root):
        raise LayoutError(f"Image folder {root} does not exist or is not a directory; {hint}.")
    classes: dict[str, list[str]] = {}
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
                _check_readable(os.path.join(class_dir, image))
    unknown = sorted(set(classes["test"]) - set(classes["train"]))
    if unknown:
        raise LayoutError(
            f"Test class {unknown[0]!r} ({os.path.join(root, 'test', unknown[0])}) has no "
            f"training images in {os.path.join(root, 'train')}/; every test class needs some."
        )


@functools.lru_cache(maxsize=8)
def builder(root: str) -> tfds.ImageFolder:
    """The checked ``tfds.ImageFolder`` of ``root`` (checked and listed once per process)."""
    root = os.path.abspath(os.path.expanduser(root))
    check_layout(root)
    return tfds.ImageFolder(root)
