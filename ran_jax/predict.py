r"""Top-5 classes of your images under a trained network.

    python -m ran_jax.predict --workdir=DIR photo.jpg scan.png
    python -m ran_jax.predict --workdir=DIR --checkpoint=best --json images/*.jpg

Images of any size and of the JPEG, PNG, GIF or BMP format are prepared as evaluation
prepares them (``data/image_files.py``). Class names come from the run's dataset (tfds
names; ImageNet's are WordNet ids).
"""

from __future__ import annotations

from absl import app, flags

from ran_jax import cli
from ran_jax.data import pillow_decode
from ran_jax.training import inference, run_file, trained


def _define_flags() -> None:
    cli.define_trained_run()
    flags.DEFINE_integer("top", 5, "How many classes to show per image.")


def predict(
    workdir: str, paths: list[str], checkpoint: str = "latest", top: int = 5, ema: bool = False
) -> dict:
    """The ``top`` most probable classes of each image, as a JSON-ready dict."""
    if not paths:
        raise ValueError("Name at least one image file after the flags.")
    if top < 1:
        raise ValueError(f"--top must be positive, got {top}.")
    info = run_file.read(workdir)[1]
    for path in paths:
        pillow_decode.require_file(path)
    # The data layer (and TensorFlow, seconds to import) only once the run and images are found.
    from ran_jax.data import image_files

    views = image_files.eval_views(paths, info)
    run = trained.load(workdir, checkpoint)
    probabilities = inference.probabilities(run, views, ema)
    k = min(top, info.num_classes)
    return {
        "workdir": workdir,
        "checkpoint": checkpoint,
        "step": run.step,
        "ema": ema,
        "predictions": [
            {"image": path, "top": inference.top_classes(p, k, info.class_names)}
            for path, p in zip(paths, probabilities)
        ],
    }


def _show(r: dict) -> None:
    weights = ", EMA weights" if r["ema"] else ""
    print(f"{r['workdir']} step {r['step']} ({r['checkpoint']}{weights})")
    for prediction in r["predictions"]:
        print(prediction["image"])
        for t in prediction["top"]:
            print(f"  {t['probability']:7.2%}  {t['class']:>4}  {t['name']}")


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    images = argv[1:]  # the positional arguments
    cli.report(argv[:1], lambda: predict(f.workdir, images, f.checkpoint, f.top, f.ema), _show)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
