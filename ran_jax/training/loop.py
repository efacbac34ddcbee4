"""Training and evaluation loop: data-parallel SGD with Nesterov momentum (paper section 4).

``train_step`` and ``eval_step`` are per-device functions with explicit collectives over
``parallel.AXIS``; ``parallel.DataParallel`` runs them under ``pmap`` or ``shard_map``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax.training import train_state

from ran_jax import attention_maps, checkpointing, input_pipeline, recipes, run_file
from ran_jax.metric_writer import MetricWriter
from ran_jax.models import get_model, list_models
from ran_jax.models.layers import check_choice
from ran_jax.parallel import AXIS, DataParallel, prefetch, to_host

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(train_state.TrainState):
    batch_stats: Any
    nonfinite_steps: jax.Array  # steps whose loss or gradient was not finite
    first_nonfinite_step: jax.Array  # the first such step; 0 while there is none
    ema: Any = None  # {'params', 'batch_stats'} averaged over steps when config.ema_decay > 0


class NonFiniteError(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


LR_SCHEDULES = ("piecewise", "cosine")
PAPER_RECIPE = recipes.StepOptions()  # no mixing, smoothing, accumulation or EMA


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
    object boxes, of each stage's attention localisation score (``attention_maps``)."""
    images = batch["image"]
    if "box" in batch:
        logits, found = attention_maps.masks(state.apply_fn, variables, images)
        scores = attention_maps.localisation(found, batch["box"], *images.shape[1:3])
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
        ema = _eval_sums(state, state.ema, {k: v for k, v in batch.items() if k != "box"})
        sums.update({f"ema_{k}": v for k, v in ema.items()})
    return jax.lax.psum(sums, AXIS)


def evaluate(
    p_eval_step: Callable, state: TrainState, config: ml_collections.ConfigDict, dp: DataParallel
) -> dict[str, float]:
    """Top-1/top-5 over the whole evaluation split (padded last batch masked, none dropped);
    ``eval_ema_*`` too when the state has EMA weights."""
    totals: dict[str, float] = {}
    for batch in prefetch(input_pipeline.eval_batches(config), dp.put_batch):
        for k, v in to_host(p_eval_step(state, batch)).items():
            totals[k] = totals.get(k, 0.0) + float(v)
    n = totals.pop("count")
    return {f"eval_{k}": v / n for k, v in sorted(totals.items())}


def check_config(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Rejects settings that cannot train, before anything is written."""
    check_choice("model", config.model, list_models())
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


class SetupError(ValueError):
    """A configuration that cannot train; raised before anything is written."""


def build(
    config: ml_collections.ConfigDict,
) -> tuple[Any, input_pipeline.DatasetInfo, DataParallel]:
    """Model, dataset description and parallel runner; raises on bad config or missing data."""
    dp = DataParallel(config.parallelism)
    check_config(config, dp.num_devices)
    info = input_pipeline.dataset_info(config)
    model = make_model(config, info.num_classes, info.image_size, info.num_channels)
    if not model.fits(info.eval_image_size):
        raise ValueError(
            f"{config.model} cannot take {info.eval_image_size}x{info.eval_image_size} "
            f"evaluation images; its smallest input is {model.min_image_size()}."
        )
    return model, info, dp


def make_model(
    config: ml_collections.ConfigDict, num_classes: int, image_size: int, in_channels: int = 3
) -> Any:
    """``config.model`` with its overrides and compute dtype; raises if the size cannot fit."""
    model = get_model(
        config.model,
        num_classes,
        dtype=DTYPES[config.dtype],
        axis_name=AXIS,
        in_channels=in_channels,
        **config.model_overrides,
    )
    if not model.fits(image_size):
        raise ValueError(
            f"{config.model} cannot take {image_size}x{image_size} images; "
            f"its smallest input is {model.min_image_size()}."
        )
    return model


def compile_steps(config: ml_collections.ConfigDict, dp: DataParallel) -> tuple[Callable, Callable]:
    """The data-parallel train step (state donated) and eval step, as training runs them."""
    step = functools.partial(
        train_step, lr_fn=learning_rate_fn(config), options=recipes.StepOptions.from_config(config)
    )
    return dp.compile(step), dp.compile(eval_step, donate_state=False)


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
    return json.loads(json.dumps(meta))


class _Preemption:
    """Turns SIGTERM (the notice TPU VMs and schedulers send) into a flag the loop polls.

    With several processes, orbax's preemption sync point makes all of them agree on the
    step to stop at (it needs ``jax.distributed``, which multi-process runs initialise).
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._previous = None
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, lambda *_: self._flag.set())

    def reached(self, mngr: Any, step: int) -> bool:
        if jax.process_count() > 1:
            return mngr.reached_preemption(step)
        return self._flag.is_set()

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint if there is one."""
    try:
        check_workdir(workdir)
        model, info, dp = build(config)
    except ValueError as e:
        raise SetupError(str(e)) from e
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
    pictures = None
    if lead and config.attention_images and any(s.num_modules for s in model.stages):
        from ran_jax import visualize  # matplotlib only when pictures are asked for

        pictures = visualize.TrainingPictures(model.apply, config, info, config.attention_images)
    preemption = _Preemption()

    total, batch = config.num_train_steps, config.batch_size
    train_iter = prefetch(input_pipeline.train_batches(config, start_step=start), dp.put_batch)
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
                eval_metrics = evaluate(p_eval_step, state, config, dp)
                writer.write(step, eval_metrics)
                if pictures:
                    variables = to_host({"params": state.params, "batch_stats": state.batch_stats})
                    writer.write_images(step, "attention", pictures.render(variables))
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
                    "SIGTERM received: saved the checkpoint of step %d in %s and stopped. "
                    "Re-run the same command to resume.",
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
