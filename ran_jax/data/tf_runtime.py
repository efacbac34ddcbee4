"""TensorFlow and tensorflow-datasets, started once for the input pipelines and export.

Every module that needs them imports them from here, so the settings below are made once,
before TensorFlow starts, in the only code path that starts it: its C++ log is quiet, and it
sees no GPU (TensorFlow only feeds the host; the accelerators belong to JAX).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TensorFlow had already initialised its devices.
    pass

__all__ = ["tf", "tfds"]
