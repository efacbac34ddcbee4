"""python -m ran_jax.benchmark: a bad flag is one line.

The figures are tested in tests/training/test_step_benchmark.py; the command's full run in
tests/test_architecture.py, with TensorFlow unimportable.
"""

import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # the command in a subprocess


def test_cli_gives_a_one_line_error_for_a_bad_flag():
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    bad = subprocess.run(
        [sys.executable, "-m", "ran_jax.benchmark", "--model=cifar_attention56", "--steps=0"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("error: Need --steps >= 1")
    assert "Traceback" not in bad.stderr
