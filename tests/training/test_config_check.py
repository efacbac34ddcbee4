"""validate: each declared key's type and range, with the bad values generated from the
declarations themselves, and the rules across keys. Each bad value is one ConfigError line
that names the key."""

import glob
import importlib.util
import math
import os

import ml_collections
import pytest

from helpers import ROOT
from ran_jax import configs
from ran_jax.training.config_check import ConfigError, validate

_WRONG_TYPES = {
    int: ["8", 8.5, True],
    float: ["0.1", True],
    str: [3, ("a",)],
    bool: [1, "True"],
    dict: [3, "widths=(8,)"],
}


def _config(**values):
    """``configs.base()`` with ``values``, rebuilt so that a value of any type can be set."""
    plain = configs.base().to_dict()
    plain.update(values)
    return ml_collections.ConfigDict(plain)


def _step(number: type, bound: float, direction: float) -> float:
    """The next value of ``number``'s kind from ``bound`` towards ``direction``."""
    return bound + direction if number is int else math.nextafter(bound, direction * math.inf)


def _outside_and_inside(key: configs.Key) -> tuple[list, list]:
    """Values just outside each bound of ``key``, and the values just inside them."""
    number = key.item or key.type
    outside, inside = [], []
    if key.at_least is not None:
        outside.append(_step(number, key.at_least, -1))
        inside.append(key.at_least)
    if key.above is not None:
        outside.append(key.above)
        inside.append(_step(number, key.above, 1))
    if key.at_most is not None:
        outside.append(_step(number, key.at_most, 1))
        inside.append(key.at_most)
    if key.below is not None:
        outside.append(key.below)
        inside.append(_step(number, key.below, -1))
    if key.item is not None:
        return [(v,) for v in outside], [(v,) for v in inside]
    return outside, inside


def _bad_values(key: configs.Key) -> list:
    """Wrong types, values just outside each bound, a non-finite number and a non-choice."""
    if key.item is not None:
        bad = [5, *[(v,) for v in _WRONG_TYPES[key.item]]]
    else:
        bad = list(_WRONG_TYPES[key.type])
    if not key.optional:
        bad.append(None)
    bad += _outside_and_inside(key)[0]
    if (key.item or key.type) is float:
        bad += [math.nan, math.inf]
    if key.choices:
        bad.append(f"{key.choices[0]}_not")
    return bad


_BAD = [(key.name, value) for key in configs.KEYS for value in _bad_values(key)]
_EDGES = [(key.name, value) for key in configs.KEYS for value in _outside_and_inside(key)[1]]


@pytest.mark.parametrize("name,value", _BAD, ids=[f"{n}={v!r}" for n, v in _BAD])
def test_every_declared_key_refuses_its_bad_values_in_one_line_naming_it(name, value):
    with pytest.raises(ConfigError) as error:
        validate(_config(**{name: value}), 1)
    message = str(error.value)
    assert message.startswith(f"config.{name}=") and "allowed:" in message
    assert "\n" not in message


@pytest.mark.parametrize("name,value", _EDGES, ids=[f"{n}={v!r}" for n, v in _EDGES])
def test_the_values_at_each_bound_are_allowed_as_declared(name, value):
    validate(_config(**{name: value}), 1)


def test_every_key_of_base_is_declared_with_its_default():
    base = configs.base()
    assert sorted(key.name for key in configs.KEYS) == sorted(base.keys())
    for key in configs.KEYS:
        value = base[key.name]
        assert (value.to_dict() if key.type is dict else value) == key.default, key.name
        assert key.help and key.allowed()


def test_the_recipes_are_valid():
    validate(configs.cifar("cifar_attention92"), 8)
    validate(configs.imagenet("attention56"), 8)
    validate(configs.cifar_modern("cifar_attention92"), 4)
    validate(configs.quickstart(), 1)


_EXPERIMENTS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py")))


@pytest.mark.parametrize("path", _EXPERIMENTS, ids=os.path.basename)
def test_every_experiment_file_is_valid(path):
    spec = importlib.util.spec_from_file_location("experiment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    validate(module.get_config(), 1)


@pytest.mark.parametrize(
    "values,devices,message",
    [
        (dict(batch_size=6), 4, "config.batch_size=6 is not divisible by the 4 devices"),
        (dict(batch_size=64, accumulate_steps=64), 2, "config.accumulate_steps=64 does not divide"),
        (dict(accumulate_steps=3), 1, "each device's batch of 64 examples"),
        (dict(lr_boundaries=(2000, 100)), 1, "config.lr_boundaries=(2000, 100) is not strictly"),
        (dict(lr_boundaries=(100, 100)), 1, "config.lr_boundaries=(100, 100) is not strictly"),
        (dict(num_train_steps=50, warmup_steps=50), 1, "config.warmup_steps=50 is not below"),
        (dict(num_train_steps=50, mix_off_last_steps=51), 1, "config.mix_off_last_steps=51"),
        (dict(num_processes=2, process_id=2), 1, "config.process_id=2 is not below"),
        (dict(model="attention57"), 1, "config.model='attention57' is not a model; allowed: '"),
        (dict(model_overrides=dict(widths=(8, 8))), 1, "widths needs one value per stage"),
        (dict(model_overrides=dict(widht=8)), 1, "config.model_overrides={'widht': 8} does not"),
        (dict(batch_sise=3), 1, "config.batch_sise is not a config key; did you mean batch_size?"),
    ],
)
def test_rules_across_keys_are_one_line_naming_the_key(values, devices, message):
    with pytest.raises(ConfigError) as error:
        validate(_config(**values), devices)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_values_at_the_limits_of_the_rules_across_keys_are_allowed():
    validate(_config(batch_size=64, accumulate_steps=32), 2)
    validate(_config(num_train_steps=50, warmup_steps=49, mix_off_last_steps=50), 1)
    validate(_config(num_processes=2, process_id=1, lr_boundaries=(1, 2)), 1)


def test_a_missing_key_is_named():
    plain = configs.base().to_dict()
    del plain["momentum"]
    with pytest.raises(ConfigError, match="config has no key momentum"):
        validate(ml_collections.ConfigDict(plain), 1)


def test_learning_rate_boundaries_the_run_never_reaches_are_a_warning(caplog):
    validate(_config(num_train_steps=100, warmup_steps=10, lr_boundaries=(50, 90)), 1)
    (record,) = [r for r in caplog.records if "lr_boundaries" in r.getMessage()]
    assert "never reaches [90]" in record.getMessage()
