"""The step benchmark runs the training code path and reports consistent figures."""

import pytest

from helpers import TINY
from ran_jax.training import step_benchmark

KEYS = {
    "model",
    "batch_size",
    "image_size",
    "dtype",
    "mode",
    "compile_seconds",
    "step_seconds_median",
    "images_per_second",
}


# The train step's compile takes seconds: the full suite's; eval keeps the module in the fast tier.
@pytest.mark.parametrize("mode", [pytest.param("train", marks=pytest.mark.slow), "eval"])
def test_figures_are_consistent(mode):
    r = step_benchmark.run(
        "cifar_attention56", 8, 16, mode=mode, steps=3, warmup=1, model_overrides=TINY
    )
    assert KEYS <= r.keys()
    assert (r["model"], r["batch_size"], r["image_size"], r["mode"]) == (
        "cifar_attention56",
        8,
        16,
        mode,
    )
    assert r["compile_seconds"] > 0
    assert 0 < r["step_seconds_min"] <= r["step_seconds_median"] <= r["step_seconds_max"]
    assert r["images_per_second"] == pytest.approx(8 / r["step_seconds_median"])
    flops = (6 if mode == "train" else 2) * r["macs_per_image"] * r["images_per_second"]
    assert r["achieved_tflops"] == pytest.approx(flops / 1e12)
    assert r["peak_tflops"] is None and r["fraction_of_peak"] is None  # CPU: peak unknown
    assert r["xla_temp_bytes"] > 0 and r["host_peak_rss_bytes"] > 0


def test_peak_table_matches_device_kinds():
    assert step_benchmark.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.0
    assert step_benchmark.peak_tflops("NVIDIA A100-SXM4-40GB", "float32") == 156.0
    assert step_benchmark.peak_tflops("TPU v5 lite", "bfloat16") == 197.0
    assert step_benchmark.peak_tflops("cpu", "float32") is None
