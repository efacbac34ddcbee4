"""The summary command: table, JSON line and clear errors."""

import json
import subprocess
import sys

import pytest

from ran_jax.summary import summarize


def test_summary_json_line_has_the_documented_keys():
    proc = subprocess.run(
        [sys.executable, "-m", "ran_jax.summary", "--model=cifar_attention92", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.strip().splitlines()
    assert "cifar_attention92" in lines[0] and "1,841,242" in proc.stdout
    s = json.loads(lines[-1])
    assert {k: s[k] for k in ("model", "params", "batch_stats", "macs", "output_shape")} == {
        "model": "cifar_attention92",
        "params": 1_841_242,
        "batch_stats": 27_040,
        "macs": 211_913_216,
        "output_shape": [1, 10],
    }


def test_summary_takes_num_classes_and_image_size():
    s = summarize("attention56", num_classes=100, image_size=320)
    assert s["output_shape"] == [1, 100]
    # 320 -> 10x10 final map (docs/faithfulness.md §4.6)
    assert s["stage_shapes"]["stage4"] == [1, 10, 10, 2048]
    assert s["params"] == 31_810_728 - 2048 * 900 - 900


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model=attention57"], "error: Unknown model 'attention57'; valid choices are:"),
        (
            ["--model=attention56", "--image_size=20"],
            "20x20 are too small for attention56; its smallest input is 31x31",
        ),
    ],
)
def test_summary_errors_are_one_clear_line(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "ran_jax.summary", *args], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
