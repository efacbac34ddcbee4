"""Reliability (docs/training.md, "Guarantees"): exact resume after SIGKILL, SIGTERM preemption,
non-finite steps, checkpoint mismatch and corruption, bad input. Small enough for 2 cores:
30 steps with a checkpoint every 10, and evaluation on 64 examples (eval_examples); the runs
are helpers/runs.py's. The faults a user causes are in test_faults.py."""

import json
import os
import random
import shutil
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from helpers.runs import (
    EVAL_EXAMPLES,
    EVERY,
    STEPS,
    logged_step,
    run,
    start,
    steps,
    wait_for_first_checkpoint,
    write_setup,
)
from ran_jax import configs
from ran_jax.data import input_pipeline
from ran_jax.training import loop

pytestmark = pytest.mark.slow  # runs of the command, killed and resumed


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
    workdir = setup["base"] / "reference"
    rc, err = run(setup, workdir)
    assert rc == 0, err[-2000:]
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


@pytest.fixture(scope="module")
def interrupted(setup):
    """One workdir, three runs of the same command: SIGKILL, then SIGTERM, then to the end.

    The first run is killed at a random step after its first checkpoint; the second resumes
    from the latest checkpoint and gets SIGTERM a few steps later (off the checkpoint
    schedule); the third resumes from the step SIGTERM saved and finishes. The SIGKILL test
    checks the first two, the SIGTERM test the last two, and both the final state: three
    starts of the CLI instead of four.
    """
    workdir = setup["base"] / "interrupted"
    first = start(setup, workdir)
    wait_for_first_checkpoint(first, workdir, random.randint(EVERY, EVERY + EVERY // 2))
    killed_finished = first.poll() is not None
    first.send_signal(signal.SIGKILL)
    first.communicate()
    killed_at, last_logged = steps(workdir), logged_step(workdir)

    second = start(setup, workdir)
    # The second run rewrites metrics.jsonl from the resumed step on: wait past the first's.
    wait_for_first_checkpoint(second, workdir, last_logged + 2)
    second.send_signal(signal.SIGTERM)
    _, second_err = second.communicate(timeout=300)
    stopped = max(steps(workdir))

    third_rc, third_err = run(setup, workdir)
    return {
        "workdir": workdir,
        "killed_finished": killed_finished,
        "killed_at": killed_at,
        "second": (second.returncode, second_err),
        "stopped": stopped,
        "third": (third_rc, third_err),
    }


def test_sigkill_at_a_random_step_then_rerun_is_bit_identical(interrupted, reference):
    assert not interrupted["killed_finished"], "the run finished before it could be killed"
    killed_at = interrupted["killed_at"]
    assert killed_at and max(killed_at) < STEPS
    rc, err = interrupted["second"]  # the rerun, which ends at SIGTERM (exit status 0)
    assert rc == 0, err[-2000:]
    assert f"Resumed from the checkpoint of step {max(killed_at)}" in err
    assert "the run that held it" in err and "is gone" in err  # its stale lock, taken over
    _assert_identical(interrupted["workdir"], reference)


def test_sigterm_saves_the_current_step_and_exits_cleanly(interrupted, reference):
    rc, err = interrupted["second"]
    assert rc == 0, err[-2000:]
    stopped = interrupted["stopped"]
    assert f"SIGTERM received: saved the checkpoint of step {stopped}" in err
    assert max(interrupted["killed_at"]) < stopped < STEPS
    rc, err = interrupted["third"]
    assert rc == 0 and f"Resumed from the checkpoint of step {stopped}" in err, err[-2000:]
    _assert_identical(interrupted["workdir"], reference)


def _listing(path):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*"))


def _tiny_config(setup):
    c = configs.base()
    c.dataset, c.data_dir = "cluttered_digits", setup["data_dir"]
    c.model_overrides.widths = (2, 2, 2)
    c.model_overrides.modules = (1, 0, 0)
    c.batch_size, c.shuffle_buffer = 16, 256
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 1000, 1
    c.eval_examples = EVAL_EXAMPLES
    return c


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
    config.num_train_steps = saved[-2] + 1
    state = loop.train_and_evaluate(config, str(workdir), input_pipeline.DataSet(config))
    assert int(state.step) == saved[-2] + 1  # resumed from the previous good step
    assert (workdir / "corrupt_checkpoints" / str(saved[-1])).is_dir()


def test_corrupt_saved_metrics_set_that_checkpoint_aside_too(setup, reference):
    workdir = setup["base"] / "corrupt_metrics"
    shutil.copytree(setup["base"] / "reference", workdir)
    saved = steps(workdir)
    (workdir / "checkpoints" / str(saved[-1]) / "metrics" / "metrics").write_text("{garb")
    config = _tiny_config(setup)
    config.num_train_steps = saved[-2] + 1
    state = loop.train_and_evaluate(config, str(workdir), input_pipeline.DataSet(config))
    assert int(state.step) == saved[-2] + 1  # resumed from the previous good step
    assert (workdir / "corrupt_checkpoints" / str(saved[-1])).is_dir()


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
