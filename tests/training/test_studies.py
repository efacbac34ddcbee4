"""The study runner of ``reproduce`` (paper section 4.1): grids, a smoke run of one tiny
run, skipped and linked runs, diverged runs and the tables."""

import json
import os

import pytest

from ran_jax.data import input_pipeline
from ran_jax.models import get_model
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


class _Trained(Exception):
    """Raised by a stand-in for the training loop: which run the runner picked."""


@pytest.mark.slow
def test_reproduce_runs_a_study_once_then_skips_finished_runs(
    tmp_path, cluttered_digits_dir, monkeypatch
):
    data_dir = cluttered_digits_dir  # prepared once per test session (conftest.py)
    workdir = str(tmp_path / "studies")

    def study(name, max_runs):
        return studies.run_study(
            name,
            workdir,
            input_pipeline.DataSet,
            seeds=1,
            max_runs=max_runs,
            smoke=True,
            data_dir=data_dir,
        )

    first = study("mask_type", max_runs=1)  # one real run: the soft mask
    assert first["trained_now"] == 1
    assert [(r["cell"], r["runs"]) for r in first["rows"]] == [("soft", 1), ("local", 0)]
    assert 0 <= first["rows"][0]["mean"] <= 100 and first["rows"][0]["std"] is None
    table = open(os.path.join(workdir, "mask_type", "results.md")).read()
    assert "| soft | 1 |" in table and "| local | 0 |" in table and "6.48" in table
    assert os.path.getsize(os.path.join(workdir, "mask_type", "results.png")) > 5_000

    def picked(config, run_dir, data):
        raise _Trained(run_dir, config.model_overrides.mask_type, config.seed)

    # run again, the finished soft-mask run is skipped and the local-mask run is next; it
    # really is the ablation (local masks have no pooling)
    with monkeypatch.context() as m:
        m.setattr(loop, "train_and_evaluate", picked)
        with pytest.raises(_Trained) as next_run:
            study("mask_type", max_runs=None)
    local = os.path.join(workdir, "mask_type", "local", "seed0")
    assert next_run.value.args == (local, "local", 0)
    again = study("mask_type", max_runs=0)
    assert again["trained_now"] == 0 and again["rows"] == first["rows"]
    # the soft-mask run is also ARL with one module per stage: linked, not trained again
    shared = study("arl_vs_nal", max_runs=0)
    rows = {r["cell"]: r for r in shared["rows"]}
    assert shared["trained_now"] == 0 and rows["NAL_m1"]["runs"] == 0
    assert rows["ARL_m1"]["errors"] == first["rows"][0]["errors"]
    link = os.path.join(workdir, "arl_vs_nal", "ARL_m1", "seed0")
    assert os.readlink(link) == os.path.join("..", "..", "mask_type", "soft", "seed0")


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


def test_fashion_mnist_studies_train_the_papers_cifar_networks_at_a_width_fraction(tmp_path):
    setting, width = studies.setting_of("fashion_mnist", None)
    assert width == setting.width == 0.25
    base = setting.config(width)
    assert base.dataset == "fashion_mnist" and base.model_overrides.widths == (4, 8, 16)
    assert base.eval_every_steps == base.num_train_steps  # one evaluation, at the end
    for cell in studies.STUDIES["arl_vs_nal"]:
        config = studies.run_config(setting, base, cell, 1, None)
        model = get_model(config.model, 10, **config.model_overrides)
        # Attention-56/92/128/164 are m = 1-4 modules per stage, stages at 28, 14, 7 pixels
        assert model.stem == "cifar" and [s.num_modules for s in model.stages] == [cell.modules] * 3
        assert [s.stride for s in model.stages] == [1, 2, 2] and config.seed == 1
        assert [s.width for s in model.stages] == [4, 8, 16]
    resnet = next(c for c in studies.STUDIES["noisy_labels"] if c.name == "resnet_noise30")
    config = studies.run_config(setting, base, resnet, 0, None)
    model = get_model(config.model, 10, **config.model_overrides)
    # the paper's baseline: pre-activation ResNet-164 (18 units per stage) at the same width
    assert config.model == "preact_resnet164" and config.label_noise == 0.3
    assert [(s.num_modules, s.units_before, s.width) for s in model.stages] == [
        (0, 18, 4),
        (0, 18, 8),
        (0, 18, 16),
    ]
    # the cluttered-digits studies stay where they were; other settings get a folder
    assert setting.directory(str(tmp_path), 0.5) == str(tmp_path / "fashion_mnist_width0.5")
    clutter = studies.SETTINGS["cluttered_digits"]
    assert clutter.directory(str(tmp_path), None) == str(tmp_path)
    assert studies.run_config(clutter, clutter.config(None), resnet, 0, None).model_overrides[
        "modules"
    ] == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "dataset, width, message",
    [
        ("cluttered_digits", 0.5, "--width applies to the CIFAR networks of --dataset=fashion"),
        ("fashion_mnist", 0.0, "--width must be in (0, 4]"),
        ("fashion_mnist", 5.0, "--width must be in (0, 4]"),
        ("mnist", None, "Unknown --dataset 'mnist'"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_is_written(tmp_path, dataset, width, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        studies.run_study(
            "mask_type", str(tmp_path), input_pipeline.DataSet, dataset=dataset, width=width
        )
    assert list(tmp_path.iterdir()) == []


def test_a_run_stopped_by_a_signal_stops_the_study(tmp_path, monkeypatch):
    calls = []

    def stopped(config, workdir, data):  # returns early, as after SIGTERM or Ctrl-C
        calls.append(workdir)
        os.makedirs(workdir)

    monkeypatch.setattr(loop, "train_and_evaluate", stopped)
    result = studies.run_study(
        "mask_activation", str(tmp_path), input_pipeline.DataSet, seeds=2, smoke=True
    )
    assert result["trained_now"] == 1
    assert calls == [str(tmp_path / "mask_activation" / "mixed" / "seed0")]
