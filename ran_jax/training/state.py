"""The train state and what it is made from: model, optimizer, schedule (paper section 4).

``create_train_state`` initialises the network (He init, fixed by ``config.seed``) and
Nesterov SGD; ``checkpoint_meta`` is what a checkpoint must agree with to be resumed.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from ran_jax.checks import check_choice
from ran_jax.data.info import DatasetInfo, DataSource
from ran_jax.models import ResidualAttentionNetwork, get_model, list_models
from ran_jax.training import checkpointing, recipes
from ran_jax.training.parallel import AXIS, DataParallel

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
LR_SCHEDULES = ("piecewise", "cosine")


class TrainState(train_state.TrainState):
    batch_stats: Any
    nonfinite_steps: jax.Array  # steps whose loss or gradient was not finite
    first_nonfinite_step: jax.Array  # the first such step; 0 while there is none
    ema: Any = None  # {'params', 'batch_stats'} averaged over steps when config.ema_decay > 0


def learning_rate_fn(config: ml_collections.ConfigDict) -> optax.Schedule:
    """The paper's piecewise-constant schedule in iterations (or, with ``lr_schedule='cosine'``,
    cosine decay to zero at ``num_train_steps``), with optional linear warmup and linear
    scaling with the batch size."""
    lr = config.learning_rate
    if config.scale_lr_with_batch:
        lr *= config.batch_size / config.base_batch_size
    if config.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, config.warmup_steps, config.num_train_steps, end_value=0.0
        )
    schedule = optax.piecewise_constant_schedule(lr, {int(b): 0.1 for b in config.lr_boundaries})
    if not config.warmup_steps:
        return schedule
    warmup = optax.linear_schedule(0.0, lr, config.warmup_steps)
    return optax.join_schedules([warmup, schedule], [config.warmup_steps])


def create_train_state(
    config: ml_collections.ConfigDict, model: Any, image_shape: tuple[int, ...]
) -> TrainState:
    """Initialises parameters (He init, fixed by ``config.seed``) and the optimizer.

    Weight decay applies to every parameter (the paper's recipe) or, with
    ``decay_norm_and_bias=False``, to convolution and dense kernels only.
    """
    variables = jax.jit(model.init)(
        jax.random.key(config.seed), jnp.zeros((1, *image_shape), jnp.float32)
    )
    mask = None if config.decay_norm_and_bias else recipes.decay_mask
    tx = optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=mask),
        optax.sgd(learning_rate_fn(config), momentum=config.momentum, nesterov=True),
    )
    ema = None
    if config.ema_decay:  # a copy: the step donates the state, and no buffer twice
        ema = jax.tree_util.tree_map(jnp.copy, dict(variables))
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=tx,
        nonfinite_steps=jnp.zeros((), jnp.int32),
        first_nonfinite_step=jnp.zeros((), jnp.int32),
        ema=ema,
    )
    # create() starts at the Python int 0, a weakly typed int32 to JAX, while the step returns
    # a strong int32: a new run would compile its train step twice (steps 1 and 2).
    return state.replace(step=jnp.zeros((), jnp.int32))


def make_model(
    config: ml_collections.ConfigDict, num_classes: int, image_size: int, in_channels: int = 3
) -> ResidualAttentionNetwork:
    """``config.model`` with its overrides and compute dtype; raises if the size cannot fit."""
    model = get_model(
        config.model,
        num_classes,
        dtype=DTYPES[config.dtype],
        axis_name=AXIS,
        in_channels=in_channels,
        **config.model_overrides,
    )
    model.check_fits(image_size, what="Images", name=config.model)
    return model


def check_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Rejects settings that cannot train, before anything is written."""
    check_choice("model", config.model, list_models())
    get_model(config.model, 2, **config.model_overrides)  # overrides fail here, not after data
    for key in (
        "num_train_steps",
        "batch_size",
        "log_every_steps",
        "eval_every_steps",
        "checkpoint_every_steps",
        "keep_checkpoints",
    ):
        if config[key] <= 0:
            raise ValueError(f"config.{key} must be positive, got {config[key]}.")
    if config.learning_rate <= 0:
        raise ValueError(f"config.learning_rate must be positive, got {config.learning_rate}.")
    check_choice("config.dtype", config.dtype, sorted(DTYPES))
    check_choice("config.lr_schedule", config.lr_schedule, LR_SCHEDULES)
    if config.batch_size % num_devices:
        raise ValueError(
            f"config.batch_size={config.batch_size} is not divisible by the {num_devices} "
            "devices; choose a multiple of the device count."
        )
    recipes.check(config, config.batch_size // num_devices)


def checkpoint_meta(
    config: ml_collections.ConfigDict, num_classes: int, image_shape: tuple, params: Any
) -> dict:
    """What a checkpoint must agree with to be resumed by this config (JSON-normalised)."""
    meta = {
        "model": config.model,
        "model_overrides": config.model_overrides.to_dict(),
        "num_classes": num_classes,
        "image_shape": list(image_shape),
        "param_shapes": checkpointing.param_shapes(params),
    }
    if config.ema_decay:  # the state then holds EMA weights; absent key = none (older runs)
        meta["ema"] = True
    if jax.process_count() > 1:  # absent = 1 (older runs too); checked on resume only
        meta[checkpointing.PROCESSES] = jax.process_count()
    return json.loads(json.dumps(meta))


def build(
    config: ml_collections.ConfigDict, data: DataSource
) -> tuple[ResidualAttentionNetwork, DatasetInfo, DataParallel]:
    """Model, dataset description and parallel runner; raises on bad config or missing data."""
    dp = DataParallel(config.parallelism)
    check_config(config, dp.num_devices)
    info = data.dataset_info(config)
    model = make_model(config, info.num_classes, info.image_size, info.num_channels)
    model.check_fits(info.eval_image_size, what="Evaluation images", name=config.model)
    return model, info, dp
