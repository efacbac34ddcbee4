"""The per-device train and eval steps, and their data-parallel compilation (paper section 4).

``train_step`` and ``eval_step`` see one device's share of the batch and use explicit
collectives over ``parallel.AXIS``; ``compile_steps`` runs them under ``pmap`` or
``shard_map`` (``parallel.DataParallel``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ran_jax.analysis import attention_maps
from ran_jax.training import recipes
from ran_jax.training.optimizer import learning_rate_fn
from ran_jax.training.parallel import AXIS, DataParallel
from ran_jax.training.state import TrainState

PAPER_RECIPE = recipes.StepOptions()  # no mixing, smoothing, accumulation or EMA


def _gradients(
    state: TrainState, images: jax.Array, soft: jax.Array, accumulate_steps: int
) -> tuple[jax.Array, jax.Array, Any, Any]:
    """(loss, logits, new batch_stats, gradients) of this device's batch.

    With ``accumulate_steps`` k > 1 the batch is cut into k micro-batches, run one after the
    other (``lax.scan``, so only one micro-batch's activations are alive): loss and gradients
    are their means, i.e. those of the whole batch, except that BatchNorm normalises each
    micro-batch with its own statistics and updates its running statistics k times.
    """

    def loss_fn(params, batch_stats, x, y):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
        )
        loss = optax.softmax_cross_entropy(logits, y).mean()
        return loss, (logits, updates["batch_stats"])

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if accumulate_steps == 1:
        (loss, (logits, stats)), grads = grad_fn(state.params, state.batch_stats, images, soft)
        return loss, logits, stats, grads

    def micro(carry, xy):
        batch_stats, loss_sum, grad_sum = carry
        (loss, (logits, batch_stats)), grads = grad_fn(state.params, batch_stats, *xy)
        grad_sum = jax.tree_util.tree_map(jnp.add, grad_sum, grads)
        return (batch_stats, loss_sum + loss, grad_sum), logits

    def split(x):
        return x.reshape(accumulate_steps, -1, *x.shape[1:])

    zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
    (batch_stats, loss_sum, grad_sum), logits = jax.lax.scan(
        micro, (state.batch_stats, jnp.zeros(()), zeros), (split(images), split(soft))
    )
    grads = jax.tree_util.tree_map(lambda g: g / accumulate_steps, grad_sum)
    return loss_sum / accumulate_steps, logits.reshape(-1, logits.shape[-1]), batch_stats, grads


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    lr_fn: optax.Schedule,
    options: recipes.StepOptions = PAPER_RECIPE,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One SGD step on this device's share of the batch; gradients averaged over AXIS.

    Targets are one-hot labels, smoothed and mixed (mixup/CutMix, keyed by seed, step and
    device, so a resumed run mixes as an uninterrupted one) when ``options`` say so.
    A step whose loss or gradient is not finite is counted (and its number kept if it is the
    first); with ``options.skip_nonfinite`` its update is dropped, otherwise the host stops
    the run.
    """
    images, labels = batch["image"], batch["label"]
    num_classes = state.params["classifier"]["bias"].shape[-1]
    soft = recipes.targets(labels, num_classes, options.label_smoothing)
    if options.mixing:
        key = jax.random.fold_in(jax.random.key(options.seed), state.step)
        key = jax.random.fold_in(key, jax.lax.axis_index(AXIS))
        images, soft = recipes.mix(key, images, soft, options, state.step)
    loss, logits, batch_stats, grads = _gradients(state, images, soft, options.accumulate_steps)
    grads = jax.lax.pmean(grads, AXIS)
    metrics = {
        "train_loss": loss,
        "train_accuracy": jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(soft, -1)),
    }
    metrics = jax.lax.pmean(metrics, AXIS)
    metrics["learning_rate"] = lr_fn(state.step)
    finite = jnp.isfinite(metrics["train_loss"]) & jnp.all(
        jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
    )
    # BN statistics are already global (cross-replica BN); pmean keeps replicas bitwise equal.
    new_state = state.apply_gradients(grads=grads, batch_stats=jax.lax.pmean(batch_stats, AXIS))
    if options.ema_decay:
        new = {"params": new_state.params, "batch_stats": new_state.batch_stats}
        new_state = new_state.replace(ema=recipes.ema_update(state.ema, new, options.ema_decay))
    if options.skip_nonfinite:
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(finite, new, old), new_state, state
        )
    first_bad = jnp.where(
        (state.first_nonfinite_step == 0) & ~finite, state.step + 1, state.first_nonfinite_step
    )
    new_state = new_state.replace(
        step=state.step + 1,
        nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
        first_nonfinite_step=first_bad.astype(jnp.int32),
    )
    metrics["nonfinite_steps"] = new_state.nonfinite_steps
    return new_state, metrics


def _eval_sums(state: TrainState, variables: Any, batch: dict[str, jax.Array]) -> dict:
    """Sums over the real examples of loss, top-1 and top-5 hits and, where the batch has
    object boxes or regions, of each stage's attention localisation score
    (``attention_maps``)."""
    images = batch["image"]
    if "box" in batch or "region" in batch:
        logits, found = attention_maps.masks(state.apply_fn, variables, images)
        if "region" in batch:
            region = batch["region"]
        else:
            region = attention_maps.box_region(batch["box"], *images.shape[1:3])
        scores = attention_maps.localisation(found, region)
    else:
        logits, scores = state.apply_fn(variables, images, train=False), {}
    mask = batch["mask"].astype(jnp.float32)
    labels = batch["label"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    sums = {
        "loss": jnp.sum(loss * mask),
        "top1": jnp.sum((jnp.argmax(logits, -1) == labels) * mask),
        "top5": jnp.sum(jnp.any(top5 == labels[:, None], axis=-1) * mask),
    }
    sums.update({f"localisation_{stage}": jnp.sum(r * mask) for stage, r in scores.items()})
    return sums


def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Sums of loss, top-1 and top-5 hits over the real (mask == True) examples, for the
    weights and, with EMA, for their average (``ema_`` keys)."""
    sums = _eval_sums(state, {"params": state.params, "batch_stats": state.batch_stats}, batch)
    sums["count"] = jnp.sum(batch["mask"].astype(jnp.float32))
    if state.ema is not None:
        plain = {k: v for k, v in batch.items() if k not in ("box", "region")}
        ema = _eval_sums(state, state.ema, plain)
        sums.update({f"ema_{k}": v for k, v in ema.items()})
    return jax.lax.psum(sums, AXIS)


def compile_steps(config: ml_collections.ConfigDict, dp: DataParallel) -> tuple[Callable, Callable]:
    """The data-parallel train step (state donated) and eval step, as training runs them."""
    step = functools.partial(
        train_step, lr_fn=learning_rate_fn(config), options=recipes.StepOptions.from_config(config)
    )
    return dp.compile(step), dp.compile(eval_step, donate_state=False)
