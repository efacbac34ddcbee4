"""Reliability (docs/training.md, "Guarantees"): exact resume after SIGKILL, SIGTERM, Ctrl-C once
and twice; one run per workdir; resume on other devices and modes, not on another process
count; non-finite steps; checkpoint mismatch and corruption. Small enough for 2 cores: the
runs are helpers/runs.py's, a tiny network evaluated on 64 examples (eval_examples). One
workdir takes every interruption in turn and must end bit-identical to the uninterrupted
reference run, which the other tests copy: six starts of the command in all."""

import json
import os
import random
import shutil
import signal
import socket
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from helpers import xla_flags
from helpers.runs import (
    EVERY,
    STEPS,
    command_env,
    load_config,
    logged_step,
    run,
    start,
    steps,
    wait_for_first_checkpoint,
    write_setup,
)
from ran_jax import configs, main
from ran_jax.data import input_pipeline
from ran_jax.training import checkpointing, loop
from ran_jax.training.checkpointing import CheckpointMismatchError
from ran_jax.training.workdir_lock import WorkdirLock

slow = pytest.mark.slow  # runs of the command, killed and resumed


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cluttered_digits_dir):
    """Prepared data (conftest.py) and a tiny config file."""
    return write_setup(tmp_path_factory.mktemp("reliability"), cluttered_digits_dir)


def _final(workdir):
    """Every array of the final checkpoint, and the metrics without wall-clock figures."""
    step = max(steps(workdir))
    with ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"), item_names=("state", "meta")
    ) as mngr:
        state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    leaves = jax.tree_util.tree_flatten_with_path(state["state"])[0]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        metrics = [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK} for line in f]
    return step, {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}, metrics


WALL_CLOCK = ("images_per_second", "wall_time")  # figures that differ from run to run


@pytest.fixture(scope="module")
def reference(setup):
    """The uninterrupted run, started in this process as the command starts it
    (``main.train``): the same compiled steps as the command's runs, without the imports."""
    workdir = setup["base"] / "reference"
    main.train(load_config(setup), str(workdir))
    return _final(workdir)


def _assert_identical(workdir, reference):
    step, arrays, metrics = _final(workdir)
    ref_step, ref_arrays, ref_metrics = reference
    assert step == ref_step == STEPS
    assert arrays.keys() == ref_arrays.keys()
    assert any(k.startswith("['opt_state']") for k in arrays)  # optimizer state compared too
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, ref_arrays[key], err_msg=key)
    assert metrics == ref_metrics


def _wait_for_text(proc, log, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, f"no {text!r}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def interrupted(setup, tmp_path_factory):
    """One workdir, five starts of the same command, each stopped another way but the last.

    1. SIGKILL at a random step after the first checkpoint (no save, a stale lock left);
    2. resumed from the latest checkpoint, SIGTERM a few steps later (off the checkpoint
       schedule: it saves the current step);
    3. resumed from that step, Ctrl-C once (saves, exits 0);
    4. resumed, Ctrl-C twice: the second ends the process at once, during its save;
    5. resumed from the last complete checkpoint, to the end.

    Each test checks its start's messages; the final state must equal the reference run's.
    """
    workdir = setup["base"] / "interrupted"
    logs = tmp_path_factory.mktemp("interrupted_logs")
    first = start(setup, workdir)
    wait_for_first_checkpoint(first, workdir, random.randint(EVERY, EVERY + EVERY // 2))
    killed_finished = first.poll() is not None
    first.send_signal(signal.SIGKILL)
    first.communicate()
    killed_at, last_logged = steps(workdir), logged_step(workdir)

    second = start(setup, workdir)
    # A resumed run rewrites metrics.jsonl from its first step on: wait past the last one's.
    wait_for_first_checkpoint(second, workdir, last_logged + 2)
    second.send_signal(signal.SIGTERM)
    _, second_err = second.communicate(timeout=300)
    stopped = max(steps(workdir))

    with open(logs / "third.log", "w") as log:  # a file: a pipe is read only at the end
        third = start(setup, workdir, stderr=log)
    wait_for_first_checkpoint(third, workdir, stopped + 2)
    third.send_signal(signal.SIGINT)
    third.communicate(timeout=300)
    ctrl_c_saved = max(steps(workdir))
    lock_left = (workdir / "lock.json").exists()

    with open(logs / "fourth.log", "w") as log:
        fourth = start(setup, workdir, stderr=log)
    wait_for_first_checkpoint(fourth, workdir, ctrl_c_saved + 2)
    fourth.send_signal(signal.SIGINT)
    _wait_for_text(fourth, logs / "fourth.log", "Press Ctrl-C again")
    fourth.send_signal(signal.SIGINT)
    fourth.wait(timeout=10)  # at once, not after the save and shutdown
    complete = max(steps(workdir))

    last_rc, last_err = run(setup, workdir)
    return {
        "workdir": workdir,
        "killed_finished": killed_finished,
        "killed_at": killed_at,
        "second": (second.returncode, second_err),
        "stopped": stopped,
        "third": (third.returncode, (logs / "third.log").read_text()),
        "ctrl_c_saved": ctrl_c_saved,
        "lock_left": lock_left,
        "fourth": fourth.returncode,
        "complete": complete,
        "last": (last_rc, last_err),
    }


@slow
def test_sigkill_at_a_random_step_then_rerun_is_bit_identical(interrupted, reference):
    assert not interrupted["killed_finished"], "the run finished before it could be killed"
    killed_at = interrupted["killed_at"]
    assert killed_at and max(killed_at) < STEPS
    rc, err = interrupted["second"]  # the rerun, which ends at SIGTERM (exit status 0)
    assert rc == 0, err[-2000:]
    assert f"Resumed from the checkpoint of step {max(killed_at)}" in err
    assert "the run that held it" in err and "is gone" in err  # its stale lock, taken over
    _assert_identical(interrupted["workdir"], reference)


@slow
def test_sigterm_saves_the_current_step_and_exits_cleanly(interrupted, reference):
    rc, err = interrupted["second"]
    assert rc == 0, err[-2000:]
    stopped = interrupted["stopped"]
    assert f"SIGTERM received: saved the checkpoint of step {stopped}" in err
    assert max(interrupted["killed_at"]) < stopped < STEPS
    rc, err = interrupted["third"]
    assert f"Resumed from the checkpoint of step {stopped}" in err, err[-2000:]
    _assert_identical(interrupted["workdir"], reference)


@slow
def test_ctrl_c_saves_the_current_step_and_exits_cleanly(interrupted):
    rc, err = interrupted["third"]
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    saved = interrupted["ctrl_c_saved"]
    assert interrupted["stopped"] < saved < STEPS
    assert f"Ctrl-C (SIGINT) received: saved the checkpoint of step {saved}" in err
    assert not interrupted["lock_left"]


@slow
def test_a_second_ctrl_c_stops_at_once_and_the_last_complete_checkpoint_resumes(
    interrupted, reference
):
    assert interrupted["fourth"] == -signal.SIGINT
    rc, err = interrupted["last"]
    assert rc == 0, err[-2000:]
    complete = interrupted["complete"]  # its save may have been cut short: then Ctrl-C's
    assert interrupted["ctrl_c_saved"] <= complete < STEPS
    assert f"Resumed from the checkpoint of step {complete}" in err
    assert "the run that held it" in err  # the lock the killed run left is taken over
    _assert_identical(interrupted["workdir"], reference)


@slow
def test_a_second_run_on_a_held_workdir_is_refused_naming_the_holder_and_writes_nothing(
    setup, reference
):
    """The lock a running command holds, taken here by this test's process (alive, like a
    run in another shell): the command's start (``main.train``, here in this process) is
    refused at once in one line and changes nothing."""
    workdir = setup["base"] / "held"
    shutil.copytree(setup["base"] / "reference", workdir)
    lock = WorkdirLock(str(workdir))
    lock.acquire()
    try:
        before = _listing(workdir)
        holder = json.loads((workdir / "lock.json").read_text())
        config = load_config(setup)
        config.num_train_steps = STEPS + 2
        with pytest.raises(SystemExit) as refused:
            main.train(config, str(workdir))
        assert _listing(workdir) == before
    finally:
        lock.release()
    line = str(refused.value.code)
    assert line.startswith("error: ") and "\n" not in line
    assert f"is in use by another training run: pid {os.getpid()} on this host" in line
    assert holder["host"] in line


def test_a_held_workdir_is_refused_before_the_data_set_is_opened(tmp_path):
    """``loop.open_data`` (the command's first step) checks the lock before it opens, or
    prepares, any data; a lock whose process is gone does not stop it."""
    config = configs.quickstart()
    lock = WorkdirLock(str(tmp_path))
    lock.acquire()

    def opener(config):
        raise AssertionError("the data set was opened for a held workdir")

    try:
        with pytest.raises(
            loop.SetupError, match=f"in use by another training run: pid {os.getpid()}"
        ):
            loop.open_data(config, str(tmp_path), opener)
    finally:
        lock.release()
    (tmp_path / "lock.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 0}))
    assert loop.open_data(config, str(tmp_path), lambda c: "opened") == "opened"  # stale


def _loss_by_step(workdir) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {m["step"]: m["train_loss"] for m in map(json.loads, f) if "train_loss" in m}


@slow
def test_a_run_resumes_on_other_device_counts_and_modes_with_the_same_losses(setup, reference):
    """The reference (1 device, shard_map) resumed from its first checkpoint on 2 devices
    under pmap: the same global batches, so the same losses as the uninterrupted run within
    the 1-vs-8-device tolerance (tests/training/test_train.py). (test_old_runs.py resumes
    pmap checkpoints under shard_map.)"""
    expected = _loss_by_step(setup["base"] / "reference")
    workdir = setup["base"] / "resumed_2_pmap"
    shutil.copytree(setup["base"] / "reference", workdir)
    first, *later = steps(workdir)
    for step in later:  # as if it had stopped at its first checkpoint
        shutil.rmtree(workdir / "checkpoints" / str(step))
    flags = (f"--config.num_train_steps={first + 2}", "--config.parallelism=pmap")
    env = dict(command_env(), XLA_FLAGS=xla_flags(2))
    rc, err = run(setup, workdir, *flags, env=env)
    assert rc == 0, err[-2000:]
    assert f"Resumed from the checkpoint of step {first}" in err and "2 devices" in err
    got = _loss_by_step(workdir)
    assert sorted(got) == list(range(1, first + 3))
    resumed = [first + 1, first + 2]
    np.testing.assert_allclose([got[s] for s in resumed], [expected[s] for s in resumed], rtol=1e-5)


def test_resuming_with_another_number_of_processes_is_refused():
    one = {"model": "m", "param_shapes": {"/w": [3]}}
    two = {**one, "processes": 2}
    with pytest.raises(CheckpointMismatchError, match=r"written by a run of 2 process\(es\)"):
        checkpointing._check_processes(two, one, 10, "DIR")
    checkpointing._check_processes(one, dict(one), 10, "DIR")  # 1 and 1
    assert checkpointing._differences(two, one) == []  # evaluation may load it


def _listing(path):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def _tiny_config(setup):
    """The runs' config, checkpointed at every step."""
    c = load_config(setup)
    c.checkpoint_every_steps = 1
    return c


@slow
def test_a_different_model_is_refused_with_what_differs_and_nothing_written(setup, reference):
    workdir = setup["base"] / "mismatch"
    shutil.copytree(setup["base"] / "reference", workdir)
    before = _listing(workdir)
    config = _tiny_config(setup)
    config.model_overrides.widths = (2, 4, 2)
    config.num_train_steps = STEPS + 5
    with pytest.raises(
        loop.SetupError,
        match=r"different model: model_overrides: .*widths.*"
        r"parameter shapes differ, e\.g\. .*Use a new --workdir",
    ):
        loop.train_and_evaluate(config, str(workdir), input_pipeline.DataSet(config))
    assert _listing(workdir) == before


@slow
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(setup, reference):
    workdir = setup["base"] / "corrupt"
    shutil.copytree(setup["base"] / "reference", workdir)
    saved = steps(workdir)
    # An interrupted save leaves only a temporary directory: it must be ignored.
    shutil.copytree(
        workdir / "checkpoints" / str(saved[-1]),
        workdir / "checkpoints" / f"{STEPS + 3}.orbax-checkpoint-tmp",
    )
    # Truncate every file of the latest checkpoint's state.
    for f in (workdir / "checkpoints" / str(saved[-1]) / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    config = _tiny_config(setup)
    config.num_train_steps = saved[-2]  # nothing left to train once it has resumed
    state = loop.train_and_evaluate(config, str(workdir), input_pipeline.DataSet(config))
    assert int(state.step) == saved[-2]  # resumed from the previous good step
    assert (workdir / "corrupt_checkpoints" / str(saved[-1])).is_dir()


@slow
def test_corrupt_saved_metrics_set_that_checkpoint_aside_too(setup, reference):
    workdir = setup["base"] / "corrupt_metrics"
    shutil.copytree(setup["base"] / "reference", workdir)
    saved = steps(workdir)
    (workdir / "checkpoints" / str(saved[-1]) / "metrics" / "metrics").write_text("{garb")
    config = _tiny_config(setup)
    config.num_train_steps = saved[-2]  # nothing left to train once it has resumed
    state = loop.train_and_evaluate(config, str(workdir), input_pipeline.DataSet(config))
    assert int(state.step) == saved[-2]  # resumed from the previous good step
    assert (workdir / "corrupt_checkpoints" / str(saved[-1])).is_dir()


@slow
def test_no_readable_checkpoint_stops_clearly(setup, reference):
    workdir = setup["base"] / "all_corrupt"
    shutil.copytree(setup["base"] / "reference", workdir)
    for f in (workdir / "checkpoints").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    config = _tiny_config(setup)
    config.num_train_steps = STEPS + 1
    with pytest.raises(loop.SetupError, match="No checkpoint in .* can be read"):
        loop.train_and_evaluate(config, str(workdir), input_pipeline.DataSet(config))


BAD_STEP = 4


@pytest.fixture
def nan_at_bad_step(monkeypatch):
    """Makes the batch of step BAD_STEP all NaN, as a corrupt record or overflow would."""
    real = input_pipeline.DataSet.train_batches

    def poisoned(data, start_step=0):
        for step, batch in enumerate(real(data, start_step), start_step + 1):
            if step == BAD_STEP:
                batch = dict(batch, image=np.full_like(batch["image"], np.nan))
            yield batch

    monkeypatch.setattr(input_pipeline.DataSet, "train_batches", poisoned)


@slow
def test_non_finite_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(
    setup, tmp_path, nan_at_bad_step
):
    config = _tiny_config(setup)
    config.num_train_steps = 6
    with pytest.raises(
        loop.NonFiniteError,
        match=rf"Non-finite loss or gradient at step {BAD_STEP}; the last good checkpoint "
        rf"\(step {BAD_STEP - 1}\) is kept",
    ):
        loop.train_and_evaluate(config, str(tmp_path), input_pipeline.DataSet(config))
    assert steps(tmp_path) == list(range(1, BAD_STEP))


@slow
def test_skip_nonfinite_counts_skipped_steps_and_keeps_parameters_finite(
    setup, tmp_path, nan_at_bad_step
):
    config = _tiny_config(setup)
    config.num_train_steps = 6
    config.eval_every_steps = 6
    config.checkpoint_every_steps = 6  # one save: this test reads no checkpoint
    config.skip_nonfinite = True
    state = loop.train_and_evaluate(config, str(tmp_path), input_pipeline.DataSet(config))
    assert int(state.step) == 6 and int(state.nonfinite_steps) == 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state.params))
    with open(tmp_path / "metrics.jsonl") as f:
        counts = [json.loads(line).get("nonfinite_steps") for line in f]
    assert [c for c in counts if c is not None] == [0, 0, 0, 1, 1, 1]
