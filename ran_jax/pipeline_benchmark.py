r"""Images per second of the training input pipeline alone, on offline mock data.

    python -m ran_jax.pipeline_benchmark --dataset=cifar10
    python -m ran_jax.pipeline_benchmark --dataset=imagenet2012 --batches=50 --json

Times ``DataSet.train_batches`` with no model attached (``data.pipeline_timing``
says how the mock data is made); figures are in ``docs/performance.md``.
"""

from __future__ import annotations

import os

from absl import app, flags

from ran_jax import cli
from ran_jax.data.pipeline_timing import POOL_SIZE, benchmark, make_config


def _define_flags() -> None:
    """Command-line flags, defined only when run as a program (importable in tests)."""
    flags.DEFINE_string("dataset", "cifar10", "cifar10 or imagenet2012.")
    flags.DEFINE_integer(
        "batch_size", None, "Images per batch (default: the recipe's, 64 CIFAR, 256 ImageNet)."
    )
    flags.DEFINE_integer(
        "image_size", None, "ImageNet crop size (default 224); CIFAR images are always 32."
    )
    flags.DEFINE_integer("batches", 50, "Batches timed.")
    flags.DEFINE_integer("warmup", 5, "Batches read before timing (shuffle fill, tuning).")
    cli.define_json()


def _print_report(r: dict) -> None:
    size = r["image_size"]
    print(f"{r['dataset']} training pipeline (DataSet.train_batches), offline mock data")
    print(f"  batch size          {r['batch_size']}")
    print(f"  output images       {size}x{size}, float32")
    print(
        f"  source images       {POOL_SIZE} {r['source_format'].upper()}s, HxW "
        f"{', '.join(r['source_sizes'])}, mean {r['source_mean_bytes'] / 1024:.0f} KB"
    )
    print(f"  timed               {r['batches']} batches after {r['warmup']} warm-up batches")
    print(f"  seconds             {r['seconds']:.2f}")
    print(f"  images/second       {r['images_per_second']:,.0f}")
    print(
        "  tf.data threading   map and prefetch AUTOTUNE on the default thread pool, "
        f"CPU budget {r['cpu_cores']} schedulable cores"
    )


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(
        argv,
        lambda: benchmark(make_config(f.dataset, f.batch_size, f.image_size), f.batches, f.warmup),
        _print_report,
    )


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    _define_flags()
    app.run(main)
