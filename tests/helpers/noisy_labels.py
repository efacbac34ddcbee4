"""The noisy training labels of a whole split, for the noisy-label tests."""

import numpy as np
import tensorflow as tf

from ran_jax.data.input_pipeline import noisy_label


def noisy_labels(labels: np.ndarray, num_classes: int, noise: float, seed: int) -> np.ndarray:
    """The noisy training labels, ``labels[i]`` being the label of example i of the train split.

    Exactly the labels ``train_batches`` yields when ``config.label_noise == noise``.
    """
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(labels, np.int64)).enumerate()
    ds = ds.map(
        lambda index, label: noisy_label(
            label, index, num_classes=num_classes, noise=noise, seed=seed
        )
    )
    batches = list(ds.batch(4096).as_numpy_iterator())
    return np.concatenate([np.empty(0, np.int64), *batches]).astype(np.asarray(labels).dtype)
