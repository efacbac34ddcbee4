"""Seeing the attention: masks per module, their pictures and the localisation score."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ran_jax.analysis import attention_maps, pictures
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
    region = attention_maps.box_region(boxes, 8, 8)
    assert region.shape == (2, 8, 8) and int(region[0].sum()) == 16 and int(region[1].sum()) == 32
    assert bool(region[1, :, :4].all()) and not bool(region[1, :, 4:].any())
    scores = attention_maps.localisation({"stage1/attention1": mask}, region)
    inside_second = (16 * 0.25 + 8 * 1.0) / 32  # left half: 8 bright pixels of 32
    outside_second = (16 * 0.25 + 8 * 1.0) / 32
    np.testing.assert_allclose(scores["stage1"], [4.0, inside_second / outside_second], rtol=1e-3)
    # any region, not only boxes: the bright square's ring of 12 pixels; outside it lie the
    # square's 4 bright centre pixels and 48 at 0.25
    ring = jnp.zeros((1, 8, 8), bool).at[0, 2:6, 2:6].set(True).at[0, 3:5, 3:5].set(False)
    ring_score = attention_maps.localisation({"stage1/attention1": mask[:1]}, ring)["stage1"]
    np.testing.assert_allclose(ring_score, [1.0 / ((4 * 1.0 + 48 * 0.25) / 52)], rtol=1e-3)


def test_pictures_draw_upsampled_masks_in_the_mask_range(tiny, tmp_path):
    model, variables, images = tiny
    _, found = attention_maps.masks(model.apply, variables, images)
    one = {k: np.asarray(v[0]) for k, v in found.items()}
    drawn = pictures.overlays(images[0], one)
    assert sorted(drawn) == sorted(f"{k}/{kind}" for k in one for kind in ("mean", "top"))
    for values in drawn.values():
        assert values.shape == (40, 40) and values.min() >= 0 and values.max() <= 1
    figures = pictures.mask_figures(
        pictures.masks_fn(model.apply), variables, images, ((0.0,), (1.0,)), list("abc")
    )
    assert len(figures) == 3
    pixels = pictures.render(figures[0])
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 10  # not blank


def test_a_network_without_attention_modules_has_no_pictures(tiny):
    model = get_model("attention56", 10, widths=(2, 2, 2, 2), in_channels=1, modules=(0, 0, 0, 0))
    _, _, images = tiny
    variables = jax.jit(model.init)(jax.random.key(0), images)
    assert (
        pictures.mask_figures(
            pictures.masks_fn(model.apply), variables, images, ((0.0,), (1.0,)), ["a"] * 3
        )
        == []
    )
