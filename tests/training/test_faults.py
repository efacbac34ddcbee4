"""Faults a user causes every day (docs/training.md, "Guarantees"): the same command run twice
on one workdir, Ctrl-C once and twice, resuming on other devices, another process count."""

import json
import os
import shutil
import signal
import time

import numpy as np
import pytest

from helpers.runs import (
    EVERY,
    STEPS,
    command_env,
    run,
    start,
    steps,
    wait_for_first_checkpoint,
    write_setup,
)
from ran_jax.training import checkpointing
from ran_jax.training.checkpointing import CheckpointMismatchError


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cluttered_digits_dir):
    """Prepared data (conftest.py) and a tiny config file."""
    return write_setup(tmp_path_factory.mktemp("faults"), cluttered_digits_dir)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_a_second_run_is_refused_and_ctrl_c_saves_then_a_second_ctrl_c_stops_at_once(
    setup, tmp_path
):
    """A run holds its workdir: the same command started again is refused at once, naming it,
    and writes nothing. Ctrl-C saves the current step and exits 0; a second Ctrl-C, while the
    run saves and stops, ends it at once; the last complete checkpoint resumes."""
    workdir = setup["base"] / "held"
    endless = f"--config.num_train_steps={100 * STEPS}"
    logs = [tmp_path / "first.log", tmp_path / "again.log"]  # files: long runs fill a pipe
    with open(logs[0], "w") as log:
        first = start(setup, workdir, endless, stderr=log)
    wait_for_first_checkpoint(first, workdir, EVERY + 2)
    before = sorted(p.name for p in workdir.iterdir())
    holder = json.loads((workdir / "lock.json").read_text())

    rc, err = run(setup, workdir, endless)
    assert rc != 0 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert f"is in use by another training run: pid {first.pid} on this host" in line
    assert holder["pid"] == first.pid and holder["host"] in line
    assert sorted(p.name for p in workdir.iterdir()) == before
    assert json.loads((workdir / "lock.json").read_text()) == holder

    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    err = logs[0].read_text()
    assert first.returncode == 0 and "Traceback" not in err, err[-2000:]
    saved = max(steps(workdir))
    assert f"Ctrl-C (SIGINT) received: saved the checkpoint of step {saved}" in err
    assert not (workdir / "lock.json").exists()

    with open(logs[1], "w") as log:
        again = start(setup, workdir, endless, stderr=log)
    wait_for_first_checkpoint(again, workdir, saved + 2)
    again.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while "Press Ctrl-C again" not in logs[1].read_text():
        assert again.poll() is None and time.monotonic() < deadline, "no Ctrl-C message"
        time.sleep(0.01)
    again.send_signal(signal.SIGINT)
    again.wait(timeout=10)  # at once, not after the save and shutdown
    assert again.returncode == -signal.SIGINT

    complete = max(steps(workdir))
    rc, err = run(setup, workdir, f"--config.num_train_steps={complete + 2}")
    assert rc == 0, err[-2000:]
    assert f"Resumed from the checkpoint of step {complete}" in err
    assert "the run that held it" in err  # the lock the killed run left is taken over


def _loss_by_step(workdir) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {m["step"]: m["train_loss"] for m in map(json.loads, f) if "train_loss" in m}


@pytest.mark.slow
def test_a_run_resumes_on_other_device_counts_and_modes_with_the_same_losses(setup):
    """Started on 1 device (shard_map), resumed at step 2 on 2 devices under pmap: the same
    global batches, so the same losses as the uninterrupted run within the 1-vs-8-device
    tolerance (tests/training/test_train.py). (test_old_runs.py resumes pmap checkpoints
    under shard_map.)"""
    four = ["--config.num_train_steps=4", "--config.checkpoint_every_steps=2"]
    # Without XLA's optimisations (conftest.py's setting), as test_train.py compares devices.
    env = command_env()
    reference = setup["base"] / "one_device"
    rc, err = run(setup, reference, *four, "--config.keep_checkpoints=5", env=env)
    assert rc == 0, err[-2000:]
    expected = _loss_by_step(reference)
    for devices, mode in ((2, "pmap"),):
        workdir = setup["base"] / f"resumed_{devices}_{mode}"
        shutil.copytree(reference, workdir)
        shutil.rmtree(workdir / "checkpoints" / "4")  # as if it had stopped at step 2
        flags = (*four, f"--config.parallelism={mode}")
        xla = f"--xla_force_host_platform_device_count={devices}"
        rc, err = run(setup, workdir, *flags, env=dict(env, XLA_FLAGS=xla))
        assert rc == 0, err[-2000:]
        assert "Resumed from the checkpoint of step 2" in err and f"{devices} devices" in err
        got = _loss_by_step(workdir)
        assert sorted(got) == [1, 2, 3, 4]
        np.testing.assert_allclose(
            [got[3], got[4]], [expected[3], expected[4]], rtol=1e-5, err_msg=f"{devices} {mode}"
        )


def test_resuming_with_another_number_of_processes_is_refused():
    one = {"model": "m", "param_shapes": {"/w": [3]}}
    two = {**one, "processes": 2}
    with pytest.raises(CheckpointMismatchError, match=r"written by a run of 2 process\(es\)"):
        checkpointing._check_processes(two, one, 10, "DIR")
    checkpointing._check_processes(one, dict(one), 10, "DIR")  # 1 and 1
    assert checkpointing._differences(two, one) == []  # evaluation may load it
