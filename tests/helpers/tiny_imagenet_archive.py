"""A miniature ``tiny-imagenet-200.zip`` in the official layout, generated: a few classes of
64x64 JPEGs, each a coloured shape of its class on noise, boxed where the shape lies."""

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n01443537", "n01629819", "n01641577")
WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander, Salamandra salamandra",
    "n01641577": "bullfrog, Rana catesbeiana",
    "n99999999": "a class of words.txt not in wnids.txt",
}
CLASS_NAMES = ("goldfish", "European fire salamander", "bullfrog")
SIZE = 64


def _photo(label: int, rng: np.random.Generator, grey: bool = False) -> tuple[bytes, tuple]:
    """JPEG bytes and the inclusive box x0, y0, x1, y1 of its object."""
    image = rng.integers(0, 80, size=(SIZE, SIZE, 3)).astype(np.uint8)
    h, w = rng.integers(16, 33, size=2)
    y0, x0 = rng.integers(0, SIZE - h + 1), rng.integers(0, SIZE - w + 1)
    colour = np.zeros(3, np.uint8)
    colour[label % 3] = 255
    image[y0 : y0 + h, x0 : x0 + w] = colour
    picture = Image.fromarray(image)
    if grey:  # Tiny ImageNet holds a few grey-scale JPEGs
        picture = picture.convert("L")
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=95)
    return out.getvalue(), (x0, y0, x0 + w - 1, y0 + h - 1)


def make(
    path: Path,
    train_per_class: int = 4,
    val_per_class: int = 2,
    *,
    wnids_file: bool = True,
    val_class: str | None = None,
    seed: int = 0,
) -> Path:
    """Writes the archive at ``path``; ``wnids_file=False`` leaves out wnids.txt and
    ``val_class`` names that class for the first validation image (bad inputs)."""
    rng = np.random.default_rng(seed)
    root = "tiny-imagenet-200"
    with zipfile.ZipFile(path, "w") as z:
        if wnids_file:
            z.writestr(f"{root}/wnids.txt", "\n".join(WNIDS) + "\n")
        z.writestr(f"{root}/words.txt", "".join(f"{k}\t{v}\n" for k, v in WORDS.items()))
        for label, wnid in enumerate(WNIDS):
            boxes = []
            for i in range(train_per_class):
                data, box = _photo(label, rng, grey=(label == 0 and i == 1))
                name = f"{wnid}_{i}.JPEG"
                z.writestr(f"{root}/train/{wnid}/images/{name}", data)
                boxes.append("\t".join([name, *map(str, box)]))
            z.writestr(f"{root}/train/{wnid}/{wnid}_boxes.txt", "\n".join(boxes) + "\n")
        annotations = []
        for i in range(val_per_class * len(WNIDS)):
            label = i % len(WNIDS)
            data, box = _photo(label, rng)
            name = f"val_{i}.JPEG"
            z.writestr(f"{root}/val/images/{name}", data)
            wnid = val_class if (val_class and i == 0) else WNIDS[label]
            annotations.append("\t".join([name, wnid, *map(str, box)]))
        z.writestr(f"{root}/val/val_annotations.txt", "\n".join(annotations) + "\n")
        data, _ = _photo(0, rng)
        z.writestr(f"{root}/test/images/test_0.JPEG", data)
    return path
