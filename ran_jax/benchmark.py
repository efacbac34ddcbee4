r"""Times the train (or eval) step exactly as training runs it, on synthetic device-resident data.

    python -m ran_jax.benchmark --model=attention56 --batch_size=8 --image_size=224
    python -m ran_jax.benchmark --model=cifar_attention92 --batch_size=64 --dtype=bfloat16 --json

The timing is ``training.step_benchmark.run`` (what it runs and reports is described there);
this command holds its flags and prints its figures. ``pipeline_benchmark.py`` times the
input pipeline.
"""

from __future__ import annotations

from typing import Any

from absl import app, flags

from ran_jax import cli, configs
from ran_jax.training import host_allocator, step_benchmark


def _define_flags() -> None:
    """Command-line flags, defined only when run as a program (importable in tests)."""
    flags.DEFINE_string("model", "attention56", "A name from ran_jax.models.list_models().")
    flags.DEFINE_integer("batch_size", 8, "Global batch, split over the devices.")
    flags.DEFINE_integer(
        "image_size", None, "Input side (default: 224 for ImageNet networks, else 32)."
    )
    flags.DEFINE_integer(
        "num_classes", None, "Classifier outputs (default: 1000 for ImageNet networks, else 10)."
    )
    flags.DEFINE_enum("dtype", "float32", configs.DTYPES, "Compute dtype.")
    flags.DEFINE_enum("mode", "train", ["train", "eval"], "Which step to time.")
    flags.DEFINE_integer("steps", 20, "Timed steps.")
    flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
    flags.DEFINE_enum("parallelism", "shard_map", configs.PARALLELISM, "Step launcher.")
    flags.DEFINE_integer("devices", None, "Use the first N devices (default: all).")
    flags.DEFINE_bool("remat", False, "Recompute Attention Modules in the backward pass.")
    cli.define_json()


def _print(r: dict[str, Any]) -> None:
    def gib(n: int | None) -> str:
        return "not reported" if n is None else f"{n / 2**30:.2f} GiB"

    print(
        f"{r['model']} {r['mode']} step: batch {r['batch_size']} at {r['image_size']}px, "
        f"{r['dtype']}, {r['devices']} x {r['device_kind']} ({r['parallelism']}"
        f"{', remat' if r['remat'] else ''}), JAX {r['jax_version']}"
    )
    print(f"  compile           {r['compile_seconds']:.1f} s")
    print(
        f"  step time         median {r['step_seconds_median'] * 1e3:.1f} ms "
        f"(min {r['step_seconds_min'] * 1e3:.1f}, max {r['step_seconds_max'] * 1e3:.1f}; "
        f"{r['steps']} steps)"
    )
    print(f"  throughput        {r['images_per_second']:.1f} images/s")
    fraction = r["fraction_of_peak"]
    share = f", {100 * fraction:.1f}% of peak" if fraction is not None else ""
    print(f"  achieved          {r['achieved_tflops']:.3f} TFLOP/s{share}")
    print(f"  device peak mem   {gib(r['peak_device_bytes'])}")
    print(f"  XLA temp buffers  {gib(r['xla_temp_bytes'])}")
    print(f"  host peak RSS     {gib(r['host_peak_rss_bytes'])}")


def main(argv: list[str]) -> None:
    host_allocator.keep_freed_memory()  # before JAX creates its CPU client
    f = flags.FLAGS
    cli.report(
        argv,
        lambda: step_benchmark.run(
            f.model,
            f.batch_size,
            f.image_size,
            f.dtype,
            f.mode,
            f.steps,
            f.warmup,
            f.parallelism,
            f.devices,
            f.remat,
            f.num_classes,
        ),
        _print,
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
