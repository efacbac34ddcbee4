"""The correctness comparisons: ``attention56`` with the same parameters and inputs on the
default device and on the host CPU (float32), within the bounds below."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np

from ran_jax import configs
from ran_jax.models import get_model
from ran_jax.training.model import make_model
from ran_jax.training.parallel import DataParallel, to_host
from ran_jax.training.state import TrainState, create_train_state
from ran_jax.training.steps import compile_steps

from .cases import Case, Sizes, classes, overrides

MODEL = "attention56"
LOGITS_F32, LOGITS_BF16, TRAIN_LOSS = (
    "correctness/logits-f32",
    "correctness/logits-bf16",
    "correctness/train-loss",
)

# Correctness bounds, on |got - ref| elementwise (scale = max |ref|).
F32_BOUND = dict(rtol=1e-4, atol=1e-4)  # tests/models/test_network.py (cross-replica BN)
TF32_BOUND = dict(scale=0.02, atol=0.02)  # float32 at default precision: TF32 on NVIDIA GPUs
BF16_BOUND = dict(scale=0.05, atol=0.02)  # tests/models/test_network.py (bfloat16 compute)
# The trainer's step: float32 at HIGHEST precision (the same arithmetic as the CPU's), and
# bfloat16. First step's loss: |loss - loss_cpu| / |loss_cpu|.
LOSS_BOUND = {"float32": 1e-3, "bfloat16": 3e-2}
# The first step's parameter update u (gradient, weight decay, Nesterov momentum) over all
# parameters: float32, |u - u_cpu| / |u_cpu|; bfloat16, the cosine of u and u_cpu. At random
# initialisation BatchNorm's backward pass (a small difference of large terms) magnifies
# rounding: bf16 against f32 gave a relative error of 0.53 (cosine 0.87) on --tiny's network,
# and PyTorch's bf16 autocast 0.65 (cosine 0.82) on the same one; a wrong gradient gives a
# cosine near 0 or below.
UPDATE_REL_BOUND = 1e-2  # float32
UPDATE_COSINE_BOUND = 0.5  # bfloat16


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The network, the batch and one initial train state, made on the CPU and kept on the
    host: every run starts from copies of it (the train step donates its state)."""

    overrides: dict[str, Any]
    num_classes: int
    size: int
    images: np.ndarray
    labels: np.ndarray
    initial: TrainState

    def config(self, dtype: str) -> ml_collections.ConfigDict:
        return _config(self.overrides, len(self.images), dtype)


def _config(model_overrides: dict[str, Any], batch: int, dtype: str) -> ml_collections.ConfigDict:
    c = configs.base()
    c.model, c.dtype, c.batch_size = MODEL, dtype, batch
    c.model_overrides.update(model_overrides)
    return c


def make_inputs(sizes: Sizes) -> Inputs:
    """``MODEL`` at ``sizes.compare_size``, a random batch of ``sizes.compare_batch``."""
    size, batch = sizes.compare_size, sizes.compare_batch
    num_classes = classes(sizes, MODEL) or 1000
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch).astype(np.int32)
    model_overrides = overrides(sizes, MODEL)
    config = _config(model_overrides, batch, "float32")
    with jax.default_device(jax.devices("cpu")[0]):
        state = create_train_state(config, make_model(config, num_classes, size), images[0].shape)
        initial = jax.device_get(state)
    return Inputs(model_overrides, num_classes, size, images, labels, initial)


def logits(
    inputs: Inputs, device: Any, dtype: str, precision: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The logits of the forward pass with batch statistics, and with running ones."""
    model = get_model(
        MODEL, inputs.num_classes, dtype=getattr(jax.numpy, dtype), **inputs.overrides
    )
    variables = {"params": inputs.initial.params, "batch_stats": inputs.initial.batch_stats}

    def forward(v, x):
        train, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
        return train, model.apply(v, x, train=False)

    args = jax.device_put((variables, inputs.images), device)
    with jax.default_matmul_precision(precision):
        return jax.tree.map(np.asarray, jax.jit(forward)(*args))


def _flat(tree: Any) -> np.ndarray:
    leaves = jax.tree_util.tree_leaves(tree)
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in leaves])


def losses(
    inputs: Inputs, device: Any, dtype: str, precision: str | None = None
) -> tuple[list[float], np.ndarray]:
    """train_loss of two trainer steps, and the first step's parameter update (host)."""
    c = inputs.config(dtype)
    dp = DataParallel("shard_map", [device])
    net = make_model(c, inputs.num_classes, inputs.size)
    state = dp.put_state(inputs.initial.replace(apply_fn=net.apply))
    train_step, _ = compile_steps(c, dp)
    placed = dp.put_batch({"image": inputs.images, "label": inputs.labels})
    out, update = [], None
    with jax.default_matmul_precision(precision):  # read when the step compiles
        for i in range(2):  # the second step's loss sees the first step's update
            state, metrics = train_step(state, placed)
            out.append(float(metrics["train_loss"]))
            if i == 0:
                update = _flat(to_host(state.params)) - _flat(inputs.initial.params)
    return out, update


def errors(got: Any, ref: Any) -> dict[str, float]:
    """How far ``got`` is from ``ref``, elementwise and in L2."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max())
    return {
        "max_abs_error": float(diff.max()),
        "max_abs_reference": scale,
        "max_error_over_scale": float(diff.max() / scale) if scale else float(diff.max()),
        "relative_l2_error": float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30)),
        "finite": bool(np.isfinite(got).all()),
    }


def within(got: Any, ref: Any, bound: dict[str, float]) -> bool:
    """Whether ``got`` is finite and within ``bound`` (``rtol``/``atol``, or ``scale``/``atol``)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if not np.isfinite(got).all():
        return False
    if "rtol" in bound:
        return bool(np.allclose(got, ref, rtol=bound["rtol"], atol=bound["atol"]))
    scale = float(np.abs(ref).max())
    return float(np.abs(got - ref).max()) <= bound["scale"] * scale + bound["atol"]


def _runs(inputs: Inputs, names: set[str]) -> tuple[dict[str, Any], Any, Any]:
    """The device's results by name, and the CPU's float32 logits and losses; the CPU's run in
    a thread beside the device's. Where the default device is the CPU itself (``--tiny``), its
    float32 results are the reference's: they are not computed twice."""
    cpu, dev = jax.devices("cpu")[0], jax.devices()[0]
    need_logits = bool(names & {LOGITS_F32, LOGITS_BF16})
    need_loss = TRAIN_LOSS in names

    def on_cpu() -> tuple[Any, Any]:
        return (
            logits(inputs, cpu, "float32") if need_logits else None,
            losses(inputs, cpu, "float32") if need_loss else None,
        )

    got: dict[str, Any] = {}
    on_host = dev == cpu
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cpu_future = pool.submit(on_cpu)
        if LOGITS_F32 in names and not on_host:
            got["f32_highest"] = logits(inputs, dev, "float32", "highest")
            got["f32_default"] = logits(inputs, dev, "float32")
        if LOGITS_BF16 in names:
            got["bf16"] = logits(inputs, dev, "bfloat16")
        if need_loss:
            got["loss_f32"] = None if on_host else losses(inputs, dev, "float32", "highest")
            got["loss_bf16"] = losses(inputs, dev, "bfloat16")
        ref_logits, ref_losses = cpu_future.result()
    if on_host:
        got.update(f32_highest=ref_logits, f32_default=ref_logits, loss_f32=ref_losses)
    return got, ref_logits, ref_losses


def _logit_checks(got: Any, ref: Any, bound: dict, bound_text: str) -> dict[str, Any]:
    checks = {}
    for i, mode in enumerate(("train_mode", "eval_mode")):
        checks[mode] = {**errors(got[i], ref[i]), "passed": within(got[i], ref[i], bound)}
    return {**checks, "bound": bound_text, "passed": all(c["passed"] for c in checks.values())}


def _loss_check(dtype: str, got: Any, ref: Any) -> dict[str, Any]:
    (loss, update), (ref_loss, ref_update) = got, ref
    first = abs(loss[0] - ref_loss[0]) / abs(ref_loss[0])
    moved = float(np.linalg.norm(update - ref_update) / np.linalg.norm(ref_update))
    cosine = float(update @ ref_update / (np.linalg.norm(update) * np.linalg.norm(ref_update)))
    if dtype == "float32":
        bounds = {"first_loss": LOSS_BOUND[dtype], "update_relative_l2": UPDATE_REL_BOUND}
        update_ok = moved <= UPDATE_REL_BOUND
    else:
        bounds = {"first_loss": LOSS_BOUND[dtype], "update_cosine": UPDATE_COSINE_BOUND}
        update_ok = cosine >= UPDATE_COSINE_BOUND
    return {
        "precision": "highest" if dtype == "float32" else "default",
        "losses": loss,
        "first_loss_relative_error": first,
        "second_loss_relative_error": abs(loss[1] - ref_loss[1]) / abs(ref_loss[1]),
        "update_relative_l2_error": moved,
        "update_cosine": cosine,
        "bounds": bounds,
        "passed": bool(first <= LOSS_BOUND[dtype] and update_ok),
    }


def _status(passed: bool) -> str:
    return "passed" if passed else "failed"


def compare_cases(wanted: list[Case], sizes: Sizes) -> list[dict[str, Any]]:
    """The records of the ``wanted`` comparisons."""
    names = {c.name for c in wanted}
    inputs = make_inputs(sizes)
    got, ref_logits, ref_losses = _runs(inputs, names)
    cpu, dev = jax.devices("cpu")[0], jax.devices()[0]
    common = {
        "model": MODEL,
        "image_size": inputs.size,
        "batch_size": len(inputs.images),
        "device_kind": dev.device_kind,
        "reference_device": cpu.device_kind,
        "reference_is_the_device": dev == cpu,
        "jax_version": jax.__version__,
        "overrides": inputs.overrides,
    }
    what = "logits of the forward pass with batch statistics (train_mode) and running ones"
    records = []
    if LOGITS_F32 in names:
        highest = _logit_checks(got["f32_highest"], ref_logits, F32_BOUND, f"allclose {F32_BOUND}")
        default = _logit_checks(
            got["f32_default"], ref_logits, TF32_BOUND, "max|d| <= 0.02 max|ref| + 0.02"
        )
        records.append(
            {
                "case": LOGITS_F32,
                **common,
                "dtype": "float32",
                "what": what,
                "precision_highest": highest,
                "precision_default": default,
                "status": _status(highest["passed"] and default["passed"]),
            }
        )
    if LOGITS_BF16 in names:
        bf16 = _logit_checks(got["bf16"], ref_logits, BF16_BOUND, "max|d| <= 0.05 max|ref| + 0.02")
        records.append(
            {
                "case": LOGITS_BF16,
                **common,
                "dtype": "bfloat16",
                "what": what,
                **bf16,
                "status": _status(bf16["passed"]),
            }
        )
    if TRAIN_LOSS in names:
        checks = {
            dtype: _loss_check(dtype, got[key], ref_losses)
            for dtype, key in (("float32", "loss_f32"), ("bfloat16", "loss_bf16"))
        }
        records.append(
            {
                "case": TRAIN_LOSS,
                **common,
                "what": "train_loss of two trainer steps (shard_map, 1 device) and the first "
                "step's parameter update, against float32 on the CPU",
                "cpu_float32_losses": ref_losses[0],
                **checks,
                "status": _status(all(c["passed"] for c in checks.values())),
            }
        )
    return records
