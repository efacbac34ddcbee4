"""The training loop: data-parallel SGD with Nesterov momentum (paper section 4).

``train_and_evaluate`` builds the state, resumes from the latest checkpoint, runs the
compiled steps (``steps``) on the batches of a data source, evaluates, checkpoints and logs,
and stops cleanly on SIGTERM, Ctrl-C or a non-finite step. One run at a time holds a workdir
(``workdir_lock``). Extra evaluations (the attention-mask
pictures) come in as evaluator objects, as big_vision's train loop takes its evaluators.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from ran_jax.data.info import DataOpener, DatasetInfo, DataSource
from ran_jax.models import ResidualAttentionNetwork
from ran_jax.training import checkpointing, run_file
from ran_jax.training.checkpointing import checkpoint_meta
from ran_jax.training.config_check import validate
from ran_jax.training.evaluation import evaluate
from ran_jax.training.metric_writer import MetricWriter
from ran_jax.training.model import build
from ran_jax.training.parallel import DataParallel, prefetch, to_host
from ran_jax.training.state import TrainState, create_train_state
from ran_jax.training.steps import compile_steps
from ran_jax.training.workdir_lock import WorkdirInUseError, WorkdirLock


class Evaluator(Protocol):
    """An extra evaluation, run by process 0 after every evaluation: it takes the network
    and its variables (on the host) and returns scalars (floats) or TensorBoard images
    (lists of RGB uint8 arrays) by name."""

    def __call__(
        self, model: ResidualAttentionNetwork, variables: Any
    ) -> dict[str, float | list[np.ndarray]]: ...


class NonFiniteError(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


class SetupError(ValueError):
    """A configuration that cannot train; raised before anything is written."""


def check_workdir(workdir: str) -> None:
    """Rejects a workdir that cannot be created or written, before anything is written."""
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"Cannot write to --workdir={workdir}: {existing} is not a writable directory. "
            "Choose a directory you can write to."
        )


def open_data(config: ml_collections.ConfigDict, workdir: str, opener: DataOpener) -> DataSource:
    """Checks every config value and the workdir (writable, and held by no other run), then
    opens the data set with ``opener`` (``data.input_pipeline.DataSet``): a ``SetupError``
    (or ``DataNotFoundError``) in one line before anything is written or downloaded in vain."""
    try:
        validate(config, jax.device_count())
        check_workdir(workdir)
        WorkdirLock(workdir).check()  # taken later, by train_and_evaluate
        return opener(config)
    except (ValueError, WorkdirInUseError) as e:
        raise SetupError(str(e)) from e


class _Preemption:
    """Turns SIGTERM (the notice TPU VMs and schedulers send) and Ctrl-C (SIGINT) into a flag
    the loop polls: the run saves the step it is at and stops.

    After the first Ctrl-C, SIGINT gets its default action back, so a second one ends the
    process at once, even inside a step; an interrupted save leaves only orbax's temporary
    directory, and the last complete checkpoint stays. With several processes, orbax's
    preemption sync point makes all of them agree on the step to stop at (it needs
    ``jax.distributed``, which multi-process runs initialise); Ctrl-C keeps its default there.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._flag = threading.Event()
        self.name = ""
        self._previous: dict[int, Any] = {}
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        self.name = self.name or ("Ctrl-C (SIGINT)" if signum == signal.SIGINT else "SIGTERM")
        self._flag.set()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            logging.warning(
                "Ctrl-C: saving the current step, then stopping. Press Ctrl-C again to stop "
                "at once (the last complete checkpoint is kept)."
            )

    def reached(self, mngr: Any, step: int) -> bool:
        if jax.process_count() > 1:
            return mngr.reached_preemption(step)
        return self._flag.is_set()

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _check_finite(state: TrainState, mngr: Any, skip: bool) -> None:
    if skip:  # such steps were dropped and counted on the device; nothing to stop
        return
    first = int(to_host(state.first_nonfinite_step))
    if first:
        mngr.wait_until_finished()
        good = mngr.latest_step()
        kept = (
            f"the last good checkpoint (step {good}) is kept" if good else "no checkpoint was saved"
        )
        raise NonFiniteError(
            f"Non-finite loss or gradient at step {first}; {kept}. Lower the learning rate, "
            "check the data, or set --config.skip_nonfinite=True to skip such steps."
        )


def _log(writer: MetricWriter, step: int, results: dict[str, float | list[np.ndarray]]) -> None:
    scalars = {k: v for k, v in results.items() if not isinstance(v, list)}
    if scalars:
        writer.write(step, scalars)
    for name, images in results.items():
        if isinstance(images, list):
            writer.write_images(step, name, images)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    data: DataSource,
    evaluators: Sequence[Evaluator] = (),
) -> TrainState:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint if there is one.

    ``data`` is the opened data set (``open_data``); each of ``evaluators`` runs on process 0
    after every evaluation, and what it returns is logged.
    """
    try:
        validate(config, jax.device_count())
        check_workdir(workdir)
        model, info, dp = build(config, data)
    except ValueError as e:
        raise SetupError(str(e)) from e
    lock = _lock(workdir)
    try:
        return _train(config, workdir, data, evaluators, model, info, dp)
    finally:
        lock.release()


def _lock(workdir: str) -> WorkdirLock:
    """Process 0 takes the workdir's lock; every process learns whether it could."""
    lock = WorkdirLock(workdir)
    error = ""
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except WorkdirInUseError as e:
            error = str(e)
    if jax.process_count() > 1:
        refused = multihost_utils.broadcast_one_to_all(np.int32(bool(error)))
        error = error or ("process 0 could not take the workdir" if refused else "")
    if error:
        raise SetupError(error)
    return lock


def _train(
    config: ml_collections.ConfigDict,
    workdir: str,
    data: DataSource,
    evaluators: Sequence[Evaluator],
    model: ResidualAttentionNetwork,
    info: DatasetInfo,
    dp: DataParallel,
) -> TrainState:
    image_shape = (info.image_size, info.image_size, info.num_channels)
    state = dp.put_state(create_train_state(config, model, image_shape))
    meta = checkpoint_meta(config, info.num_classes, image_shape, state.params)
    skip = bool(config.skip_nonfinite)
    p_train_step, p_eval_step = compile_steps(config, dp)

    lead = jax.process_index() == 0
    mngr = None
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
        # Read (and check) existing checkpoints before anything is written.
        try:
            mngr = checkpointing.manager(workdir, config.keep_checkpoints)
            state, start = checkpointing.restore_latest(mngr, workdir, state, meta)
        except (
            checkpointing.CheckpointMismatchError,
            checkpointing.NoReadableCheckpointError,
        ) as e:
            if mngr is not None:
                mngr.close()
            raise SetupError(str(e)) from e
        if start:
            logging.info("Resumed from the checkpoint of step %d in %s.", start, workdir)
    else:
        start = 0
    if lead:
        os.makedirs(workdir, exist_ok=True)
        run_file.write(workdir, config, info)
    mngr = mngr or checkpointing.manager(workdir, config.keep_checkpoints)
    writer = MetricWriter(workdir, enabled=lead, resume_step=start)
    preemption = _Preemption()

    total, batch = config.num_train_steps, config.batch_size
    train_iter = prefetch(data.train_batches(start_step=start), dp.put_batch)
    logging.info(
        "Training %s on %s: steps %d..%d, global batch %d on %d devices (%s).",
        config.model,
        config.dataset,
        start,
        total,
        batch,
        dp.num_devices,
        config.parallelism,
    )
    last_time, last_step = time.time(), start
    try:
        for step in range(start + 1, total + 1):
            state, metrics = p_train_step(state, next(train_iter))
            log_due = step % config.log_every_steps == 0 or step == total
            eval_due = step % config.eval_every_steps == 0 or step == total
            preempted = preemption.reached(mngr, step)
            save_due = step % config.checkpoint_every_steps == 0 or step == total or preempted
            if log_due or eval_due or save_due:
                _check_finite(state, mngr, skip)  # one host sync, before anything is reported
            if log_due:
                values = {k: float(v) for k, v in to_host(metrics).items()}
                now = time.time()
                per_step = (now - last_time) / (step - last_step)
                values["images_per_second"] = batch / per_step
                last_time, last_step = now, step
                writer.write(step, values)
                logging.info(
                    "step %d/%d  loss %.4f  acc %.4f  lr %.4g  %.1f img/s  ETA %.0f s",
                    step,
                    total,
                    values["train_loss"],
                    values["train_accuracy"],
                    values["learning_rate"],
                    values["images_per_second"],
                    per_step * (total - step),
                )
            eval_metrics = None
            if eval_due:
                eval_metrics = evaluate(p_eval_step, state, dp, data)
                writer.write(step, eval_metrics)
                if lead and evaluators:
                    variables = to_host({"params": state.params, "batch_stats": state.batch_stats})
                    for evaluator in evaluators:
                        _log(writer, step, evaluator(model, variables))
                logging.info(
                    "step %d/%d  eval top-1 %.4f  top-5 %.4f  loss %.4f%s",
                    step,
                    total,
                    eval_metrics["eval_top1"],
                    eval_metrics["eval_top5"],
                    eval_metrics["eval_loss"],
                    f"  (EMA top-1 {eval_metrics['eval_ema_top1']:.4f})"
                    if "eval_ema_top1" in eval_metrics
                    else "",
                )
                last_time = time.time()  # keep evaluation out of the throughput figure
            if save_due:
                checkpointing.save(mngr, step, state, meta, eval_metrics)
            if preempted:
                mngr.wait_until_finished()
                logging.warning(
                    "%s received: saved the checkpoint of step %d in %s and stopped. "
                    "Re-run the same command to resume.",
                    preemption.name or "Preempted",
                    step,
                    workdir,
                )
                break
    finally:
        preemption.close()
        mngr.wait_until_finished()  # never exit with an asynchronous save half written
        mngr.close()
        writer.close()
    return state
