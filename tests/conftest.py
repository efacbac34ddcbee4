"""Test-wide settings: CPU only, quiet TensorFlow. Runs before JAX is first imported."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
