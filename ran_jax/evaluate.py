r"""Top-1, top-5 and loss of a saved checkpoint on a whole evaluation split.

    python -m ran_jax.evaluate --workdir=DIR
    python -m ran_jax.evaluate --workdir=DIR --checkpoint=best --image_size=320 --json

The model, dataset and preprocessing come from ``DIR/run.json``; evaluation is the one of
training (``training/evaluation.py``: every example once, the padded last batch masked), on
all devices. ``--image_size`` evaluates ImageNet or image-folder networks at another size
(the paper tests Attention-92 at 320 after training at 224).
"""

from __future__ import annotations

from absl import app, flags

from ran_jax import cli
from ran_jax.data.info import DataNotFoundError, DataReadError
from ran_jax.training.evaluation import evaluate_checkpoint


def _define_flags() -> None:
    cli.define_trained_run()
    flags.DEFINE_integer(
        "image_size", None, "Evaluation input side (default: the run's eval_image_size)."
    )
    flags.DEFINE_string("split", None, "Split to evaluate (default: the run's test split).")
    flags.DEFINE_string("data_dir", None, "tfds data_dir (default: the run's).")
    flags.DEFINE_integer("batch_size", None, "Global batch (default: the run's).")


def _show(r: dict) -> None:
    print(
        f"{r['workdir']} step {r['step']} ({r['checkpoint']}): {r['dataset']} {r['split']}, "
        f"{r['num_examples']} images at {r['image_size']}x{r['image_size']}"
    )
    print(f"  top-1 {r['eval_top1']:.4f}  top-5 {r['eval_top5']:.4f}  loss {r['eval_loss']:.4f}")
    if "eval_ema_top1" in r:
        print(f"  EMA weights: top-1 {r['eval_ema_top1']:.4f}  top-5 {r['eval_ema_top5']:.4f}")
    for key in sorted(k for k in r if k.startswith("eval_localisation_")):
        print(f"  attention localisation {key.removeprefix('eval_localisation_')}: {r[key]:.3f}")


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(
        argv,
        lambda: evaluate_checkpoint(
            f.workdir,
            cli.open_data,
            f.checkpoint,
            f.image_size,
            f.split,
            f.data_dir,
            f.batch_size,
        ),
        _show,
        errors=(DataNotFoundError, DataReadError),
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
