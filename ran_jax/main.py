r"""Trains a Residual Attention Network.

    python -m ran_jax.main --config=experiments/imagenet_att92.py --workdir=DIR
    python -m ran_jax.main --config=experiments/cifar10_att92.py --workdir=DIR \
        --config.batch_size=128 --config.parallelism=shard_map

Re-running the same command resumes from the latest checkpoint in ``DIR/checkpoints``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ran_jax import host_allocator  # noqa: E402

host_allocator.keep_freed_memory()  # before JAX starts its threads

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ran_jax import cli, input_pipeline, train  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with config file and key errors reduced to one clear line."""
    try:
        args = flags.FLAGS(argv)
        _CONFIG.value.model  # noqa: B018 - loads the config file now, so its errors surface here
        return args
    except flags.Error as e:
        sys.exit(f"error: {e}\nPass --helpshort for the flags.")
    except (OSError, AttributeError, KeyError, TypeError, ValueError) as e:
        message = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
        sys.exit(f"error: bad --config: {' '.join(message.split())}")


def main(argv: list[str]) -> None:
    logging.get_absl_handler().addFilter(cli.HideLibraryInfo())
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    config = _CONFIG.value
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
    try:
        train.train_and_evaluate(config, _WORKDIR.value)
    except (input_pipeline.DataNotFoundError, train.SetupError, train.NonFiniteError) as e:
        sys.exit(f"error: {e}")
    except input_pipeline.tf.errors.OpError as e:  # e.g. an image file truncated mid-way
        sys.exit(
            f"error: reading {config.dataset} failed: {e.message.splitlines()[0]} "
            f"Every checkpoint saved in {_WORKDIR.value} is kept; fix the data and re-run."
        )


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
