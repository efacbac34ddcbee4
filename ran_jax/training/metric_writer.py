"""Metrics to TensorBoard event files and ``WORKDIR/metrics.jsonl``, written by process 0."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf


class MetricWriter:
    """Appends ``{"step": s, name: value, ...}`` lines and TensorBoard scalars.

    Only the writing process (``enabled``, i.e. process 0) opens any file. On resume from
    ``resume_step``, lines of later steps (written after that checkpoint by the run that
    stopped) are dropped, so the file reads as if the run had never been interrupted.
    """

    def __init__(self, workdir: str, enabled: bool, resume_step: int = 0):
        self._enabled = enabled
        if enabled:
            _truncate(os.path.join(workdir, "metrics.jsonl"), resume_step)
            self._events = tf.summary.create_file_writer(workdir)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self._enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self._jsonl.flush()
        with self._events.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
        self._events.flush()

    def write_images(self, step: int, name: str, images: list) -> None:
        """TensorBoard images (RGB uint8 arrays [H, W, 3] of one size) under ``name``."""
        if not self._enabled or not images:
            return
        with self._events.as_default(step=step):
            tf.summary.image(name, np.stack(images), max_outputs=len(images))
        self._events.flush()

    def close(self) -> None:
        if self._enabled:
            self._jsonl.close()
            self._events.close()


def _truncate(path: str, last_step: int) -> None:
    """Keeps the lines of ``path`` whose step is at most ``last_step`` (atomically)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
    with open(path + ".tmp", "w") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)
