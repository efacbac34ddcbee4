"""Orbax checkpoints in ``WORKDIR/checkpoints``: the latest few plus the best by eval top-1.

Each checkpoint holds the train state and a small JSON ``meta`` item describing the model
(``checkpoint_meta``: name, overrides, classes, input shape and every parameter's shape). On
resume the meta is read first, so a config that builds a different model fails with a message
saying what differs, before anything is restored or written. A checkpoint that cannot be
read is moved to ``WORKDIR/corrupt_checkpoints`` and the previous one is used. Orbax writes
each step to a temporary directory and renames it only when complete, so an interrupted save
never looks like a finished checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


class CheckpointMismatchError(ValueError):
    """The checkpoint in the workdir was made by a different model or input shape, or (on
    resume) by a run of another number of processes."""


# The meta key of the number of processes that trained the state (absent: 1).
PROCESSES = "processes"


class NoReadableCheckpointError(RuntimeError):
    """Every checkpoint in the workdir is unreadable."""


def _top1(metrics: dict) -> float:
    return metrics["eval_top1"]


class _NoMetricsWarning(logging.logging.Filter):
    """Orbax warns at every save without metrics once it tracks a best checkpoint; saves
    between evaluations are expected to have none."""

    def filter(self, record) -> bool:
        return "did not provide metrics" not in str(record.msg)


_NO_METRICS_WARNING = _NoMetricsWarning()


def _unreadable_metrics(workdir: str) -> tuple[list[int], list[int]]:
    """(steps, steps whose saved metrics cannot be parsed) of the finished checkpoints."""
    directory = os.path.join(workdir, "checkpoints")
    steps = sorted(int(d) for d in os.listdir(directory) if d.isdigit())
    bad = []
    for step in steps:
        path = os.path.join(directory, str(step), "metrics", "metrics")
        try:
            if os.path.exists(path):
                with open(path) as f:
                    json.load(f)
        except (OSError, ValueError):
            bad.append(step)
    return steps, bad


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    """A CheckpointManager that keeps the ``keep`` latest steps and the best ``eval_top1``.

    ``best_fn`` makes orbax write each save's metrics into the checkpoint, so the best one is
    still known after a restart (and to ``evaluate --checkpoint=best``). Orbax reads those
    metrics when it opens the directory, so checkpoints whose metrics are corrupt are moved
    to ``WORKDIR/corrupt_checkpoints`` first; if every checkpoint is, NoReadableCheckpointError.
    """
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
        steps, bad = _unreadable_metrics(workdir)
        if bad and len(bad) == len(steps):
            raise NoReadableCheckpointError(_none_readable(workdir, bad))
        if bad:
            logging.warning("Checkpoints of steps %s are unreadable (corrupt metrics).", bad)
            _set_aside(workdir, bad)
    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
        [
            ocp.checkpoint_managers.LatestN(n=keep),
            ocp.checkpoint_managers.BestN(
                get_metric_fn=_top1, n=1, keep_checkpoints_without_metrics=False
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, best_fn=_top1, best_mode="max", create=True
    )
    logging.get_absl_logger().addFilter(_NO_METRICS_WARNING)
    return ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),  # orbax saves need absolute paths
        item_names=("state", "meta"),
        options=options,
    )


def param_shapes(params: Any) -> dict[str, list[int]]:
    """``{'/stage1/unit1/conv1/kernel': [1, 1, 16, 16], ...}`` for a parameter tree."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {
        "/".join(str(getattr(k, "key", k)) for k in path): list(leaf.shape) for path, leaf in flat
    }


def checkpoint_meta(
    config: ml_collections.ConfigDict, num_classes: int, image_shape: tuple, params: Any
) -> dict:
    """What a checkpoint must agree with to be resumed by this config (JSON-normalised)."""
    meta = {
        "model": config.model,
        "model_overrides": config.model_overrides.to_dict(),
        "num_classes": num_classes,
        "image_shape": list(image_shape),
        "param_shapes": param_shapes(params),
    }
    if config.ema_decay:  # the state then holds EMA weights; absent key = none (older runs)
        meta["ema"] = True
    if jax.process_count() > 1:  # absent = 1 (older runs too); checked on resume only
        meta[PROCESSES] = jax.process_count()
    return json.loads(json.dumps(meta))


def _global(x: Any) -> Any:
    """pmap returns replicated values per process; orbax saves global arrays."""
    if jax.process_count() > 1 and isinstance(x, jax.Array) and x.is_fully_addressable:
        return ocp.utils.fully_replicated_host_local_array_to_global_array(x)
    return x


def save(
    mngr: ocp.CheckpointManager, step: int, state: Any, meta: dict, metrics: dict | None
) -> None:
    state = jax.tree_util.tree_map(_global, state)
    mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics=metrics,
        force=True,
    )


def _differences(saved: dict, meta: dict) -> list[str]:
    diffs = [
        f"{key}: checkpoint has {saved.get(key)!r}, config gives {meta.get(key)!r}"
        for key in sorted(set(meta) | set(saved))
        if key not in ("param_shapes", PROCESSES) and saved.get(key) != meta.get(key)
    ]
    old, new = saved.get("param_shapes", {}), meta["param_shapes"]
    changed = sorted(set(old) ^ set(new)) + sorted(
        k for k in set(old) & set(new) if old[k] != new[k]
    )
    if changed:
        shown = ", ".join(
            f"{k} ({old.get(k, 'absent')} -> {new.get(k, 'absent')})" for k in changed[:3]
        )
        diffs.append(f"{len(changed)} parameter shapes differ, e.g. {shown}")
    return diffs


def _read_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
    return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def _read_state(mngr: ocp.CheckpointManager, step: int, abstract: Any) -> Any:
    return mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))[
        "state"
    ]


def _check_meta(saved: dict, meta: dict, step: int, workdir: str) -> None:
    diffs = _differences(saved, meta)
    if diffs:
        raise CheckpointMismatchError(
            f"The checkpoint of step {step} in {workdir} was made by a different model: "
            + "; ".join(diffs)
            + ". Use a new --workdir for this config, or the config that made it."
        )


def _check_processes(saved: dict, meta: dict, step: int, workdir: str) -> None:
    """Resuming needs the process count that wrote the checkpoint: each process reads its own
    part of the data, so another count would change the order of the examples. (Devices and
    the parallelism mode may change: the global batch and its order stay the same.)"""
    before, now = saved.get(PROCESSES, 1), meta.get(PROCESSES, 1)
    if before != now:
        raise CheckpointMismatchError(
            f"The checkpoint of step {step} in {workdir} was written by a run of {before} "
            f"process(es) and this run has {now}; each process reads its own part of the data, "
            f"so the data order would change. Resume with {before} process(es), or train this "
            "config in a new --workdir."
        )


def restore(mngr: ocp.CheckpointManager, step: int, abstract: Any, meta: dict, workdir: str) -> Any:
    """The state of checkpoint ``step``, laid out as ``abstract`` (shapes, dtypes, shardings).

    Raises CheckpointMismatchError if the checkpoint was made by a model other than ``meta``'s.
    """
    _check_meta(_read_meta(mngr, step), meta, step, workdir)
    return _read_state(mngr, step, abstract)


def restore_latest(
    mngr: ocp.CheckpointManager, workdir: str, state: Any, meta: dict
) -> tuple[Any, int]:
    """(state, step) of the newest readable checkpoint; (state, 0) if there is none.

    Raises CheckpointMismatchError if the checkpoint was made by a different model, and
    NoReadableCheckpointError if checkpoints exist but none can be read.
    """
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    corrupt = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            saved = _read_meta(mngr, step)
        except Exception as e:  # noqa: BLE001 - any read failure means an unusable checkpoint
            logging.warning("Checkpoint of step %d is unreadable (%s).", step, e)
            corrupt.append(step)
            continue
        _check_meta(saved, meta, step, workdir)
        _check_processes(saved, meta, step, workdir)
        try:
            restored = _read_state(mngr, step, abstract)
        except Exception as e:  # noqa: BLE001
            logging.warning("Checkpoint of step %d is unreadable (%s).", step, e)
            corrupt.append(step)
            continue
        if corrupt:
            _set_aside(workdir, corrupt)
            mngr.reload()
            logging.warning(
                "Fell back to the checkpoint of step %d; unreadable steps %s were moved to %s.",
                step,
                corrupt,
                os.path.join(workdir, "corrupt_checkpoints"),
            )
        return restored, step
    if corrupt:
        raise NoReadableCheckpointError(_none_readable(workdir, corrupt))
    return state, 0


def _none_readable(workdir: str, steps: list[int]) -> str:
    return (
        f"No checkpoint in {os.path.join(workdir, 'checkpoints')} can be read (steps "
        f"{sorted(steps)} are corrupt or truncated). Move that directory away to start afresh."
    )


def _set_aside(workdir: str, steps: list[int]) -> None:
    """Moves unreadable steps out of orbax's way, so those steps can be saved again."""
    if jax.process_index() == 0:
        target = os.path.join(workdir, "corrupt_checkpoints")
        os.makedirs(target, exist_ok=True)
        for step in steps:
            shutil.move(
                os.path.join(workdir, "checkpoints", str(step)), os.path.join(target, str(step))
            )
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("ran_jax: corrupt checkpoints set aside")
