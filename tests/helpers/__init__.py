"""Helpers shared by the tests (``tests/`` is on ``sys.path``: pyproject.toml)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTDATA = os.path.join(ROOT, "tests", "testdata")

# The model_overrides of the tests' tiny training runs: Attention-56 at widths 2 with one
# Attention Module, in the last stage, whose one-level soft mask is the quickest to trace,
# compile and run (docs/performance.md, "End to end").
TINY = {"widths": (2, 2, 2), "modules": (0, 0, 1)}
