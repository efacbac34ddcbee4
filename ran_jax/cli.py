"""The shared ``main`` of the report commands: summary, benchmarks, evaluate, predict, export."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags, logging


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
