"""The figures of one speed or input case: the JAX step, its PyTorch peer, the input pipeline."""

from __future__ import annotations

import importlib.metadata
import math
import os
from typing import Any

from .cases import Case, Sizes, classes, overrides

# The input pipeline on a 2-core CPU machine (docs/performance.md, "Input pipeline"),
# for machines without TensorFlow: images/s on 2 cores.
DEV_PIPELINE = {"imagenet2012": (484.0, 2), "cifar10": (5025.0, 2)}


def jax_case(case: Case, sizes: Sizes) -> dict[str, Any]:
    """The trainer's step (``ran_jax.training.step_benchmark``), bf16, on one device."""
    import jax

    from ran_jax.training import step_benchmark

    r = step_benchmark.run(
        case.model,
        case.batch_size,
        case.image_size,
        dtype="bfloat16",
        mode=case.mode,
        steps=sizes.steps,
        warmup=sizes.warmup,
        parallelism=case.parallelism,
        devices=1,
        remat=case.remat,
        num_classes=classes(sizes, case.model),
        model_overrides=overrides(sizes, case.model),
    )
    parts = [r.get(k) for k in ("xla_argument_bytes", "xla_output_bytes", "xla_temp_bytes")]
    if all(p is not None for p in parts):
        # What the step's executable holds at once; peak_device_bytes is the process's peak
        # since it started, over this case and the ones before it in the same worker.
        r["xla_step_bytes"] = sum(parts) - (r.get("xla_alias_bytes") or 0)
    r["framework"] = "jax"
    r["mfu"] = r.get("fraction_of_peak")
    r["jaxlib_version"] = importlib.metadata.version("jaxlib")
    r["platform"] = jax.devices()[0].platform
    return r


def torch_case(case: Case, sizes: Sizes, tiny: bool, inductor: bool = False) -> dict[str, Any]:
    """The PyTorch peer (``benchmarks/torch_reference.py``): bf16 autocast, channels-last,
    eager or ``torch.compile``; on the CPU with one thread under ``--tiny``."""
    import torch
    import torch_reference

    try:
        return torch_reference.benchmark(
            case.model,
            case.batch_size,
            case.image_size,
            steps=sizes.steps,
            warmup=sizes.warmup,
            threads=1 if tiny else (os.cpu_count() or 1),
            mode=case.mode,
            device="cpu" if tiny else "auto",
            dtype="bfloat16",
            channels_last=True,
            compile=case.impl == "torch-compile",
            compile_backend="inductor" if inductor else sizes.compile_backend,
            num_classes=classes(sizes, case.model),
            **overrides(sizes, case.model),
        )
    finally:
        torch._dynamo.reset()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def pipeline_case(
    dataset: str, batch: int, batches: int, warmup: int, train_images_per_second: float | None
) -> dict[str, Any]:
    """The input pipeline on this host (TensorFlow needed), against the train step's rate."""
    from ran_jax.data import pipeline_timing

    r = pipeline_timing.benchmark(pipeline_timing.make_config(dataset, batch), batches, warmup)
    per_core = r["images_per_second"] / r["cpu_cores"]
    r["per_core_images_per_second"] = per_core
    r["train_images_per_second"] = train_images_per_second
    r["cores_needed"] = (
        math.ceil(train_images_per_second / per_core) if train_images_per_second else None
    )
    return r


def pipeline_without_tensorflow(
    dataset: str, train_images_per_second: float | None, train_case: str | None
) -> dict[str, Any]:
    """The figures of a pipeline case skipped for want of TensorFlow: the per-core rate of
    ``DEV_PIPELINE``, and the cores the train step's rate would take."""
    images, cores = DEV_PIPELINE[dataset]
    per_core = images / cores
    return {
        "status": "skipped",
        "reason": "no TensorFlow on this machine",
        "dataset": dataset,
        "per_core_images_per_second": per_core,
        "per_core_source": (
            f"docs/performance.md, Input pipeline: {images:,.0f} images/s on "
            f"{cores} cores of the 2-core CPU machine of docs/performance.md"
        ),
        "train_images_per_second": train_images_per_second,
        "train_case": train_case,
        "cores_needed": (
            math.ceil(train_images_per_second / per_core) if train_images_per_second else None
        ),
        "host_cores": len(os.sched_getaffinity(0)),
    }
