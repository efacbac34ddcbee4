"""``validate``: every value of a config checked before anything is written.

Each key's type and allowed values come from its declaration in ``configs.KEYS``; this module
adds what needs the model registry, the device count or several keys at once. The data set
and split names are checked when the data set is opened (``data/``), also before anything is
written.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping
from typing import Any

import ml_collections
from absl import logging

from ran_jax import configs
from ran_jax.models import get_model, list_models


class ConfigError(ValueError):
    """A config value that cannot work: one line naming the key, the value and what is allowed."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Raises ConfigError for the first value of ``config`` that cannot train on
    ``num_devices`` devices; warns of learning-rate boundaries the run never reaches."""
    _check_names(config)
    for key in configs.KEYS:
        _check_value(key, config[key.name])
    _check_model(config)
    _check_batch(config, num_devices)
    _check_schedule(config)
    _check_processes(config)


def _check_value(key: configs.Key, value: Any) -> None:
    """Raises ConfigError unless ``value`` has ``key``'s type and is one it allows."""
    if value is None and key.optional:
        return
    shown = f"config.{key.name}={_plain(value)!r}"
    if not _has_type(key, value):
        raise ConfigError(
            f"{shown} has the wrong type ({type(value).__name__}); allowed: {key.allowed()}."
        )
    items = tuple(value) if key.item is not None else (value,)
    if any(isinstance(v, numbers.Real) and not math.isfinite(v) for v in items):
        raise ConfigError(f"{shown} is not a finite number; allowed: {key.allowed()}.")
    if key.choices and value not in key.choices:
        raise ConfigError(f"{shown} is not a choice; allowed: {key.allowed()}.")
    if not all(_in_range(key, v) for v in items):
        raise ConfigError(f"{shown} is out of range; allowed: {key.allowed()}.")


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is dict:
        return isinstance(value, (Mapping, ml_collections.ConfigDict))
    return isinstance(value, kind)


def _has_type(key: configs.Key, value: Any) -> bool:
    if key.item is not None:
        return isinstance(value, (tuple, list)) and all(_is(v, key.item) for v in value)
    return _is(value, key.type)


def _in_range(key: configs.Key, v: Any) -> bool:
    return (
        (key.at_least is None or v >= key.at_least)
        and (key.above is None or v > key.above)
        and (key.at_most is None or v <= key.at_most)
        and (key.below is None or v < key.below)
    )


def _check_names(config: ml_collections.ConfigDict) -> None:
    declared = [key.name for key in configs.KEYS]
    for name in config.keys():
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"did you mean {close[0]}?" if close else "see ran_jax/configs.py"
            raise ConfigError(f"config.{name} is not a config key; {hint}")
    for name in declared:
        if name not in config:
            raise ConfigError(f"config has no key {name}; start from ran_jax.configs.base().")


def _check_model(config: ml_collections.ConfigDict) -> None:
    models = list_models()
    if config.model not in models:
        names = ", ".join(map(repr, models))
        raise ConfigError(f"config.model={config.model!r} is not a model; allowed: {names}.")
    overrides = _plain(config.model_overrides)
    try:
        get_model(config.model, 2, **overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"config.model_overrides={overrides!r} does not build {config.model}: {e}"
        ) from e


def _check_batch(config: ml_collections.ConfigDict, num_devices: int) -> None:
    if config.batch_size % num_devices:
        raise ConfigError(
            f"config.batch_size={config.batch_size} is not divisible by the {num_devices} "
            f"devices; allowed: a multiple of {num_devices}."
        )
    per_device = config.batch_size // num_devices
    if per_device % config.accumulate_steps:
        raise ConfigError(
            f"config.accumulate_steps={config.accumulate_steps} does not divide each device's "
            f"batch of {per_device} examples; allowed: a divisor of {per_device}."
        )


def _check_schedule(config: ml_collections.ConfigDict) -> None:
    steps, bounds = config.num_train_steps, tuple(config.lr_boundaries)
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ConfigError(
            f"config.lr_boundaries={bounds} is not strictly increasing; allowed: a tuple of "
            "ints, each > 0 and above the one before."
        )
    if config.warmup_steps >= steps:
        raise ConfigError(
            f"config.warmup_steps={config.warmup_steps} is not below config.num_train_steps="
            f"{steps}; allowed: 0 <= warmup_steps < num_train_steps."
        )
    if config.mix_off_last_steps > steps:
        raise ConfigError(
            f"config.mix_off_last_steps={config.mix_off_last_steps} is more than "
            f"config.num_train_steps={steps}; allowed: 0 <= mix_off_last_steps <= num_train_steps."
        )
    late = [b for b in bounds if config.warmup_steps + b >= steps]
    if config.lr_schedule == "piecewise" and late:
        logging.warning(
            "config.lr_boundaries %s: the run of %d steps (%d of warmup, after which the "
            "boundaries count) never reaches %s.",
            bounds,
            steps,
            config.warmup_steps,
            late,
        )


def _check_processes(config: ml_collections.ConfigDict) -> None:
    count, index = config.num_processes, config.process_id
    if count is not None and index is not None and index >= count:
        raise ConfigError(
            f"config.process_id={index} is not below config.num_processes={count}; "
            "allowed: 0 <= process_id < num_processes."
        )
