r"""Top-5 classes of your images under a trained network.

    python -m ran_jax.predict --workdir=DIR photo.jpg scan.png
    python -m ran_jax.predict --workdir=DIR --checkpoint=best --json images/*.jpg

Images of any size and of the JPEG, PNG, GIF or BMP format are prepared as evaluation
prepares them (``input_pipeline.eval_view``: shorter side resized, centre crop, the run's
normalisation; colour or grey-scale converted to what the network was trained on). Class
names come from the run's dataset (tfds names; ImageNet's are WordNet ids).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from ran_jax import cli, input_pipeline, run_file, trained  # noqa: E402


def _define_flags() -> None:
    trained.define_flags()
    flags.DEFINE_integer("top", 5, "How many classes to show per image.")


CHUNK = 32  # images per forward pass; the last chunk is padded, so one compilation serves all


def read_image(path: str, channels: int) -> tf.Tensor:
    """The decoded uint8 image [H, W, channels] at ``path``; ValueError naming it otherwise."""
    if not os.path.isfile(path):
        raise ValueError(f"Image {path} does not exist or is not a file.")
    try:
        return input_pipeline.decode_any(tf.io.read_file(path), channels)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        raise ValueError(
            f"Cannot read {path} as an image: it is not a valid JPEG, PNG, GIF or BMP file."
        ) from e


def eval_views(paths: list[str], info: input_pipeline.DatasetInfo) -> np.ndarray:
    """The image files at ``paths`` as the network sees them in evaluation, [N, S, S, C]."""
    return np.stack(
        [input_pipeline.eval_view(read_image(p, info.num_channels), info).numpy() for p in paths]
    )


def dataset_info(dataset: dict) -> input_pipeline.DatasetInfo:
    """The run file's dataset description as a ``DatasetInfo``."""
    fields = {k: v for k, v in dataset.items() if k != "normalisation"}
    return input_pipeline.DatasetInfo(**{**fields, "class_names": tuple(fields["class_names"])})


def predict(
    workdir: str, paths: list[str], checkpoint: str = "latest", top: int = 5, ema: bool = False
) -> dict:
    """The ``top`` most probable classes of each image, as a JSON-ready dict."""
    if not paths:
        raise ValueError("Name at least one image file after the flags.")
    if top < 1:
        raise ValueError(f"--top must be positive, got {top}.")
    info = dataset_info(run_file.read(workdir)[1])
    views = eval_views(paths, info)
    run = trained.load(workdir, checkpoint)
    variables = run.variables(ema)
    apply = jax.jit(lambda v, x: jax.nn.softmax(run.model.apply(v, x, train=False)))
    probabilities = []
    for start in range(0, len(views), CHUNK):
        chunk = views[start : start + CHUNK]
        padded = np.concatenate([chunk, np.zeros((CHUNK - len(chunk), *chunk.shape[1:]))])
        probabilities.append(np.asarray(apply(variables, padded))[: len(chunk)])
    probabilities = np.concatenate(probabilities)
    k = min(top, info.num_classes)
    predictions = []
    for path, p in zip(paths, probabilities):
        best = np.argsort(-p, kind="stable")[:k]
        predictions.append(
            {
                "image": path,
                "top": [
                    {"class": int(c), "name": info.class_names[c], "probability": float(p[c])}
                    for c in best
                ],
            }
        )
    return {
        "workdir": workdir,
        "checkpoint": checkpoint,
        "step": run.step,
        "ema": ema,
        "predictions": predictions,
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
