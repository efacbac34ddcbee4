"""Orbax checkpoints in ``WORKDIR/checkpoints``: the latest few plus the best by eval top-1."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


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
    return ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), options=options)


def restore(mngr: ocp.CheckpointManager, state: Any, step: int) -> Any:
    """Restores ``step`` onto the shapes, dtypes and shardings of ``state``."""
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
