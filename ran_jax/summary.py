r"""Prints a network's per-stage output shapes, parameter count and MACs.

    python -m ran_jax.summary --model=attention92 --image_size=320
    python -m ran_jax.summary --model=cifar_attention92 --json

Counts follow the paper's conventions (``docs/faithfulness.md`` §1.2): trainable parameters
(BatchNorm running statistics reported separately) and multiply-accumulates of conv and
dense layers per image. Nothing is computed on real data: shapes come from ``jax.eval_shape``.
"""

from __future__ import annotations

import os

from absl import app, flags

from ran_jax import cli
from ran_jax.models import default_input, get_model, list_models
from ran_jax.models.complexity import complexity


def _define_flags() -> None:
    flags.DEFINE_string("model", "attention56", f"One of: {', '.join(list_models())}.")
    flags.DEFINE_integer(
        "num_classes", None, "Classifier outputs (default: 1000 for ImageNet networks, else 10)."
    )
    flags.DEFINE_integer(
        "image_size", None, "Input side in pixels (default: 224 for ImageNet networks, else 32)."
    )
    cli.define_json()


def summarize(name: str, num_classes: int | None, image_size: int | None) -> dict:
    """The summary of one network as a JSON-ready dict."""
    default_classes, default_size = default_input(name)
    if num_classes is None:
        num_classes = default_classes
    if image_size is None:
        image_size = default_size
    model = get_model(name, num_classes=num_classes)
    model.check_fits(image_size, what="Images (--image_size)", name=name)
    c = complexity(model, image_size)
    return {
        "model": name,
        "num_classes": num_classes,
        "image_size": image_size,
        "params": c.params,
        "batch_stats": c.batch_stats,
        "macs": c.macs,
        "output_shape": list(c.output_shape),
        "stage_shapes": {k: list(v) for k, v in c.stage_shapes.items()},
    }


def _print_table(s: dict) -> None:
    print(f"{s['model']}  ({s['num_classes']} classes, {s['image_size']}x{s['image_size']} input)")
    for stage, shape in s["stage_shapes"].items():
        print(f"  {stage:<8} {'x'.join(map(str, shape[1:]))}")
    print(f"  trainable parameters      {s['params']:>14,}")
    print(f"  BatchNorm running stats   {s['batch_stats']:>14,}")
    print(f"  conv+dense MACs per image {s['macs']:>14,}  ({s['macs'] / 1e9:.3f} G)")


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(argv, lambda: summarize(f.model, f.num_classes, f.image_size), _print_table)


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    _define_flags()
    app.run(main)
