"""Class probabilities of prepared images under a trained network (``predict``)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ran_jax.training.trained import Trained

CHUNK = 32  # images per forward pass; the last chunk is padded, so one compilation serves all


def probabilities(run: Trained, views: np.ndarray, ema: bool = False) -> np.ndarray:
    """Softmax outputs [N, classes] of ``views`` (network inputs [N, S, S, C]) in evaluation
    mode, with the trained weights or (``ema``) their average."""
    variables = run.variables(ema)
    apply = jax.jit(lambda v, x: jax.nn.softmax(run.model.apply(v, x, train=False)))
    chunks = []
    for start in range(0, len(views), CHUNK):
        chunk = views[start : start + CHUNK]
        padded = np.concatenate([chunk, np.zeros((CHUNK - len(chunk), *chunk.shape[1:]))])
        chunks.append(np.asarray(apply(variables, padded))[: len(chunk)])
    return np.concatenate(chunks)


def top_classes(p: np.ndarray, k: int, class_names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one image's probabilities ``p``, best first."""
    best = np.argsort(-p, kind="stable")[:k]
    return [{"class": int(c), "name": class_names[c], "probability": float(p[c])} for c in best]
