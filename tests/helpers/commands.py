"""Runs ``python -m ran_jax.MODULE`` the way a user does, for the command-line tests."""

import os
import subprocess
import sys

from helpers import ROOT, xla_flags


def run(module: str, *args: str, devices: int = 1) -> subprocess.CompletedProcess:
    """The finished process (text stdout/stderr) on ``devices`` CPU devices."""
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=xla_flags(devices),
    )
    return subprocess.run(
        [sys.executable, "-m", f"ran_jax.{module}", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
