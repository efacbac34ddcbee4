"""What the commands share: their common flags, each defined once, error reporting, and the
data set opened late.

Flags are defined by the command that is run (in its ``if __name__ == "__main__"`` block),
so importing a command defines nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import ml_collections
from absl import app, flags, logging

from ran_jax.data.info import DataSource
from ran_jax.training.trained import CHOICES


def open_data(config: ml_collections.ConfigDict) -> DataSource:
    """The data set of ``config``, with the data layer imported only now. Commands pass this
    as their data opener and call it once their other checks have passed (every config value,
    the run and its checkpoint), so bad input is refused without waiting for TensorFlow's
    import (seconds)."""
    from ran_jax.data import input_pipeline

    return input_pipeline.DataSet(config)


def define_json() -> None:
    flags.DEFINE_bool("json", False, "End with one line holding a JSON object.")


def define_trained_run() -> None:
    """The flags of every command on a trained run: which run, which checkpoint, EMA."""
    flags.DEFINE_string("workdir", None, "Training directory (holds run.json).", required=True)
    flags.DEFINE_string("checkpoint", "latest", f"Which checkpoint: {CHOICES}.")
    flags.DEFINE_bool("ema", False, "Use the EMA of the weights (runs with config.ema_decay).")
    define_json()


class HideLibraryInfo(logging.logging.Filter):
    """Keeps orbax's per-save INFO chatter out of the console; warnings still show."""

    def filter(self, record) -> bool:
        return record.levelno >= logging.logging.WARNING or "/orbax/" not in record.pathname


def report(
    argv: list[str],
    compute: Callable[[], dict[str, Any]],
    show: Callable[[dict], None],
    errors: tuple[type[Exception], ...] = (),
    progress: bool = False,
) -> None:
    """Computes a report, prints it with ``show``, and its JSON as the last line with --json.

    Libraries' log lines are hidden, except with ``progress`` (long jobs: training's own
    progress lines show). A ``ValueError`` or one of ``errors`` from ``compute`` (bad input)
    ends the program with one line, ``error: ...``, and no traceback.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if progress:
        logging.get_absl_handler().addFilter(HideLibraryInfo())
    else:
        logging.set_verbosity(logging.ERROR)
    try:
        result = compute()
    except (ValueError, *errors) as e:
        sys.exit(f"error: {e}")
    show(result)
    if flags.FLAGS.json:
        print(json.dumps(result))
