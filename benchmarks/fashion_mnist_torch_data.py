"""Fashion-MNIST (Xiao et al. 2017) for ``torch_fashion_mnist.py``: its four gzip IDX files,
read with gzip and numpy, as a ``Dataset`` with ran_jax's CIFAR-style augmentation (zero-pad
4 pixels per side, random crop of the original size, random horizontal flip, then
``(x / 255 - mean) / std``) and the unaugmented test set."""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

DATA_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's and Ubuntu's dataset-fashion-mnist
FILES = {"train": "train", "test": "t10k"}
MAGIC = {"images": 0x0803, "labels": 0x0801}  # IDX: unsigned bytes, 3 or 1 dimensions
PAD = 4
NUM_CLASSES = 10


def read_idx(path: str, kind: str) -> np.ndarray:
    """The uint8 array of a gzip IDX file (``kind`` 'images' or 'labels'), header checked."""
    with gzip.open(path, "rb") as f:
        data = bytearray(f.read())  # writable, as torch.from_numpy wants
    magic = struct.unpack(">I", data[:4])[0]
    if magic != MAGIC[kind]:
        raise ValueError(f"{path}: magic number {magic:#x}, expected {MAGIC[kind]:#x} ({kind}).")
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(shape):
        raise ValueError(f"{path}: {body.size} bytes of pixels or labels for shape {shape}.")
    return body.reshape(shape)


def load_split(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, 28, 28], int64 labels [N]) of 'train' or 'test'."""
    stem = os.path.join(data_dir, FILES[split])
    images = read_idx(f"{stem}-images-idx3-ubyte.gz", "images")
    labels = read_idx(f"{stem}-labels-idx1-ubyte.gz", "labels").astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max() >= NUM_CLASSES:
        raise ValueError(f"{stem}-*: not Fashion-MNIST ({images.shape}, {labels.shape}).")
    return images, labels


class AugmentedImages(Dataset):
    """Training images: zero-pad, random crop, random horizontal flip, normalise ([1, H, W])."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> None:
        self.padded = torch.from_numpy(np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD))))
        self.labels = torch.from_numpy(labels)
        self.size = images.shape[1]
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        top, left = torch.randint(0, 2 * PAD + 1, (2,)).tolist()
        image = self.padded[index, top : top + self.size, left : left + self.size]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        image = (image.float() / 255 - self.mean) / self.std
        return image.unsqueeze(0), self.labels[index]


def test_set(images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> TensorDataset:
    """The test images, normalised, unaugmented."""
    x = (torch.from_numpy(images).float() / 255 - mean) / std
    return TensorDataset(x.unsqueeze(1), torch.from_numpy(labels))


def make_loaders(
    data_dir: str,
    batch_size: int,
    eval_batch_size: int,
    num_workers: int,
    seed: int,
    mean: float | None = None,
    std: float | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Shuffled, augmented training batches (the last partial one dropped) and test batches;
    ``mean`` and ``std`` default to the training pixels' (scaled to [0, 1])."""
    train_images, train_labels = load_split(data_dir, "train")
    pixels = train_images / np.float32(255)
    mean = float(pixels.mean()) if mean is None else mean
    std = float(pixels.std()) if std is None else std
    print(f"data mean {mean:.4f} std {std:.4f}")
    train_loader = DataLoader(
        AugmentedImages(train_images, train_labels, mean, std),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    test = test_set(*load_split(data_dir, "test"), mean, std)
    return train_loader, DataLoader(test, batch_size=eval_batch_size)
