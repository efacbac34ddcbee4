"""Metrics to TensorBoard event files and ``WORKDIR/metrics.jsonl``, written by process 0."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import tensorflow as tf


class MetricWriter:
    """Appends ``{"step": s, name: value, ...}`` lines and TensorBoard scalars.

    Only the writing process (``enabled``, i.e. process 0) opens any file.
    """

    def __init__(self, workdir: str, enabled: bool):
        self._enabled = enabled
        if enabled:
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

    def close(self) -> None:
        if self._enabled:
            self._jsonl.close()
            self._events.close()
