r"""Pictures of the soft masks, as in the paper's Fig. 1: what each Attention Module looks at.

    python -m ran_jax.visualize --workdir=DIR --num=8 --out=PICTURES
    python -m ran_jax.visualize --workdir=DIR --images=cat.jpg,dog.png --out=PICTURES

One PNG per image (``analysis/pictures.py`` says what it shows). ``--num`` takes the first
images of the run's evaluation split (the dataset must be there); ``--images`` takes files,
prepared as evaluation prepares them. Training writes the same pictures to TensorBoard at
each evaluation, for the first ``config.attention_images`` evaluation images.
"""

from __future__ import annotations

import os

from absl import app, flags

from ran_jax import cli
from ran_jax.analysis import pictures
from ran_jax.data import image_files, input_pipeline, pillow_decode
from ran_jax.data.info import DataNotFoundError, DataReadError
from ran_jax.training import trained


def visualize(
    workdir: str,
    out: str,
    images: list[str],
    num: int,
    checkpoint: str = "latest",
    ema: bool = False,
) -> dict:
    """Writes one PNG per image to ``out``; returns their paths."""
    if num < 1 and not images:
        raise ValueError("--num must be positive, or name files with --images.")
    for path in images:  # before the checkpoint is loaded, as predict does
        pillow_decode.require_file(path)
    run = trained.load(workdir, checkpoint)
    if images:
        inputs = image_files.eval_views(images, run.dataset)
        labels = [os.path.basename(p) for p in images]
    else:
        inputs, labels = pictures.eval_images(input_pipeline.DataSet(run.config), num)
    masks = pictures.masks_fn(run.model.apply)
    figures = pictures.mask_figures(
        masks, run.variables(ema), inputs, run.dataset.normalisation, labels
    )
    if not figures:
        raise ValueError("This network has no Attention Modules, so it has no mask to show.")
    return {"workdir": workdir, "step": run.step, "pictures": pictures.save(figures, out)}


def _show(r: dict) -> None:
    print(f"{len(r['pictures'])} pictures of the masks of step {r['step']}:")
    for path in r["pictures"]:
        print(f"  {path}")


def _define_flags() -> None:
    cli.define_trained_run()
    flags.DEFINE_string("out", None, "Directory for the PNGs.", required=True)
    flags.DEFINE_list("images", [], "Image files (default: the first --num evaluation images).")
    flags.DEFINE_integer("num", 8, "How many evaluation images, without --images.")


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(
        argv,
        lambda: visualize(f.workdir, f.out, f.images, f.num, f.checkpoint, f.ema),
        _show,
        errors=(DataNotFoundError, DataReadError),
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
