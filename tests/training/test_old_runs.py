"""A run directory written by an earlier ran_jax (``tests/testdata/run_v0_1_0``, made by the
flat package at commit 1277bc0: run.json, metrics.jsonl, checkpoints of steps 2 and 4) is
still evaluated and resumed by today's code, with the numbers that code gave."""

import importlib.util
import json
import os
import shutil

import jax
import numpy as np
import pytest

from helpers import TESTDATA
from ran_jax.data import input_pipeline
from ran_jax.training import loop, trained
from ran_jax.training.evaluation import evaluate_checkpoint

pytestmark = pytest.mark.slow  # old runs restored, evaluated and resumed

OLD_RUN = os.path.join(TESTDATA, "run_v0_1_0")
REFERENCE_JAX = "0.10.2"  # the JAX that wrote it


def _lines(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def _old_config(data_dir: str):
    spec = importlib.util.spec_from_file_location("old_config", os.path.join(OLD_RUN, "config.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(data_dir)


@pytest.fixture
def old_run(tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(OLD_RUN, workdir, ignore=shutil.ignore_patterns("*.py", "uninterrupted*"))
    return str(workdir)


def test_an_old_checkpoint_restores_and_evaluates_as_it_did(old_run, cluttered_digits_dir):
    run = trained.load(old_run, "latest")
    assert run.step == 4 and run.dataset.class_names == tuple("0123456789")
    assert run.dataset.normalisation == ((0.0,), (1.0,))  # read from the old run.json
    result = evaluate_checkpoint(
        old_run, input_pipeline.DataSet, "latest", data_dir=cluttered_digits_dir
    )
    logged = next(
        m
        for m in _lines(os.path.join(old_run, "metrics.jsonl"))
        if m["step"] == 4 and "eval_loss" in m
    )
    for key in ("eval_loss", "eval_top1", "eval_top5", "eval_localisation_stage1"):
        assert result[key] == pytest.approx(logged[key], rel=1e-6), key


def test_an_old_run_resumes_and_continues_as_it_would_have(old_run, cluttered_digits_dir):
    config = _old_config(cluttered_digits_dir)
    config.num_train_steps = 6
    state = loop.train_and_evaluate(config, old_run, input_pipeline.DataSet(config))
    assert int(state.step) == 6
    got = {
        (m["step"], k): v
        for m in _lines(os.path.join(old_run, "metrics.jsonl"))
        for k, v in m.items()
    }
    # What the old code logged when it trained the same config for 6 steps without a stop, on
    # jax 0.10.2. XLA's CPU code depends on the machine as well as on the JAX version, and the
    # difference grows with each step: on jax 0.10.2 the machine that wrote the reference
    # matched within 1e-6, another x86 machine (2026-12-06) 3.0e-6 in the step-6 loss and
    # 4.7e-5 in the step-6 evaluation loss with equal accuracies; jax 0.12.0.1 (Python 3.13)
    # measured 3.0e-6 and 5.4e-5. So the losses are checked within 2e-4 on the same JAX (4x
    # the largest difference seen) and the accuracies, which count a few examples, exactly;
    # on another JAX, the losses within 1e-3 and not the accuracies.
    same_jax = jax.__version__ == REFERENCE_JAX
    keys = ("train_loss", "train_accuracy", "eval_loss", "eval_top1")
    reference = _lines(os.path.join(OLD_RUN, "uninterrupted_steps_5_6.jsonl"))
    for line in reference:
        for key in keys if same_jax else keys[::2]:
            if key in line:
                np.testing.assert_allclose(
                    got[(line["step"], key)],
                    line[key],
                    rtol=(0 if "accuracy" in key or "top1" in key else 2e-4) if same_jax else 1e-3,
                )
