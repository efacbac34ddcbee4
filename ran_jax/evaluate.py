r"""Top-1, top-5 and loss of a saved checkpoint on a whole evaluation split.

    python -m ran_jax.evaluate --workdir=DIR
    python -m ran_jax.evaluate --workdir=DIR --checkpoint=best --image_size=320 --json

The model, dataset and preprocessing come from ``DIR/run.json``; evaluation is the one of
training (``train.evaluate``: every example once, the padded last batch masked), on all
devices. ``--image_size`` evaluates ImageNet or image-folder networks at another size (the
paper tests Attention-92 at 320 after training at 224).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from ran_jax import cli, input_pipeline, run_file, train, trained  # noqa: E402


def _define_flags() -> None:
    trained.define_flags()
    flags.DEFINE_integer(
        "image_size", None, "Evaluation input side (default: the run's eval_image_size)."
    )
    flags.DEFINE_string("split", None, "Split to evaluate (default: the run's test split).")
    flags.DEFINE_string("data_dir", None, "tfds data_dir (default: the run's).")
    flags.DEFINE_integer("batch_size", None, "Global batch (default: the run's).")


def evaluate(
    workdir: str,
    checkpoint: str = "latest",
    image_size: int | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
) -> dict:
    """The evaluation metrics of one checkpoint, as a JSON-ready dict."""
    config, _ = run_file.read(workdir)
    for key, value in (
        ("eval_image_size", image_size),
        ("eval_split", split),
        ("data_dir", data_dir),
        ("batch_size", batch_size),
    ):
        if value is not None:
            config[key] = value
    _, info, dp = train.build(config)
    run = trained.load(workdir, checkpoint, config)
    _, p_eval_step = train.compile_steps(config, dp)
    metrics = train.evaluate(p_eval_step, dp.put_state(run.state), config, dp)
    return {
        "workdir": workdir,
        "checkpoint": checkpoint,
        "step": run.step,
        "dataset": config.dataset,
        "split": info.eval_split,
        "image_size": info.eval_image_size,
        "num_examples": info.num_eval,
        **metrics,
    }


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
        lambda: evaluate(f.workdir, f.checkpoint, f.image_size, f.split, f.data_dir, f.batch_size),
        _show,
        errors=(input_pipeline.DataNotFoundError,),
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
