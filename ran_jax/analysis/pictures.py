"""Pictures of the soft masks, as in the paper's Fig. 1: what each Attention Module looks at.

For every image: the input, and for every Attention Module its mask ``M`` reduced over
channels (top row: the mean; bottom row: the most active channel), upsampled bilinearly to
the input and laid over it. ``AttentionPictures`` is the evaluator that puts them in
TensorBoard during training; ``visualize`` writes them as PNG files. Also the bar chart of a
study's results (``training.studies``).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from ran_jax.analysis import attention_maps
from ran_jax.data.info import DataSource
from ran_jax.models import ResidualAttentionNetwork

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn: commands start faster
    from matplotlib.figure import Figure


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


def figure(
    image: np.ndarray, found: dict[str, np.ndarray], normalisation: tuple, title: str = ""
) -> Figure:
    """A matplotlib figure: the input, then per module the mean (top row) and most active
    channel (bottom row) of its mask, laid over a grey copy of the input. Each panel's
    colours span that map's own range, written under it: masks often vary over a few
    hundredths only, which a fixed 0-1 scale would hide."""
    drawn = overlays(image, found)
    names = list(found)
    pixels = _display(image, normalisation)
    grey = pixels if pixels.ndim == 2 else pixels.mean(-1)
    from matplotlib.figure import Figure  # without pyplot: no global state, nothing to close

    fig = Figure(figsize=(2.2 * (len(names) + 1), 4.8), layout="constrained")
    axes = fig.subplots(2, len(names) + 1, squeeze=False)
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


def render(fig: Figure) -> np.ndarray:
    """The figure as an RGB uint8 array [H, W, 3] (for TensorBoard)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


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


def eval_images(data: DataSource, num: int) -> tuple[np.ndarray, list[str]]:
    """The first ``num`` evaluation images of ``data`` as the network sees them, with
    titles naming their classes."""
    # Process 0's part of the first num * processes examples is the first num.
    batch = next(data.eval_batches(num * jax.process_count(), num * jax.process_count()))
    names = [data.info.class_names[label] for label in batch["label"][:num]]
    return batch["image"][:num], [f"#{i}: {n}" for i, n in enumerate(names)]


def save(figures: list, out: str) -> list[str]:
    """Writes ``figures`` to ``out/attention_NNN.png``; returns the paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    for i, fig in enumerate(figures):
        path = os.path.join(out, f"attention_{i:03d}.png")
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


class AttentionPictures:
    """The training evaluator of mask pictures: the first ``count`` evaluation images of
    ``data``, drawn after every evaluation for TensorBoard (tag ``attention``)."""

    def __init__(self, data: DataSource, count: int):
        self._count = count
        self._data = data
        self._masks = None
        self._inputs: tuple[np.ndarray, list[str], tuple] | None = None

    def __call__(
        self, model: ResidualAttentionNetwork, variables: Any
    ) -> dict[str, list[np.ndarray]]:
        if not self._count or not any(stage.num_modules for stage in model.stages):
            return {}
        if self._inputs is None:  # read once, at the first evaluation
            images, labels = eval_images(self._data, self._count)
            self._inputs = (images, labels, self._data.info.normalisation)
            self._masks = masks_fn(model.apply)
        images, labels, normalisation = self._inputs
        figures = mask_figures(self._masks, variables, images, normalisation, labels)
        return {"attention": [render(fig) for fig in figures]}


def study_plot(study: str, rows: list[dict], path: str, data: str) -> None:
    """A bar chart of a study's test errors on ``data`` (mean and std over seeds) beside the
    paper's figures, for the cells with finished runs (``training.studies``)."""
    from matplotlib.figure import Figure

    done = [r for r in rows if r["runs"]]
    fig = Figure(figsize=(max(4, 0.9 * len(rows)), 3.2), layout="constrained")
    axis = fig.subplots()
    positions = np.arange(len(done))
    axis.bar(
        positions,
        [r["mean"] for r in done],
        yerr=[r["std"] or 0 for r in done],
        capsize=3,
        label=f"ran_jax, {data}",
    )
    axis.plot(positions, [r["paper"] for r in done], "k_", markersize=14, label="paper, CIFAR-10")
    axis.set_xticks(positions, [r["cell"] for r in done], rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("test error %")
    axis.set_title(study)
    axis.legend(fontsize=7)
    fig.savefig(path, dpi=100)
