"""Argument checks shared by every layer: a bad value is one clear ``ValueError``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raises a ValueError naming ``value`` and the valid ``choices`` when it is not one."""
    if value not in choices:
        raise ValueError(
            f"Unknown {name} {value!r}; valid choices are: {', '.join(map(repr, choices))}."
        )
