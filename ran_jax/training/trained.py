"""A trained network from a workdir: its run file, a chosen checkpoint, restored variables.

Shared by the commands on a trained run. ``--checkpoint`` is ``latest`` (the newest step),
``best`` (the highest ``eval_top1`` measured during training; note that this
selects on the evaluation split), a step number, or ``init``: the network as training
initialises it (``config.seed``), a baseline for scores such as the attention localisation.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from ran_jax.data.info import DatasetInfo
from ran_jax.models import ResidualAttentionNetwork
from ran_jax.training import checkpointing, run_file
from ran_jax.training.model import make_model
from ran_jax.training.state import TrainState, create_train_state

CHOICES = "best, latest, a step number, or init (the untrained network)"


@dataclasses.dataclass
class Trained:
    config: ml_collections.ConfigDict
    dataset: DatasetInfo  # the run file's dataset description
    model: ResidualAttentionNetwork
    state: TrainState  # on the first local device
    step: int

    def variables(self, ema: bool = False) -> dict[str, Any]:
        """What ``model.apply`` takes: ``{'params': ..., 'batch_stats': ...}``, the trained
        weights or (``ema``) their exponential moving average."""
        if not ema:
            return {"params": self.state.params, "batch_stats": self.state.batch_stats}
        if self.state.ema is None:
            raise ValueError("This run has no EMA weights (its config.ema_decay was 0).")
        return self.state.ema


def select_step(mngr: ocp.CheckpointManager, directory: str, which: str) -> int:
    """The step ``which`` names among the finished checkpoints; ValueError if none fits."""
    steps = sorted(mngr.all_steps())
    if not steps:
        raise ValueError(f"{directory} holds no finished checkpoint.")
    if which == "latest":
        return steps[-1]
    if which == "best":
        scored = {}
        for step in steps:
            try:
                metrics = mngr.metadata(step).metrics or {}
            except ValueError:  # corrupt metrics: this step cannot be called best
                continue
            if "eval_top1" in metrics:
                scored[step] = metrics["eval_top1"]
        if not scored:
            raise ValueError(
                f"No checkpoint in {directory} has an evaluation score, so none is 'best'; "
                f"use --checkpoint=latest or one of the steps {steps}."
            )
        return max(scored, key=lambda s: (scored[s], s))
    if not which.isdigit():
        raise ValueError(f"--checkpoint={which} is not {CHOICES}.")
    if int(which) not in steps:
        raise ValueError(f"{directory} has no checkpoint of step {which}; it has steps {steps}.")
    return int(which)


def load(
    workdir: str, checkpoint: str = "latest", config: ml_collections.ConfigDict | None = None
) -> Trained:
    """Restores checkpoint ``checkpoint`` of the run in ``workdir`` on one device.

    ``config`` replaces the run file's config (for overrides such as ``eval_image_size``);
    it must build the same model. Raises ValueError with a one-line reason on bad input.
    """
    saved_config, dataset = run_file.read(workdir)
    config = config or saved_config
    image_shape = (dataset.image_size, dataset.image_size, dataset.num_channels)
    model = make_model(config, dataset.num_classes, dataset.image_size, dataset.num_channels)
    device = jax.local_devices()[0]
    if checkpoint == "init":  # the untrained network, as training starts it: a baseline
        state = create_train_state(config, model, image_shape)
        return Trained(config, dataset, model, jax.device_put(state, device), 0)
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(directory):
        raise ValueError(f"{workdir} has no checkpoints/ directory: nothing was saved yet.")
    abstract = jax.eval_shape(lambda: create_train_state(config, model, image_shape))
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(device)
        ),
        abstract,
    )
    options = ocp.CheckpointManagerOptions(read_only=True)
    with ocp.CheckpointManager(directory, item_names=("state", "meta"), options=options) as mngr:
        step = select_step(mngr, directory, checkpoint)
        meta = checkpointing.checkpoint_meta(
            config, dataset.num_classes, image_shape, abstract.params
        )
        state = checkpointing.restore(mngr, step, abstract, meta, workdir)
    return Trained(config, dataset, model, state, step)
