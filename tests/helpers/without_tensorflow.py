"""Runs the TensorFlow-free core with TensorFlow and tensorflow-datasets unimportable.

    python tests/helpers/without_tensorflow.py WORKDIR -- BENCHMARK_FLAGS...

Imports every module that must not need TensorFlow, trains 2 steps of a tiny network on
synthetic batches with the real training loop (checkpoints, metrics, evaluation), then runs
``python -m ran_jax.benchmark`` with the given flags. Prints one JSON line last.
"""

import importlib
import json
import os
import runpy
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from helpers import TINY

# As if they were not installed: ``import`` raises ModuleNotFoundError and
# ``importlib.util.find_spec`` (which libraries use to probe for TensorFlow) returns None.
for name in ("tensorflow", "tensorflow_datasets"):
    sys.modules[name] = None

# The core: everything outside data/ except the commands that read data or export.
TENSORFLOW_FREE = (
    "ran_jax.configs",
    "ran_jax.checks",
    "ran_jax.cli",
    "ran_jax.summary",
    "ran_jax.data.info",
    "ran_jax.models",
    "ran_jax.models.complexity",
    "ran_jax.analysis.attention_maps",
    "ran_jax.analysis.pictures",
    "ran_jax.training.checkpointing",
    "ran_jax.training.config_check",
    "ran_jax.training.evaluation",
    "ran_jax.training.host_allocator",
    "ran_jax.training.inference",
    "ran_jax.training.loop",
    "ran_jax.training.metric_writer",
    "ran_jax.training.model",
    "ran_jax.training.optimizer",
    "ran_jax.training.parallel",
    "ran_jax.training.recipes",
    "ran_jax.training.run_file",
    "ran_jax.training.state",
    "ran_jax.training.step_benchmark",
    "ran_jax.training.steps",
    "ran_jax.training.studies",
    "ran_jax.training.trained",
)


class SyntheticData:
    """A data source (``data.info.DataSource``) of random 16x16 images in 10 classes."""

    def __init__(self, batch_size):
        from ran_jax.data.info import DatasetInfo

        self.batch_size = batch_size
        self.info = DatasetInfo(
            "synthetic", 10, 16, 3, 64, 8, "train", "test", 16, tuple("0123456789"),
            ((0.5,) * 3, (0.25,) * 3), "pad_crop_flip",
        )  # fmt: skip

    def train_batches(self, start_step=0):
        rng = np.random.default_rng(start_step)
        while True:
            yield {
                "image": rng.normal(size=(self.batch_size, 16, 16, 3)).astype(np.float32),
                "label": rng.integers(0, 10, self.batch_size).astype(np.int32),
            }

    def eval_batches(self, batch_size=None, num_examples=None):
        batch = next(self.train_batches())
        yield {**batch, "mask": np.ones(self.batch_size, bool)}


def main(workdir: str, *benchmark_flags: str) -> None:
    for name in TENSORFLOW_FREE:
        importlib.import_module(name)
    from ran_jax import configs
    from ran_jax.training import loop

    config = configs.base()
    config.model_overrides.update(TINY)
    config.batch_size, config.num_train_steps = 4, 2
    config.eval_every_steps = config.checkpoint_every_steps = config.log_every_steps = 2
    state = loop.train_and_evaluate(config, workdir, SyntheticData(config.batch_size))
    sys.argv = ["ran_jax.benchmark", *benchmark_flags]
    try:
        runpy.run_module("ran_jax.benchmark", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code:
            raise
    print(json.dumps({"imported": len(TENSORFLOW_FREE), "trained_steps": int(state.step)}))


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[3:])
