"""The train (or eval) step timed exactly as training runs it, on synthetic device-resident data.

The step is ``steps.compile_steps`` under ``parallel.DataParallel``, as in training:
cross-replica BatchNorm, gradient ``pmean``, Nesterov SGD, donated state. One random batch
is placed on the devices once, so input transfer and the data pipeline are not timed
(``data/pipeline_timing.py`` times those). ``run`` reports compile time, per-step time
(median, min, max over ``steps`` after ``warmup``; each step waits for its result),
images/second, memory (the device's peak where the backend reports it, XLA's buffer sizes,
the host's peak RSS) and achieved FLOP/s from the model's MACs: 3 x 2 x MACs per image for a
train step (forward, and backward for inputs and for weights), 2 x MACs for eval. The
fraction of the device's peak is given for the accelerators listed in ``PEAK_TFLOPS``.
``python -m ran_jax.benchmark`` prints it.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ran_jax import configs
from ran_jax.models import default_input
from ran_jax.models.complexity import complexity
from ran_jax.training.config_check import validate
from ran_jax.training.model import make_model
from ran_jax.training.parallel import DataParallel
from ran_jax.training.state import create_train_state
from ran_jax.training.steps import compile_steps

# Dense peak TFLOP/s by device kind and compute dtype. float32 on these GPUs runs convolutions
# and matmuls on TF32 tensor cores at JAX's default precision, and on TPUs as bfloat16 passes.
PEAK_TFLOPS = {
    "H100": {"bfloat16": 989.0, "float32": 494.5},  # SXM
    "H200": {"bfloat16": 989.0, "float32": 494.5},
    "A100": {"bfloat16": 312.0, "float32": 156.0},
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0, "float32": 197.0},  # v5e
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
}


def peak_tflops(device_kind: str, dtype: str) -> float | None:
    """The device's dense peak for ``dtype``, or None if it is not in ``PEAK_TFLOPS``."""
    for kind, peaks in PEAK_TFLOPS.items():
        if kind.lower() in device_kind.lower():
            return peaks[dtype]
    return None


def _synthetic_batch(b: int, num_classes: int, image_size: int, mode: str) -> dict:
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.normal(size=(b, image_size, image_size, 3)).astype(np.float32),
        "label": rng.integers(0, num_classes, size=b).astype(np.int32),
    }
    if mode == "eval":
        batch["mask"] = np.ones(b, bool)
    return batch


def _memory(compiled: Any, device: Any) -> dict[str, int | None]:
    stats = device.memory_stats() or {}
    analysis = compiled.memory_analysis()
    return {
        "peak_device_bytes": stats.get("peak_bytes_in_use"),
        "xla_temp_bytes": getattr(analysis, "temp_size_in_bytes", None),
        "xla_argument_bytes": getattr(analysis, "argument_size_in_bytes", None),
        "xla_output_bytes": getattr(analysis, "output_size_in_bytes", None),
        "xla_alias_bytes": getattr(analysis, "alias_size_in_bytes", None),
        "host_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def run(
    model: str,
    batch_size: int,
    image_size: int | None = None,
    dtype: str = "float32",
    mode: str = "train",
    steps: int = 20,
    warmup: int = 3,
    parallelism: str = "shard_map",
    devices: int | None = None,
    remat: bool = False,
    num_classes: int | None = None,
    model_overrides: dict[str, Any] | None = None,
    before_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Compiles and times one step; returns the figures as a JSON-ready dict.

    ``model_overrides`` are ``get_model`` overrides (``widths``, ``modules``, ...).
    ``before_step`` runs, untimed, before each timed step (``benchmarks/paired_compare.py``
    uses it to interleave two processes step by step).
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"Need --steps >= 1 and --warmup >= 0; got {steps} and {warmup}.")
    available = jax.devices()
    if devices is not None and not 1 <= devices <= len(available):
        raise ValueError(f"--devices={devices}: this machine has {len(available)} devices.")
    config = configs.base()
    config.model, config.batch_size, config.dtype = model, batch_size, dtype
    config.parallelism = parallelism
    config.model_overrides.update(dict(model_overrides or {}, remat=remat))
    dp = DataParallel(parallelism, available[:devices] if devices else None)
    validate(config, dp.num_devices)
    default_classes, default_size = default_input(model)
    num_classes = default_classes if num_classes is None else num_classes
    image_size = default_size if image_size is None else image_size
    net = make_model(config, num_classes, image_size)
    counts = complexity(net, image_size)
    macs = counts.macs

    state = dp.put_state(create_train_state(config, net, (image_size, image_size, 3)))
    batch = dp.put_batch(_synthetic_batch(batch_size, num_classes, image_size, mode))
    train_step, eval_step = compile_steps(config, dp)
    step = train_step if mode == "train" else eval_step

    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start

    times = []
    for i in range(warmup + steps):
        if i >= warmup and before_step is not None:
            before_step()
        start = time.perf_counter()
        if mode == "train":
            state, metrics = compiled(state, batch)
        else:
            metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    flops_per_image = (6 if mode == "train" else 2) * macs
    images_per_second = batch_size / median
    device = dp.devices[0]
    peak = peak_tflops(device.device_kind, dtype)
    achieved = flops_per_image * images_per_second
    return {
        "model": model,
        "batch_size": batch_size,
        "image_size": image_size,
        "dtype": dtype,
        "mode": mode,
        "parallelism": parallelism,
        "remat": remat,
        "devices": dp.num_devices,
        "device_kind": device.device_kind,
        "jax_version": jax.__version__,
        "compile_seconds": compile_seconds,
        "steps": steps,
        "step_seconds_median": median,
        "step_seconds_min": min(times),
        "step_seconds_max": max(times),
        "images_per_second": images_per_second,
        "macs_per_image": macs,
        "params": counts.params,
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": peak,
        "fraction_of_peak": achieved / (peak * 1e12) if peak else None,
        **_memory(compiled, device),
    }
