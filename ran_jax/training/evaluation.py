"""Evaluation: top-1, top-5 and loss over a whole split, during training or of a checkpoint.

Every example is evaluated once: the last batch is padded and its padding masked. Datasets
that record object boxes also give the attention localisation score
(``analysis.attention_maps``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from ran_jax.data.info import DataOpener, DataSource
from ran_jax.training import run_file, trained
from ran_jax.training.config_check import validate
from ran_jax.training.model import build
from ran_jax.training.parallel import DataParallel, prefetch, to_host
from ran_jax.training.state import TrainState
from ran_jax.training.steps import compile_steps


def evaluate(
    p_eval_step: Callable, state: TrainState, dp: DataParallel, data: DataSource
) -> dict[str, float]:
    """Top-1/top-5 over the whole evaluation split (padded last batch masked, none dropped);
    ``eval_ema_*`` too when the state has EMA weights."""
    totals: dict[str, float] = {}
    for batch in prefetch(data.eval_batches(), dp.put_batch):
        for k, v in to_host(p_eval_step(state, batch)).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    n = totals.pop("count")
    return {f"eval_{k}": v / n for k, v in sorted(totals.items())}


def evaluate_checkpoint(
    workdir: str,
    open_data: DataOpener,
    checkpoint: str = "latest",
    image_size: int | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
) -> dict:
    """The evaluation metrics of one checkpoint of the run in ``workdir``, JSON-ready.

    The model, dataset and preprocessing come from its ``run.json``; the arguments that are
    not None override the evaluation size, split, data_dir and global batch.
    """
    config, _ = run_file.read(workdir)
    for key, value in (
        ("eval_image_size", image_size),
        ("eval_split", split),
        ("data_dir", data_dir),
        ("batch_size", batch_size),
    ):
        if value is not None:
            config[key] = value
    validate(config, jax.device_count())
    run = trained.load(workdir, checkpoint, config)  # a missing checkpoint before the data
    data = open_data(config)
    _, info, dp = build(config, data)
    _, p_eval_step = compile_steps(config, dp)
    metrics = evaluate(p_eval_step, dp.put_state(run.state), dp, data)
    return {
        "workdir": workdir,
        "checkpoint": checkpoint,
        "step": run.step,
        "dataset": config.dataset,
        "split": info.eval_split,
        "image_size": info.eval_image_size,
        "num_examples": info.num_eval,
        **metrics,
    }
