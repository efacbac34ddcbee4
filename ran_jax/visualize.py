r"""Pictures of the soft masks, as in the paper's Fig. 1: what each Attention Module looks at.

    python -m ran_jax.visualize --workdir=DIR --num=8 --out=PICTURES
    python -m ran_jax.visualize --workdir=DIR --images=cat.jpg,dog.png --out=PICTURES

For every image one PNG: the input, and for every Attention Module its mask ``M`` reduced
over channels (top row: the mean; bottom row: the most active channel), upsampled
bilinearly to the input and laid over it. ``--num`` takes the first images of the run's
evaluation split (the dataset must be there); ``--images`` takes files, prepared as
evaluation prepares them. Training writes the same pictures to TensorBoard at each
evaluation, for the first ``config.attention_images`` evaluation images.
"""

from __future__ import annotations

import functools
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

matplotlib.use("Agg")  # files only, no display

from matplotlib import pyplot as plt  # noqa: E402

from ran_jax import attention_maps, cli, input_pipeline, predict, trained  # noqa: E402


def overlays(image: np.ndarray, found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{'NAME/mean': [H, W], 'NAME/top': [H, W]} for one image's masks ``{NAME: [h, w, C]}``:
    the channel mean and the most active channel, upsampled to the image's H x W."""
    height, width = image.shape[:2]
    drawn = {}
    for name, mask in found.items():
        batch = np.asarray(mask)[None]
        for kind, reduce in (
            ("mean", attention_maps.channel_mean),
            ("top", attention_maps.top_channel),
        ):
            drawn[f"{name}/{kind}"] = np.asarray(
                attention_maps.upsample(reduce(batch), height, width)
            )[0]
    return drawn


def _display(image: np.ndarray, normalisation: tuple) -> np.ndarray:
    """A normalised network input back to [0, 1] pixels, grey-scale as [H, W]."""
    mean, std = (np.asarray(v, np.float32) for v in normalisation)
    pixels = np.clip(image * std + mean, 0.0, 1.0)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def figure(image: np.ndarray, found: dict[str, np.ndarray], normalisation: tuple, title: str = ""):
    """A matplotlib figure: the input, then per module the mean (top row) and most active
    channel (bottom row) of its mask, laid over a grey copy of the input. Each panel's
    colours span that map's own range, written under it: masks often vary over a few
    hundredths only, which a fixed 0-1 scale would hide."""
    drawn = overlays(image, found)
    names = list(found)
    pixels = _display(image, normalisation)
    grey = pixels if pixels.ndim == 2 else pixels.mean(-1)
    fig, axes = plt.subplots(
        2,
        len(names) + 1,
        figsize=(2.2 * (len(names) + 1), 4.8),
        squeeze=False,
        layout="constrained",
    )
    axes[0, 0].imshow(pixels, cmap="gray" if pixels.ndim == 2 else None)
    axes[0, 0].set_title(title or "input", fontsize=8)
    axes[1, 0].imshow(grey, cmap="gray")
    axes[1, 0].set_title("rows: channel mean,\nmost active channel", fontsize=7)
    for column, name in enumerate(names, start=1):
        for row, kind in enumerate(("mean", "top")):
            values = drawn[f"{name}/{kind}"]
            low, high = float(values.min()), float(values.max())
            axis = axes[row, column]
            axis.imshow(grey, cmap="gray")
            axis.imshow(values, cmap="jet", alpha=0.6, vmin=low, vmax=max(high, low + 1e-6))
            axis.set_title(f"{name} {kind}", fontsize=7)
            axis.set_xlabel(f"blue {low:.3f}, red {high:.3f}", fontsize=7)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    return fig


def render(fig) -> np.ndarray:
    """The figure as an RGB uint8 array [H, W, 3] (for TensorBoard); closes it."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def masks_fn(apply_fn: Any) -> Any:
    """``f(variables, images) -> (logits, masks)``, compiled once per network."""
    return jax.jit(functools.partial(attention_maps.masks, apply_fn))


def mask_figures(
    masks: Any, variables: Any, images: np.ndarray, normalisation: tuple, labels: list[str]
) -> list:
    """One figure per image (none for a network without Attention Modules) from ``masks``
    (``masks_fn``); ``labels`` become the input panels' titles."""
    logits, found = masks(variables, images)
    found = {k: np.asarray(v) for k, v in found.items()}
    if not found:
        return []
    predicted = np.asarray(logits).argmax(-1)
    return [
        figure(
            image,
            {k: v[i] for k, v in found.items()},
            normalisation,
            f"{labels[i]}, predicted {predicted[i]}",
        )
        for i, image in enumerate(images)
    ]


def _eval_images(config, info, num: int) -> tuple[np.ndarray, list[str]]:
    config = config.copy_and_resolve_references()
    # Process 0's part of the first num * processes examples is the first num.
    config.eval_examples = config.batch_size = num * jax.process_count()
    batch = next(input_pipeline.eval_batches(config))
    names = [info.class_names[label] for label in batch["label"][:num]]
    return batch["image"][:num], [f"#{i}: {n}" for i, n in enumerate(names)]


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
    run = trained.load(workdir, checkpoint)
    info = predict.dataset_info(run.dataset)
    if images:
        inputs = predict.eval_views(images, info)
        labels = [os.path.basename(p) for p in images]
    else:
        inputs, labels = _eval_images(run.config, info, num)
    masks = masks_fn(run.model.apply)
    figures = mask_figures(masks, run.variables(ema), inputs, info.normalisation, labels)
    if not figures:
        raise ValueError("This network has no Attention Modules, so it has no mask to show.")
    os.makedirs(out, exist_ok=True)
    paths = []
    for i, fig in enumerate(figures):
        path = os.path.join(out, f"attention_{i:03d}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return {"workdir": workdir, "step": run.step, "pictures": paths}


def _show(r: dict) -> None:
    print(f"{len(r['pictures'])} pictures of the masks of step {r['step']}:")
    for path in r["pictures"]:
        print(f"  {path}")


def _define_flags() -> None:
    trained.define_flags()
    flags.DEFINE_string("out", None, "Directory for the PNGs.", required=True)
    flags.DEFINE_list("images", [], "Image files (default: the first --num evaluation images).")
    flags.DEFINE_integer("num", 8, "How many evaluation images, without --images.")


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(
        argv,
        lambda: visualize(f.workdir, f.out, f.images, f.num, f.checkpoint, f.ema),
        _show,
        errors=(input_pipeline.DataNotFoundError,),
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)


class TrainingPictures:
    """Mask pictures of the first ``count`` evaluation images, for TensorBoard in training."""

    def __init__(self, apply_fn: Any, config: Any, info: input_pipeline.DatasetInfo, count: int):
        self._masks = masks_fn(apply_fn)
        self._images, self._labels = _eval_images(config, info, count)
        self._normalisation = info.normalisation

    def render(self, variables: Any) -> list[np.ndarray]:
        figures = mask_figures(
            self._masks, variables, self._images, self._normalisation, self._labels
        )
        return [render(fig) for fig in figures]
