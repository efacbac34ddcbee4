"""benchmarks/accelerator_suite.py: its --tiny dry run records every case, and its summary.

The suite is what a GPU machine runs (docs/performance.md); these tests run it at toy sizes on
the CPU, with TensorFlow blocked as a GPU image without it would have, so it cannot rot.
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from helpers import ROOT

SUITE = os.path.join(ROOT, "benchmarks", "accelerator_suite.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))  # where its package, gpu_suite, lies
grid, measure, store, report, command = (
    importlib.import_module(f"gpu_suite.{name}")
    for name in ("cases", "measure", "records", "report", "run")
)

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="PyTorch is not installed; the suite's dry run needs it for its PyTorch peer: "
    "pip install -e '.[test-torch]' (a CPU build is enough)",
)


def _run(out, *flags, **env):
    return subprocess.run(
        [sys.executable, SUITE, f"--out={out}", *flags],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, **env),
        cwd=ROOT,
        timeout=900,
    )


def _records(out):
    return [json.loads(line) for line in (out / store.RESULTS).read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    proc = _run(out, "--tiny")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout, {r["case"]: r for r in _records(out)}


def test_cases_are_unique_ordered_and_paired():
    full = grid.cases(grid.FULL)
    names = [c.name for c in full]
    assert len(names) == len(set(names)) == 46
    kinds = [c.kind for c in full]
    order = ["pytest", "compare", "jax", "torch", "pipeline"]  # the order
    assert kinds == sorted(kinds, key=order.index)
    assert names[4] == "train/attention56/224/b256/jax"
    peers = {(c.peer_key, c.impl) for c in full if c.kind == "torch"}
    for c in full:
        if c.impl == "jax":  # remat and pmap runs have no PyTorch twin
            assert {(c.peer_key, "torch-eager"), (c.peer_key, "torch-compile")} <= peers
    tiny = [c.name for c in grid.cases(grid.TINY)]
    assert len(tiny) == len(set(tiny)) == 20
    assert [c.name for c in grid.select(full, "train/cifar*/b1024/*,pipeline/*")] == [
        "train/cifar_attention92/32/b1024/jax",
        "train/cifar_attention92/32/b1024/torch-eager",
        "train/cifar_attention92/32/b1024/torch-compile",
        "pipeline/imagenet2012",
        "pipeline/cifar10",
    ]


def test_estimates_come_from_priors_then_from_measured_cases():
    a56, a92 = (
        grid._speed("train", m, 224, 256, "jax", 60) for m in ("attention56", "attention92")
    )
    assert grid.estimate(a56, {}, tiny=False) == 60
    assert grid.estimate(a56, {a56.family: 20.0}, tiny=False) == 20.0
    assert grid.estimate(a92, {a56.family: 20.0}, tiny=False) == pytest.approx(26.0)
    assert grid.estimate(a92, {a56.family: 20.0}, tiny=True) == 0  # --tiny runs everything


def test_summary_gives_ratios_targets_and_the_rerun(tmp_path):
    def speed(case, framework, ips, **extra):
        mode, model, size, batch, impl = case.split("/")
        return {
            "case": case, "kind": "jax" if impl.startswith("jax") else "torch",
            "framework": framework, "mode": mode, "model": model, "image_size": int(size),
            "batch_size": int(batch[1:]), "remat": impl == "jax-remat",
            "parallelism": "shard_map", "status": "ok", "images_per_second": ips,
            "step_seconds_median": 0.1, "step_seconds_min": 0.1, "step_seconds_max": 0.1,
            "compile_seconds": 9.0, "mfu": 0.2, "params": 10, **extra,
        }  # fmt: skip

    a56 = "train/attention56/224/b256"
    c92 = "train/cifar_attention92/32/b1024"
    records = [
        {"case": "environment", "kind": "environment", "nvidia_smi": "NVIDIA H200"},
        {"case": "correctness/pytest", "kind": "pytest", "status": "passed"},
        speed(f"{a56}/jax", "jax", 5000.0),
        speed(f"{a56}/torch-eager", "pytorch-eager", 2000.0),
        speed(f"{a56}/torch-compile", "pytorch-compile", 4000.0),
        speed(f"{c92}/jax", "jax", 30000.0),
        speed(f"{c92}/torch-eager", "pytorch-eager", 40000.0, params=11),
        {"case": f"{c92}/torch-compile", "kind": "torch", "status": "skipped", "reason": "budget"},
        {
            "case": "train/attention92/224/b256/jax",
            "kind": "jax",
            "status": "error",
            "error": "OOM",
        },
    ]
    (tmp_path / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in records))
    s = report.write_summary(tmp_path, tiny=False, budget_s=300.0, elapsed=12.0)
    rows = {r["case"]: r for r in s["speed"]}
    assert rows[f"{a56}/jax"]["ratio_vs_pytorch-eager"] == 2.5
    assert rows[f"{a56}/jax"]["ratio_vs_pytorch-compile"] == 1.25
    assert rows[f"{c92}/jax"]["ratio_vs_pytorch-eager"] == 0.75
    assert rows[f"{c92}/jax"]["ratio_vs_pytorch-compile"] is None
    assert s["params_mismatch"] == [f"{c92}/jax"]
    # 5,000 images/s; 1.25x torch.compile; cifar's compiled peer skipped; 0.75x eager.
    assert [t["met"] for t in s["targets"]] == [True, True, None, False]
    assert s["rerun_cases"] == f"{c92}/torch-compile,train/attention92/224/b256/jax"
    md = (tmp_path / store.SUMMARY_MD).read_text()
    assert "| train/attention56/224/b256/jax | 5,000 |" in md
    assert "--cases=train/cifar_attention92/32/b1024/torch-compile," in md

    # A later run measures the missing peer; --summarize merges the two, the later one winning.
    later = tmp_path / "later"
    later.mkdir()
    peer = speed(f"{c92}/torch-compile", "pytorch-compile", 20000.0, params=10)
    (later / store.RESULTS).write_text(json.dumps(peer) + "\n")
    merged = tmp_path / "merged"
    command.main(["--summarize", str(tmp_path), str(later), f"--out={merged}"])
    s = json.loads((merged / store.SUMMARY_JSON).read_text())
    assert {r["case"]: r for r in s["speed"]}[f"{c92}/jax"]["ratio_vs_pytorch-compile"] == 1.5
    assert s["rerun_cases"] == "train/attention92/224/b256/jax"


def test_budget_stops_the_running_case_and_skips_the_rest(tmp_path):
    start = time.time()
    proc = _run(tmp_path, "--tiny", "--budget_s=2", "--cases=train/attention56/*/jax*")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.time() - start < 60
    by_case = {r["case"]: r for r in _records(tmp_path)}
    first, *rest = [c.name for c in grid.select(grid.cases(grid.TINY), "train/attention56/*/jax*")]
    assert by_case[first]["status"] == "error"
    assert by_case[first]["error"].startswith("stopped at the budget")
    assert rest and all(by_case[n]["status"] == "skipped" for n in rest)
    assert json.loads((tmp_path / store.SUMMARY_JSON).read_text())["counts"] == {
        "error": 1,
        "skipped": len(rest),
    }


def test_a_worker_that_dies_costs_its_case_and_a_new_one_runs_the_rest(tmp_path):
    # XLA aborts the process at its first computation on an unknown flag.
    proc = _run(
        tmp_path, "--tiny", "--cases=eval/attention56/*/jax", XLA_FLAGS="--xla_not_a_real_flag"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [r for r in _records(tmp_path) if r["case"] != "environment"]
    assert [r["case"] for r in records] == [
        "eval/attention56/32/b2/jax",
        "eval/attention56/40/b2/jax",
    ]
    for r in records:
        assert r["status"] == "error"
        assert r["error"].startswith("the worker died (exit status")
        assert "xla_not_a_real_flag" in r["error"]  # the last line it printed


def test_a_case_whose_estimate_does_not_fit_is_skipped_without_running(tmp_path):
    proc = _run(tmp_path, "--budget_s=30", "--cases=train/attention92/224/b256/jax")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = [r for r in _records(tmp_path) if r["case"] != "environment"]
    assert record["status"] == "skipped"
    assert record["reason"].startswith("budget: needs about 90 s")  # the prior, on an H200


def test_pipeline_case_measures_this_host_where_tensorflow_is_there():
    r = measure.pipeline_case("cifar10", 8, 2, 1, train_images_per_second=1e6)
    assert r["images_per_second"] > 0 and r["per_core_images_per_second"] > 0
    assert r["cores_needed"] == -(-1e6 // r["per_core_images_per_second"])


@pytest.mark.slow
@needs_torch
def test_tiny_run_records_every_case_with_its_figures(tiny_run):
    out, stdout, by_case = tiny_run
    names = [c.name for c in grid.cases(grid.TINY)]
    assert set(by_case) == {"environment", *names}
    assert len((out / store.RESULTS).read_text().splitlines()) == len(names) + 1
    env = by_case["environment"]
    assert env["tensorflow_importable"] is False and env["tiny"] is True
    for name in names:
        r = by_case[name]
        assert r["tiny"] is True and r["versions"]["jax"], name
        if name.startswith("pipeline/"):  # blocked TensorFlow, as on the device machine
            assert r["status"] == "skipped" and r["reason"] == "no TensorFlow on this machine"
            assert r["per_core_images_per_second"] > 0 and r["cores_needed"] >= 1
        elif name.startswith("correctness/"):
            assert r["status"] == "passed", r
        else:
            assert r["status"] == "ok", r
            assert r["images_per_second"] > 0 and r["step_seconds_median"] > 0, name
            assert r["batch_size"] in (2, 4) and r["dtype"] == "bfloat16"
    assert by_case["correctness/pytest"]["tests"] > 0
    assert by_case["correctness/pytest"]["tensorflow"] == "blocked"
    jax_record = by_case["train/attention56/32/b2/jax-remat"]
    assert jax_record["remat"] is True and jax_record["xla_step_bytes"] > 0
    assert by_case["train/attention56/32/b2/jax-pmap"]["parallelism"] == "pmap"
    compiled = by_case["eval/attention56/32/b2/torch-compile"]
    assert (compiled["framework"], compiled["compile_backend"]) == ("pytorch-compile", "aot_eager")
    assert by_case["train/attention56/32/b2/torch-eager"]["memory_format"] == "channels_last"

    summary = json.loads((out / store.SUMMARY_JSON).read_text())
    paired = [r for r in summary["speed"] if r["case"].endswith("/jax")]
    assert len(paired) == len([n for n in names if n.endswith("/jax")]) == 4
    for r in paired:
        assert r["ratio_vs_pytorch-eager"] > 0 and r["ratio_vs_pytorch-compile"] > 0, r
        assert r["params_match"] is True, r
    assert summary["rerun_cases"] == ""
    assert "accelerator suite --tiny:" in stdout.splitlines()[-1]
