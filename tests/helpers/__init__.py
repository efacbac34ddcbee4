"""Helpers shared by the tests (``tests/`` is on ``sys.path``: pyproject.toml)."""

import os
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTDATA = os.path.join(ROOT, "tests", "testdata")

# The model_overrides of the tests' tiny training runs: Attention-56 at widths 2 with one
# Attention Module, in the last stage, whose one-level soft mask is the quickest to trace,
# compile and run (docs/performance.md, "End to end").
TINY = {"widths": (2, 2, 2), "modules": (0, 0, 1)}

# XLA flags for the tests' compiles (conftest.py sets them for every process of a run). On
# jaxlib 0.10, XLA:CPU's older fusion emitters compile the tests' tiny networks faster than
# its default ones (docs/performance.md, "End to end"); later jaxlibs no longer have the
# flag, and an unknown flag stops XLA at its first compile.
_JAXLIB = tuple(int(part) for part in metadata.version("jaxlib").split(".")[:2])
COMPILE_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false" if _JAXLIB == (0, 10) else ""


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a process on ``devices`` CPU devices that compiles as the tests do."""
    return f"{COMPILE_XLA_FLAGS} --xla_force_host_platform_device_count={devices}".strip()
