"""Real images: a small attention network learns Fashion-MNIST from the four official files
of Debian's package ``dataset-fashion-mnist``, and the command refuses damaged files in one
line. Skipped where the package is not installed (``.ci/run`` installs it where it can)."""

import gzip
import json
import os
import re
import shutil

import pytest
import tensorflow_datasets as tfds

from helpers import commands
from ran_jax import configs
from ran_jax.data import fashion_mnist, input_pipeline
from ran_jax.training import loop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not fashion_mnist.DEBIAN_DIR.is_dir(),
        reason=f"no Fashion-MNIST files in {fashion_mnist.DEBIAN_DIR}: "
        f"apt-get install {fashion_mnist.PACKAGE}",
    ),
]
STEPS = 200
# Top-1 on the first EVAL_EXAMPLES test images after STEPS steps of the network below: 63.75%
# with jax 0.10.2 and 67.45% with jax 0.12.1, measured 2026-12-07 on 2 CPU cores, against 10%
# for chance. The test asks for 50%, which leaves room for another XLA's rounding.
THRESHOLD = 0.50
EVAL_EXAMPLES = 2_000


def _config(data_dir: str):
    """CIFAR Attention-56 with 4-8 channel bottlenecks and one Attention Module, in the last
    stage (one in every stage learns as well in three times the CPU time: docs/performance.md,
    "End to end")."""
    c = configs.cifar("cifar_attention56", dataset="fashion_mnist")
    c.model_overrides.widths = (4, 8, 8)  # outputs 16/32/32 channels
    c.model_overrides.stem_width = 8
    c.model_overrides.modules = (0, 0, 1)
    c.data_dir, c.batch_size, c.num_train_steps = data_dir, 32, STEPS
    c.eval_examples = EVAL_EXAMPLES
    c.lr_schedule, c.warmup_steps, c.weight_decay = "cosine", 30, 5e-4
    c.log_every_steps = 100
    c.eval_every_steps = c.checkpoint_every_steps = STEPS
    c.attention_images = 0
    return c


def test_a_small_attention_network_learns_the_real_images(tmp_path):
    config = _config(str(tmp_path / "tfds"))
    workdir = str(tmp_path / "run")
    data = loop.open_data(config, workdir, input_pipeline.DataSet)
    assert (data.info.num_train, data.info.num_eval) == (60_000, EVAL_EXAMPLES)
    prepared = tfds.builder("fashion_mnist", data_dir=config.data_dir).info.splits
    assert (prepared["train"].num_examples, prepared["test"].num_examples) == (60_000, 10_000)
    assert data.info.class_names[0] == "T-shirt/top" and data.info.augmentation == "pad_crop_flip"
    loop.train_and_evaluate(config, workdir, data)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        (final,) = [m for m in map(json.loads, f) if "eval_top1" in m]
    assert final["step"] == STEPS and final["eval_top1"] >= THRESHOLD, final
    # the garment's pixels give the attention localisation score (docs/data.md)
    assert final["eval_localisation_stage3"] > 0


DAMAGES = {
    "truncated gzip": (
        lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(
            (d / "t10k-labels-idx1-ubyte.gz").read_bytes()[:-200]
        ),
        "t10k-labels-idx1-ubyte.gz",
    ),
    "swapped files": (
        lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
            (d / "train-images-idx3-ubyte.gz").read_bytes()
        ),
        "train-labels-idx1-ubyte.gz",
    ),
    "short of images": (
        lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(gzip.open(d / "t10k-images-idx3-ubyte.gz").read()[: 16 + 784 * 9000])
        ),
        "t10k-images-idx3-ubyte.gz",
    ),
}


def _damaged(tmp_path, kind: str) -> str:
    """A tfds data_dir whose manual folder holds the four files, one damaged as ``kind``
    says; returns the name of the file the error must give."""
    manual = tmp_path / "tfds" / "downloads" / "manual"
    shutil.copytree(fashion_mnist.DEBIAN_DIR, manual)
    damage, message = DAMAGES[kind]
    damage(manual)
    return message


def _assert_nothing_written(tmp_path):
    assert not (tmp_path / "run").exists()
    assert sorted(p.name for p in (tmp_path / "tfds").iterdir()) == ["downloads"]


def test_the_command_refuses_a_damaged_file_in_one_line_with_nothing_written(tmp_path):
    message = _damaged(tmp_path, "truncated gzip")
    result = commands.run(
        "main",
        "--config=experiments/fashion_mnist_budget.py",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data_dir={tmp_path / 'tfds'}",
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr[-2000:]
    assert message in errors[0] and "dataset-fashion-mnist" in errors[0]
    assert "Traceback" not in result.stderr
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("kind", ["swapped files", "short of images"])
def test_other_damage_is_refused_in_one_line_with_nothing_written(tmp_path, kind):
    """The command's own check (``loop.open_data``, whose one-line error the command prints,
    as the test above shows), here in this process."""
    message = _damaged(tmp_path, kind)
    config = _config(str(tmp_path / "tfds"))
    with pytest.raises(loop.SetupError, match=re.escape(message)) as error:
        loop.open_data(config, str(tmp_path / "run"), input_pipeline.DataSet)
    assert "\n" not in str(error.value) and "dataset-fashion-mnist" in str(error.value)
    _assert_nothing_written(tmp_path)
