"""The shared ``main`` of the report commands: summary, benchmarks, evaluate, predict, export."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags, logging


def report(
    argv: list[str],
    compute: Callable[[], dict[str, Any]],
    show: Callable[[dict], None],
    errors: tuple[type[Exception], ...] = (),
) -> None:
    """Computes a report, prints it with ``show``, and its JSON as the last line with --json.

    A ``ValueError`` or one of ``errors`` from ``compute`` (bad input) ends the program with
    one line, ``error: ...``, and no traceback.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.ERROR)  # keep libraries' notes out of the report
    try:
        result = compute()
    except (ValueError, *errors) as e:
        sys.exit(f"error: {e}")
    show(result)
    if flags.FLAGS.json:
        print(json.dumps(result))
