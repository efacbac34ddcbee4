"""Helpers shared by the tests (``tests/`` is on ``sys.path``: pyproject.toml)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTDATA = os.path.join(ROOT, "tests", "testdata")
