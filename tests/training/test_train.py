"""The data-parallel train step: 8 devices under pmap and shard_map equal 1 device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # a training process on 8 devices


@pytest.fixture(scope="module")
def parallel_runs():
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=ROOT,
        # Without XLA's optimisations (conftest.py's setting, stated here because the test
        # depends on it): the 1- and 8-device runs then agree to 5e-7 in the parameters on
        # JAX 0.10.2 and 0.12.1 alike. Optimised, JAX 0.12.1 compiles the 1-device step
        # differently and its second update differs by 1e-3 relative, which says nothing
        # about the data parallelism this test checks (measured 2026-12-06).
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
    )
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "helpers", "parallel_worker.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_same(a, b):
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)
    for key in ("params", "stats"):
        for x, y in zip(a[key], b[key], strict=True):
            # Measured: 6e-5 relative (reduction order of 2-example vs 16-example BN sums).
            np.testing.assert_allclose(x, y, rtol=5e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["pmap", "shard_map"])
def test_eight_devices_equal_one_device_on_the_same_global_batch(parallel_runs, mode):
    assert parallel_runs["devices"] == 8
    _assert_same(parallel_runs[mode], parallel_runs["single"])


def test_pmap_and_shard_map_give_bitwise_the_same_numbers(parallel_runs):
    a, b = parallel_runs["pmap"], parallel_runs["shard_map"]
    assert a["losses"] == b["losses"]
    for key in ("params", "stats"):
        for x, y in zip(a[key], b[key], strict=True):
            np.testing.assert_array_equal(x, y)


def test_a_few_steps_lower_the_loss(parallel_runs):
    losses = parallel_runs["single"]["losses"]
    assert losses[2] < losses[1] < losses[0]
