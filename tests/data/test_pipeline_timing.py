"""The input-pipeline benchmark: a JSON-ready report per dataset, and clear errors."""

import json
import subprocess
import sys

import pytest

from ran_jax.data import pipeline_timing as pb

KEYS = {"dataset", "batch_size", "image_size", "images_per_second", "seconds", "batches"}


@pytest.mark.parametrize(
    "dataset,image_size,sources",
    [("cifar10", 32, ["32x32"]), ("imagenet2012", 48, ["333x500", "375x500", "500x375"])],
)
def test_benchmark_times_the_training_batches_of_realistic_sources(dataset, image_size, sources):
    config = pb.make_config(dataset, batch_size=4, image_size=image_size)
    config.shuffle_buffer = 16  # The recipes' buffers would hold thousands of mock images.
    r = json.loads(json.dumps(pb.benchmark(config, batches=2, warmup=1)))
    assert KEYS <= r.keys() and r["images_per_second"] > 0 and r["seconds"] > 0
    assert (r["dataset"], r["batch_size"], r["image_size"], r["batches"]) == (
        dataset,
        4,
        image_size,
        2,
    )
    assert r["source_sizes"] == sources
    if dataset == "imagenet2012":  # About the size of an ImageNet JPEG, so decoding costs as much.
        assert r["source_format"] == "jpeg" and 60_000 < r["source_mean_bytes"] < 160_000


@pytest.mark.parametrize(
    "args,message",
    [
        (("mnist",), "Unknown dataset 'mnist'; valid choices are: 'cifar10', 'imagenet2012'."),
        (("cifar10", None, 64), "--image_size applies to imagenet2012 only"),
        (("imagenet2012", 0), "batch_size and image_size must be positive, got 0 and 224"),
    ],
)
def test_bad_settings_raise_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        pb.make_config(*args)


@pytest.mark.slow
def test_a_bad_flag_is_one_error_line():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ran_jax.pipeline_benchmark",
            "--dataset=imagenet2012",
            "--warmup=-1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "error: batches must be >= 1 and warmup >= 0, got 50 and -1." in proc.stderr
