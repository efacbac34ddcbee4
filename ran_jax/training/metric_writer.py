"""Metrics to TensorBoard event files and ``WORKDIR/metrics.jsonl``, written by process 0.

The event files are written with the ``tensorboard`` package alone, in the format of
``tf.summary.scalar`` and ``tf.summary.image``, so training needs no TensorFlow.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping

import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

_SCALAR = scalar_metadata.create_summary_metadata(display_name="", description="")
_IMAGE = image_metadata.create_summary_metadata(
    display_name="", description="", converted_to_tensor=True
)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


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
            self._events = EventFileWriter(workdir)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

    def _add(self, step: int, values: list[summary_pb2.Summary.Value]) -> None:
        summary = summary_pb2.Summary(value=values)
        self._events.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        self._events.flush()

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self._enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        # wall_time (seconds since the epoch, as TensorBoard's events keep it) dates each line,
        # so time to accuracy can be read from the file (benchmarks/time_to_accuracy.py).
        line = {"step": step, **values, "wall_time": round(time.time(), 3)}
        self._jsonl.write(json.dumps(line) + "\n")
        self._jsonl.flush()
        self._add(
            step,
            [
                summary_pb2.Summary.Value(
                    tag=name,
                    metadata=_SCALAR,
                    tensor=tensor_util.make_tensor_proto(np.float32(value)),
                )
                for name, value in values.items()
            ],
        )

    def write_images(self, step: int, name: str, images: list) -> None:
        """TensorBoard images (RGB uint8 arrays [H, W, 3] of one size) under ``name``."""
        if not self._enabled or not images:
            return
        height, width = np.asarray(images[0]).shape[:2]
        content = [str(width).encode(), str(height).encode(), *map(_png, images)]
        tensor = tensor_util.make_tensor_proto(np.array(content, dtype=object))
        self._add(step, [summary_pb2.Summary.Value(tag=name, metadata=_IMAGE, tensor=tensor)])

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
