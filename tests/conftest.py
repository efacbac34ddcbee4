"""Test-wide settings: CPU only, quiet TensorFlow. Runs before JAX is first imported."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile the same tiny steps in many processes (CLI runs, resumed runs): a persistent
# XLA cache shared by them (and inherited by subprocesses) turns repeats into cache hits.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ran_jax_test_xla_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The CLI runs of tests train tiny models for a few steps. One run of test_reliability.py took
# 7:32 with host_allocator's setting and 5:20 without; tests of the setting set it themselves.
os.environ.setdefault("RAN_JAX_KEEP_FREED_MEMORY", "0")

import jax  # noqa: E402

# Tests run tiny networks a few times each: compile time dominates, so trade run-time
# optimisations for faster XLA compiles (as flax/examples do in their tests).
jax.config.update("jax_disable_most_optimizations", True)
