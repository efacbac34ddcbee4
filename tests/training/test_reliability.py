"""Reliability (docs/training.md, "Guarantees"): exact resume after SIGKILL, SIGTERM preemption,
Ctrl-C, two runs on one workdir, resuming on other devices, non-finite steps, checkpoint
mismatch and corruption, bad input. Small enough for 2 cores: 30 steps with a checkpoint every
10, and evaluation on 64 examples (eval_examples)."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from helpers import ROOT
from ran_jax import configs
from ran_jax.data import input_pipeline
from ran_jax.training import checkpointing, loop
from ran_jax.training.checkpointing import CheckpointMismatchError

STEPS, EVERY = 30, 10
EVAL_EXAMPLES = 64  # the evaluations stay on, on a slice of the test split

CONFIG = """
from ran_jax import configs


def get_config():
    c = configs.base()
    c.dataset, c.data_dir = "cluttered_digits", {data_dir!r}
    c.model_overrides.widths = (2, 2, 2)
    c.model_overrides.modules = (1, 0, 0)
    c.batch_size = 16
    c.shuffle_buffer = 256
    c.num_train_steps = {steps}
    c.lr_boundaries = ({boundary},)
    c.log_every_steps = 1
    c.eval_every_steps = 1000
    c.eval_examples = {eval_examples}
    c.checkpoint_every_steps = {every}
    return c
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, cluttered_digits_dir):
    """Prepared data (conftest.py) and a tiny config file."""
    base = tmp_path_factory.mktemp("reliability")
    data_dir = cluttered_digits_dir
    config_path = base / "tiny.py"
    config_path.write_text(
        CONFIG.format(
            data_dir=data_dir,
            steps=STEPS,
            every=EVERY,
            boundary=STEPS // 2,
            eval_examples=EVAL_EXAMPLES,
        )
    )
    return {"base": base, "data_dir": data_dir, "config": str(config_path)}


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")  # with conftest's XLA cache


def _start(setup, workdir, *extra, env=None, stderr=subprocess.PIPE):
    cmd = [
        sys.executable,
        "-m",
        "ran_jax.main",
        f"--config={setup['config']}",
        f"--workdir={workdir}",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env or _env(),
        cwd=ROOT,
    )


def _run(setup, workdir, *extra, env=None):
    proc = _start(setup, workdir, *extra, env=env)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, err


def _steps(workdir):
    path = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def _logged_step(workdir):
    """The last step in metrics.jsonl (written and flushed at every step), or 0."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (ValueError, KeyError):  # a line being written
            continue
    return 0


def _wait_for_first_checkpoint(proc, workdir, step=0):
    """Waits until the first checkpoint exists and step ``step`` has been logged.

    Waiting for a step rather than sleeping leaves the run at least STEPS - step steps to
    go when it is signalled, however fast the machine is.
    """
    while not _steps(workdir) or _logged_step(workdir) < step:
        assert proc.poll() is None, f"the run ended before its first checkpoint or step {step}"
        time.sleep(0.02)


def _final(workdir):
    """Every array of the final checkpoint, and the metrics without wall-clock figures."""
    step = max(_steps(workdir))
    with ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"), item_names=("state", "meta")
    ) as mngr:
        state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    leaves = jax.tree_util.tree_flatten_with_path(state["state"])[0]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        metrics = [
            {k: v for k, v in json.loads(line).items() if k != "images_per_second"} for line in f
        ]
    return step, {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}, metrics


@pytest.fixture(scope="module")
def reference(setup):
    workdir = setup["base"] / "reference"
    rc, err = _run(setup, workdir)
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
    first = _start(setup, workdir)
    _wait_for_first_checkpoint(first, workdir, random.randint(EVERY, EVERY + EVERY // 2))
    killed_finished = first.poll() is not None
    first.send_signal(signal.SIGKILL)
    first.communicate()
    killed_at, last_logged = _steps(workdir), _logged_step(workdir)

    second = _start(setup, workdir)
    # The second run rewrites metrics.jsonl from the resumed step on: wait past the first's.
    _wait_for_first_checkpoint(second, workdir, last_logged + 2)
    second.send_signal(signal.SIGTERM)
    _, second_err = second.communicate(timeout=300)
    stopped = max(_steps(workdir))

    third_rc, third_err = _run(setup, workdir)
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
        loop.train_and_evaluate(config, str(workdir), input_pipeline)
    assert _listing(workdir) == before


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(setup, reference):
    workdir = setup["base"] / "corrupt"
    shutil.copytree(setup["base"] / "reference", workdir)
    steps = _steps(workdir)
    # An interrupted save leaves only a temporary directory: it must be ignored.
    shutil.copytree(
        workdir / "checkpoints" / str(steps[-1]),
        workdir / "checkpoints" / f"{STEPS + 3}.orbax-checkpoint-tmp",
    )
    # Truncate every file of the latest checkpoint's state.
    for f in (workdir / "checkpoints" / str(steps[-1]) / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    config = _tiny_config(setup)
    config.num_train_steps = steps[-2] + 1
    state = loop.train_and_evaluate(config, str(workdir), input_pipeline)
    assert int(state.step) == steps[-2] + 1  # resumed from the previous good step
    assert (workdir / "corrupt_checkpoints" / str(steps[-1])).is_dir()


def test_corrupt_saved_metrics_set_that_checkpoint_aside_too(setup, reference):
    workdir = setup["base"] / "corrupt_metrics"
    shutil.copytree(setup["base"] / "reference", workdir)
    steps = _steps(workdir)
    (workdir / "checkpoints" / str(steps[-1]) / "metrics" / "metrics").write_text("{garb")
    config = _tiny_config(setup)
    config.num_train_steps = steps[-2] + 1
    state = loop.train_and_evaluate(config, str(workdir), input_pipeline)
    assert int(state.step) == steps[-2] + 1  # resumed from the previous good step
    assert (workdir / "corrupt_checkpoints" / str(steps[-1])).is_dir()


def test_no_readable_checkpoint_stops_clearly(setup, reference):
    workdir = setup["base"] / "all_corrupt"
    shutil.copytree(setup["base"] / "reference", workdir)
    for f in (workdir / "checkpoints").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    config = _tiny_config(setup)
    config.num_train_steps = STEPS + 1
    with pytest.raises(loop.SetupError, match="No checkpoint in .* can be read"):
        loop.train_and_evaluate(config, str(workdir), input_pipeline)


BAD_STEP = 4


@pytest.fixture
def nan_at_bad_step(monkeypatch):
    """Makes the batch of step BAD_STEP all NaN, as a corrupt record or overflow would."""
    real = input_pipeline.train_batches

    def poisoned(config, *, start_step=0):
        for step, batch in enumerate(real(config, start_step=start_step), start_step + 1):
            if step == BAD_STEP:
                batch = dict(batch, image=np.full_like(batch["image"], np.nan))
            yield batch

    monkeypatch.setattr(input_pipeline, "train_batches", poisoned)


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
        loop.train_and_evaluate(config, str(tmp_path), input_pipeline)
    assert _steps(tmp_path) == list(range(1, BAD_STEP))


def test_skip_nonfinite_counts_skipped_steps_and_keeps_parameters_finite(
    setup, tmp_path, nan_at_bad_step
):
    config = _tiny_config(setup)
    config.num_train_steps = 6
    config.eval_every_steps = 6
    config.checkpoint_every_steps = 6  # one save: this test reads no checkpoint
    config.skip_nonfinite = True
    state = loop.train_and_evaluate(config, str(tmp_path), input_pipeline)
    assert int(state.step) == 6 and int(state.nonfinite_steps) == 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state.params))
    with open(tmp_path / "metrics.jsonl") as f:
        counts = [json.loads(line).get("nonfinite_steps") for line in f]
    assert [c for c in counts if c is not None] == [0, 0, 0, 1, 1, 1]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


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
        first = _start(setup, workdir, endless, stderr=log)
    _wait_for_first_checkpoint(first, workdir, EVERY + 2)
    before = sorted(p.name for p in workdir.iterdir())
    holder = json.loads((workdir / "lock.json").read_text())

    rc, err = _run(setup, workdir, endless)
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
    saved = max(_steps(workdir))
    assert f"Ctrl-C (SIGINT) received: saved the checkpoint of step {saved}" in err
    assert not (workdir / "lock.json").exists()

    with open(logs[1], "w") as log:
        again = _start(setup, workdir, endless, stderr=log)
    _wait_for_first_checkpoint(again, workdir, saved + 2)
    again.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while "Press Ctrl-C again" not in logs[1].read_text():
        assert again.poll() is None and time.monotonic() < deadline, "no Ctrl-C message"
        time.sleep(0.01)
    again.send_signal(signal.SIGINT)
    again.wait(timeout=10)  # at once, not after the save and shutdown
    assert again.returncode == -signal.SIGINT

    complete = max(_steps(workdir))
    rc, err = _run(setup, workdir, f"--config.num_train_steps={complete + 2}")
    assert rc == 0, err[-2000:]
    assert f"Resumed from the checkpoint of step {complete}" in err
    assert "the run that held it" in err  # the lock the killed run left is taken over


def _loss_by_step(workdir) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {m["step"]: m["train_loss"] for m in map(json.loads, f) if "train_loss" in m}


def test_a_run_resumes_on_other_device_counts_and_modes_with_the_same_losses(setup):
    """Started on 1 device (shard_map), resumed at step 2 on 2 devices under pmap: the same
    global batches, so the same losses as the uninterrupted run within the 1-vs-8-device
    tolerance (tests/training/test_train.py). (test_old_runs.py resumes pmap checkpoints
    under shard_map.)"""
    four = ["--config.num_train_steps=4", "--config.checkpoint_every_steps=2"]
    # Compiled as users run it: without XLA's optimisations, 1 and 8 devices differ by 3e-4.
    env = dict(_env(), JAX_DISABLE_MOST_OPTIMIZATIONS="0")
    reference = setup["base"] / "one_device"
    rc, err = _run(setup, reference, *four, "--config.keep_checkpoints=5", env=env)
    assert rc == 0, err[-2000:]
    expected = _loss_by_step(reference)
    for devices, mode in ((2, "pmap"),):
        workdir = setup["base"] / f"resumed_{devices}_{mode}"
        shutil.copytree(reference, workdir)
        shutil.rmtree(workdir / "checkpoints" / "4")  # as if it had stopped at step 2
        flags = (*four, f"--config.parallelism={mode}")
        xla = f"--xla_force_host_platform_device_count={devices}"
        rc, err = _run(setup, workdir, *flags, env=dict(env, XLA_FLAGS=xla))
        assert rc == 0, err[-2000:]
        assert "Resumed from the checkpoint of step 2" in err and f"{devices} devices" in err
        got = _loss_by_step(workdir)
        assert sorted(got) == [1, 2, 3, 4]
        np.testing.assert_allclose(
            [got[3], got[4]], [expected[3], expected[4]], rtol=1e-5, err_msg=f"{devices} {mode}"
        )


def test_resuming_with_another_number_of_processes_is_refused():
    saved = {"model": "m", "processes": 2}
    with pytest.raises(CheckpointMismatchError, match=r"written by a run of 2 process\(es\)"):
        checkpointing._check_processes(saved, {"model": "m"}, 10, "DIR")
    checkpointing._check_processes({"model": "m"}, {"model": "m"}, 10, "DIR")  # 1 and 1
    assert checkpointing._differences(saved, {"model": "m"}) == []  # evaluation may load it
