"""Seeing the attention: masks per module, their pictures, the localisation score, and the
study runner (a smoke run of two tiny runs)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ran_jax import attention_maps, reproduce, train, visualize
from ran_jax.models import get_model


@pytest.fixture(scope="module")
def tiny():
    """A 1/32-width quick-start network (modules 1-1-1) on 40x40 grey images."""
    model = get_model(
        "attention56", 10, widths=(2, 2, 2, 2), stem_width=4, in_channels=1, modules=(1, 1, 1, 0)
    )
    images = jax.random.normal(jax.random.key(0), (3, 40, 40, 1))
    variables = jax.jit(model.init)(jax.random.key(1), images)
    return model, variables, np.asarray(images)


def test_masks_come_per_module_in_network_order(tiny):
    model, variables, images = tiny
    logits, found = attention_maps.masks(model.apply, variables, images)
    assert logits.shape == (3, 10)
    assert list(found) == ["stage1/attention1", "stage2/attention1", "stage3/attention1"]
    assert [m.shape for m in found.values()] == [(3, 10, 10, 8), (3, 5, 5, 8), (3, 3, 3, 8)]
    assert all(float(m.min()) >= 0 and float(m.max()) <= 1 for m in found.values())


def test_channel_summaries_and_upsampling():
    mask = jnp.zeros((1, 4, 4, 3)).at[0, :2, :, 2].set(1.0)  # channel 2 lights the top half
    np.testing.assert_allclose(attention_maps.channel_mean(mask)[0, 0], 1 / 3)
    np.testing.assert_allclose(attention_maps.top_channel(mask)[0], mask[0, :, :, 2])
    up = attention_maps.upsample(attention_maps.top_channel(mask), 8, 8)
    assert up.shape == (1, 8, 8) and float(up.min()) >= 0 and float(up.max()) <= 1
    assert float(up[0, 0].mean()) > 0.9 and float(up[0, -1].mean()) < 0.1


def test_localisation_is_the_inside_to_outside_ratio_of_the_mean_mask():
    mask = jnp.full((2, 8, 8, 2), 0.25).at[:, 2:6, 2:6, :].set(1.0)
    boxes = jnp.array([[2, 2, 6, 6], [0, 0, 8, 4]])  # on the bright square; half the image
    scores = attention_maps.localisation({"stage1/attention1": mask}, boxes, 8, 8)
    inside_second = (16 * 0.25 + 8 * 1.0) / 32  # left half: 8 bright pixels of 32
    outside_second = (16 * 0.25 + 8 * 1.0) / 32
    np.testing.assert_allclose(scores["stage1"], [4.0, inside_second / outside_second], rtol=1e-3)


def test_pictures_draw_upsampled_masks_in_the_mask_range(tiny, tmp_path):
    model, variables, images = tiny
    _, found = attention_maps.masks(model.apply, variables, images)
    one = {k: np.asarray(v[0]) for k, v in found.items()}
    drawn = visualize.overlays(images[0], one)
    assert sorted(drawn) == sorted(f"{k}/{kind}" for k in one for kind in ("mean", "top"))
    for values in drawn.values():
        assert values.shape == (40, 40) and values.min() >= 0 and values.max() <= 1
    figures = visualize.mask_figures(
        visualize.masks_fn(model.apply), variables, images, ((0.0,), (1.0,)), list("abc")
    )
    assert len(figures) == 3
    pixels = visualize.render(figures[0])
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 10  # not blank
    for fig in figures[1:]:
        visualize.plt.close(fig)


def test_a_network_without_attention_modules_has_no_pictures(tiny):
    model = get_model("attention56", 10, widths=(2, 2, 2, 2), in_channels=1, modules=(0, 0, 0, 0))
    _, _, images = tiny
    variables = jax.jit(model.init)(jax.random.key(0), images)
    assert (
        visualize.mask_figures(
            visualize.masks_fn(model.apply), variables, images, ((0.0,), (1.0,)), ["a"] * 3
        )
        == []
    )


def test_study_grids_mirror_the_paper():
    assert [c.name for c in reproduce.STUDIES["arl_vs_nal"]] == [
        f"{k}_m{m}" for m in (1, 2, 3, 4) for k in ("ARL", "NAL")
    ]
    assert {c.name: c.paper for c in reproduce.STUDIES["mask_type"]} == {
        "soft": 5.52,
        "local": 6.48,
    }
    assert len(reproduce.STUDIES["noisy_labels"]) == 8
    with pytest.raises(ValueError, match="Unknown --study 'depth'"):
        reproduce.run_study("depth", "/tmp/unused")


def test_reproduce_runs_a_study_once_then_skips_finished_runs(tmp_path, cluttered_digits_dir):
    data_dir = cluttered_digits_dir  # prepared once per test session (conftest.py)
    workdir = str(tmp_path / "studies")
    first = reproduce.run_study("mask_type", workdir, seeds=1, smoke=True, data_dir=data_dir)
    assert first["trained_now"] == 2
    assert [(r["cell"], r["runs"]) for r in first["rows"]] == [("soft", 1), ("local", 1)]
    assert all(0 <= r["mean"] <= 100 and r["std"] is None for r in first["rows"])
    again = reproduce.run_study("mask_type", workdir, seeds=1, smoke=True, data_dir=data_dir)
    assert again["trained_now"] == 0 and again["rows"] == first["rows"]
    table = open(os.path.join(workdir, "mask_type", "results.md")).read()
    assert "| soft | 1 |" in table and "| local | 1 |" in table and "6.48" in table
    assert os.path.getsize(os.path.join(workdir, "mask_type", "results.png")) > 5_000
    # the soft-mask run is also ARL with one module per stage: linked, not trained again
    shared = reproduce.run_study(
        "arl_vs_nal", workdir, seeds=1, max_runs=0, smoke=True, data_dir=data_dir
    )
    rows = {r["cell"]: r for r in shared["rows"]}
    assert shared["trained_now"] == 0 and rows["NAL_m1"]["runs"] == 0
    assert rows["ARL_m1"]["errors"] == first["rows"][0]["errors"]
    link = os.path.join(workdir, "arl_vs_nal", "ARL_m1", "seed0")
    assert os.readlink(link) == os.path.join("..", "..", "mask_type", "soft", "seed0")
    # local masks have no pooling: the run really trained the ablation
    config = reproduce.run_config(
        reproduce.study_config(True), reproduce.STUDIES["mask_type"][1], 0, None
    )
    assert config.model_overrides.mask_type == "local" and config.seed == 0


def test_a_diverged_run_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch):
    calls = []

    def diverge(config, workdir):
        calls.append(workdir)
        os.makedirs(workdir)
        raise train.NonFiniteError("Non-finite loss or gradient at step 1; no checkpoint.")

    monkeypatch.setattr(train, "train_and_evaluate", diverge)
    first = reproduce.run_study("mask_activation", str(tmp_path), seeds=1, smoke=True)
    assert len(calls) == first["trained_now"] == 3  # every cell was tried
    assert [(r["runs"], r["diverged"]) for r in first["rows"]] == [(0, 1)] * 3
    assert (
        "| spatial | 0 | – | diverged |"
        in (tmp_path / "mask_activation" / "results.md").read_text()
    )
    again = reproduce.run_study("mask_activation", str(tmp_path), seeds=1, smoke=True)
    assert again["trained_now"] == 0 and len(calls) == 3  # a diverged run is a result


def test_study_tables_leave_out_the_localisation_of_signed_channel_masks(tmp_path):
    line = {"step": 10, "eval_top1": 0.9, "eval_localisation_stage1": 5.6}
    for cell in ("mixed", "channel"):
        (tmp_path / cell / "seed0").mkdir(parents=True)
        (tmp_path / cell / "seed0" / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    rows = {r["cell"]: r for r in reproduce.collect("mask_activation", str(tmp_path), 1, 10)}
    assert rows["mixed"]["localisation"] == 5.6 and rows["channel"]["localisation"] is None
    assert rows["channel"]["errors"] == pytest.approx([10.0])
