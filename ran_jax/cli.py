"""The shared ``main`` of the reporting commands (summary, benchmark, pipeline_benchmark)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags


def report(
    argv: list[str], compute: Callable[[], dict[str, Any]], show: Callable[[dict], None]
) -> None:
    """Computes a report, prints it with ``show``, and its JSON as the last line with --json.

    A ``ValueError`` from ``compute`` (a bad flag value) ends the program with one line,
    ``error: ...``, and no traceback.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        result = compute()
    except ValueError as e:
        sys.exit(f"error: {e}")
    show(result)
    if flags.FLAGS.json:
        print(json.dumps(result))
