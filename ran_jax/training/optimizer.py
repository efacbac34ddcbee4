"""The optimizer of a config: Nesterov SGD with weight decay on its learning-rate schedule
(paper section 4), and the modern recipe's cosine schedule and decay mask."""

from __future__ import annotations

import ml_collections
import optax

from ran_jax.training import recipes


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


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Weight decay, then Nesterov SGD on ``learning_rate_fn(config)``.

    Weight decay applies to every parameter (the paper's recipe) or, with
    ``decay_norm_and_bias=False``, to convolution and dense kernels only.
    """
    mask = None if config.decay_norm_and_bias else recipes.decay_mask
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=mask),
        optax.sgd(learning_rate_fn(config), momentum=config.momentum, nesterov=True),
    )
