"""The study runner of ``reproduce`` (paper section 4.1): grids, a smoke run of two tiny
runs, linked twins, diverged runs and the tables."""

import json
import os

import pytest

from ran_jax.data import input_pipeline
from ran_jax.training import loop, studies


def test_study_grids_mirror_the_paper():
    assert [c.name for c in studies.STUDIES["arl_vs_nal"]] == [
        f"{k}_m{m}" for m in (1, 2, 3, 4) for k in ("ARL", "NAL")
    ]
    assert {c.name: c.paper for c in studies.STUDIES["mask_type"]} == {
        "soft": 5.52,
        "local": 6.48,
    }
    assert len(studies.STUDIES["noisy_labels"]) == 8
    with pytest.raises(ValueError, match="Unknown --study 'depth'"):
        studies.run_study("depth", "/tmp/unused", input_pipeline.DataSet)


def test_reproduce_runs_a_study_once_then_skips_finished_runs(tmp_path, cluttered_digits_dir):
    data_dir = cluttered_digits_dir  # prepared once per test session (conftest.py)
    workdir = str(tmp_path / "studies")
    first = studies.run_study(
        "mask_type", workdir, input_pipeline.DataSet, seeds=1, smoke=True, data_dir=data_dir
    )
    assert first["trained_now"] == 2
    assert [(r["cell"], r["runs"]) for r in first["rows"]] == [("soft", 1), ("local", 1)]
    assert all(0 <= r["mean"] <= 100 and r["std"] is None for r in first["rows"])
    again = studies.run_study(
        "mask_type", workdir, input_pipeline.DataSet, seeds=1, smoke=True, data_dir=data_dir
    )
    assert again["trained_now"] == 0 and again["rows"] == first["rows"]
    table = open(os.path.join(workdir, "mask_type", "results.md")).read()
    assert "| soft | 1 |" in table and "| local | 1 |" in table and "6.48" in table
    assert os.path.getsize(os.path.join(workdir, "mask_type", "results.png")) > 5_000
    # the soft-mask run is also ARL with one module per stage: linked, not trained again
    shared = studies.run_study(
        "arl_vs_nal",
        workdir,
        input_pipeline.DataSet,
        seeds=1,
        max_runs=0,
        smoke=True,
        data_dir=data_dir,
    )
    rows = {r["cell"]: r for r in shared["rows"]}
    assert shared["trained_now"] == 0 and rows["NAL_m1"]["runs"] == 0
    assert rows["ARL_m1"]["errors"] == first["rows"][0]["errors"]
    link = os.path.join(workdir, "arl_vs_nal", "ARL_m1", "seed0")
    assert os.readlink(link) == os.path.join("..", "..", "mask_type", "soft", "seed0")
    # local masks have no pooling: the run really trained the ablation
    config = studies.run_config(
        studies.study_config(True), studies.STUDIES["mask_type"][1], 0, None
    )
    assert config.model_overrides.mask_type == "local" and config.seed == 0


def test_a_diverged_run_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    calls = []

    def diverge(config, workdir, data):
        calls.append(workdir)
        os.makedirs(workdir)
        raise loop.NonFiniteError("Non-finite loss or gradient at step 1; no checkpoint.")

    monkeypatch.setattr(loop, "train_and_evaluate", diverge)
    first = studies.run_study(
        "mask_activation", str(tmp_path), input_pipeline.DataSet, seeds=1, smoke=True
    )
    assert len(calls) == first["trained_now"] == 3  # every cell was tried
    assert [(r["runs"], r["diverged"]) for r in first["rows"]] == [(0, 1)] * 3
    assert (
        "| spatial | 0 | – | diverged |"
        in (tmp_path / "mask_activation" / "results.md").read_text()
    )
    again = studies.run_study(
        "mask_activation", str(tmp_path), input_pipeline.DataSet, seeds=1, smoke=True
    )
    assert again["trained_now"] == 0 and len(calls) == 3  # a diverged run is a result


def test_study_tables_leave_out_the_localisation_of_signed_channel_masks(tmp_path):
    line = {"step": 10, "eval_top1": 0.9, "eval_localisation_stage1": 5.6}
    for cell in ("mixed", "channel"):
        (tmp_path / cell / "seed0").mkdir(parents=True)
        (tmp_path / cell / "seed0" / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    rows = {r["cell"]: r for r in studies.collect("mask_activation", str(tmp_path), 1, 10)}
    assert rows["mixed"]["localisation"] == 5.6 and rows["channel"]["localisation"] is None
    assert rows["channel"]["errors"] == pytest.approx([10.0])
