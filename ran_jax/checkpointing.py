"""Orbax checkpoints in ``WORKDIR/checkpoints``: the latest few plus the best by eval top-1.

Each checkpoint holds the train state and a small JSON ``meta`` item describing the model
(name, overrides, classes, input shape and every parameter's shape). On resume the meta is
read first, so a config that builds a different model fails with a message saying what
differs, before anything is restored or written. A checkpoint that cannot be read is moved to
``WORKDIR/corrupt_checkpoints`` and the previous one is used. Orbax writes each step to a
temporary directory and renames it only when complete, so an interrupted save never looks
like a finished checkpoint.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


class CheckpointMismatchError(ValueError):
    """The checkpoint in the workdir was made by a different model or input shape."""


class NoReadableCheckpointError(RuntimeError):
    """Every checkpoint in the workdir is unreadable."""


def manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    """A CheckpointManager that keeps the ``keep`` latest steps and the best ``eval_top1``."""
    policy = ocp.checkpoint_managers.AnyPreservationPolicy(
        [
            ocp.checkpoint_managers.LatestN(n=keep),
            ocp.checkpoint_managers.BestN(
                get_metric_fn=lambda metrics: metrics["eval_top1"],
                n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=True)
    return ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"), item_names=("state", "meta"), options=options
    )


def param_shapes(params: Any) -> dict[str, list[int]]:
    """``{'/stage1/unit1/conv1/kernel': [1, 1, 16, 16], ...}`` for a parameter tree."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {
        "/".join(str(getattr(k, "key", k)) for k in path): list(leaf.shape) for path, leaf in flat
    }


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
        f"{key}: checkpoint has {saved.get(key)!r}, config gives {meta[key]!r}"
        for key in meta
        if key != "param_shapes" and saved.get(key) != meta[key]
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
            saved = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001 - any read failure means an unusable checkpoint
            logging.warning("Checkpoint of step %d is unreadable (%s).", step, e)
            corrupt.append(step)
            continue
        diffs = _differences(saved, meta)
        if diffs:
            raise CheckpointMismatchError(
                f"The checkpoint of step {step} in {workdir} was made by a different model: "
                + "; ".join(diffs)
                + ". Use a new --workdir for this config, or the config that made it."
            )
        try:
            restored = mngr.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )["state"]
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
        raise NoReadableCheckpointError(
            f"No checkpoint in {os.path.join(workdir, 'checkpoints')} can be read (steps "
            f"{corrupt} are corrupt or truncated). Move that directory away to start afresh."
        )
    return state, 0


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
