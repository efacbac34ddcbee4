"""Test-wide settings: CPU only, quiet TensorFlow. Runs before JAX is first imported."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

# Tests run tiny networks a few times each: compile time dominates, so trade run-time
# optimisations for faster XLA compiles (as flax/examples do in their tests).
jax.config.update("jax_disable_most_optimizations", True)
