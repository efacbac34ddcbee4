r"""Trains a Residual Attention Network.

    python -m ran_jax.main --config=experiments/imagenet_att92.py --workdir=DIR
    python -m ran_jax.main --config=experiments/cifar10_att92.py --workdir=DIR \
        --config.batch_size=128 --config.parallelism=shard_map

Re-running the same command resumes from the latest checkpoint in ``DIR/checkpoints``
(``training/loop.py``; ``docs/training.md``).
"""

from __future__ import annotations

import os
import sys
import traceback

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from ran_jax import cli
from ran_jax.analysis.pictures import AttentionPictures
from ran_jax.data.info import DataNotFoundError, DataReadError
from ran_jax.training import host_allocator, loop


def _define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string(
        "workdir", None, "Directory for checkpoints and metrics.", flag_values=flag_values
    )
    config_flags.DEFINE_config_file(
        "config", None, "Experiment file.", flag_values=flag_values, lock_config=True
    )
    flags.mark_flags_as_required(["config", "workdir"], flag_values=flag_values)


def _config_path(argv: list[str]) -> str | None:
    """The experiment file named by ``--config=PATH[:ARGUMENTS]`` in ``argv``."""
    for i, arg in enumerate(argv):
        name, has_value, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "config":
            if not has_value and i + 1 < len(argv):
                value = argv[i + 1]
            return value.split(":", 1)[0]
    return None


def _raised_in_config(error: BaseException, path: str | None) -> str | None:
    """``PATH, line N: Type: message`` of the first exception in ``error``'s chain that a line
    of the experiment file ``path`` raised (or called into); None if there is none."""
    target = os.path.realpath(path) if path else None
    seen = set()
    while target and error is not None and id(error) not in seen:
        seen.add(id(error))
        frames = traceback.extract_tb(error.__traceback__)
        lines = [f.lineno for f in frames if os.path.realpath(f.filename) == target]
        if lines:
            message = " ".join(str(error).split())
            return f"{path}, line {lines[-1]}: {type(error).__name__}: {message}"
        error = error.__cause__ or error.__context__
    return None


def _parse_flags(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """absl's flag parsing, with config file and key errors reduced to one clear line."""
    try:
        args = flag_values(argv)
        flag_values.config.model  # noqa: B018 - loads the config file now, so its errors surface
        return args
    except SyntaxError as e:
        sys.exit(f"error: bad --config: {e.msg} in {e.filename}, line {e.lineno}")
    except Exception as e:  # whatever the experiment file raises while it loads: one line
        where = _raised_in_config(e, _config_path(argv))
        if where:
            sys.exit(f"error: bad --config: {where}")
        loaded = flag_values["config"]
        if isinstance(e, flags.Error) and loaded.present and loaded.value is None:
            sys.exit(f"error: bad --config: {_config_path(argv)}: get_config() returned None.")
        if isinstance(e, flags.Error):
            sys.exit(f"error: {' '.join(str(e).split())} (--helpshort lists the flags)")
        if not isinstance(e, (OSError, AttributeError, KeyError, TypeError, ValueError)):
            raise
        message = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
        sys.exit(f"error: bad --config: {' '.join(message.split())}")


def main(argv: list[str]) -> None:
    host_allocator.keep_freed_memory()  # before JAX creates its CPU client
    logging.get_absl_handler().addFilter(cli.HideLibraryInfo())
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    if config.distributed or config.coordinator_address:
        jax.distributed.initialize(
            config.coordinator_address, config.num_processes, config.process_id
        )
    logging.info(
        "JAX %s: process %d of %d, %d devices (%s).",
        jax.__version__,
        jax.process_index(),
        jax.process_count(),
        jax.device_count(),
        jax.devices()[0].platform,
    )
    train(config, workdir)


def train(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Opens the data set, then trains and evaluates (``training/loop.py``). Bad input, a
    failed check or a non-finite step ends the program with one line, ``error: ...``."""
    try:
        data = loop.open_data(config, workdir, cli.open_data)
        evaluators = [AttentionPictures(data, config.attention_images)]
        loop.train_and_evaluate(config, workdir, data, evaluators)
    except (DataNotFoundError, loop.SetupError, loop.NonFiniteError) as e:
        sys.exit(f"error: {e}")
    except DataReadError as e:  # e.g. an image file truncated mid-way
        sys.exit(
            f"error: {e} Every checkpoint saved in {workdir} is kept; fix the data and re-run."
        )
    except KeyboardInterrupt:  # before the loop's own Ctrl-C handling began
        print("Interrupted before training started; nothing was saved.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    _define_flags()
    app.run(main, flags_parser=_parse_flags)
