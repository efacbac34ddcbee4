"""The modern recipe's options each do what they say: schedule, decay mask, mixup, CutMix,
label smoothing, random erasing, EMA and gradient accumulation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from ran_jax import configs
from ran_jax.data import preprocess
from ran_jax.training import checkpointing, recipes
from ran_jax.training.optimizer import learning_rate_fn
from ran_jax.training.parallel import DataParallel
from ran_jax.training.state import create_train_state
from ran_jax.training.steps import compile_steps


def _config(**overrides):
    c = configs.base()
    c.update(overrides)
    return c


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    lr = learning_rate_fn(
        _config(lr_schedule="cosine", learning_rate=0.4, warmup_steps=10, num_train_steps=110)
    )
    np.testing.assert_allclose([lr(0), lr(5), lr(10)], [0.0, 0.2, 0.4], atol=1e-7)
    np.testing.assert_allclose(lr(60), 0.2, atol=1e-6)  # half-way through the cosine
    np.testing.assert_allclose(lr(110), 0.0, atol=1e-7)
    assert lr(30) > lr(60) > lr(90) > 0


def test_the_paper_schedule_is_unchanged():
    lr = learning_rate_fn(_config(lr_boundaries=(5, 8)))
    np.testing.assert_allclose([lr(0), lr(5), lr(8)], [0.1, 0.01, 0.001], rtol=1e-6)


class _Tiny(nn.Module):
    """BatchNorm then a classifier: kernels, BN scale/shift and a bias to tell apart."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.BatchNorm(use_running_average=not train, axis_name=None)(x)
        return nn.Dense(3, name="classifier")(x.reshape(len(x), -1))


@pytest.mark.parametrize("decay_all", [True, False])
def test_weight_decay_spares_batchnorm_and_biases_when_asked(decay_all):
    config = _config(weight_decay=0.5, momentum=0.0, decay_norm_and_bias=decay_all)
    state = create_train_state(config, _Tiny(), (2, 2, 1))
    state = state.replace(params=jax.tree_util.tree_map(jnp.ones_like, state.params))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
    moved = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.any(a != b)), state.params, state.apply_gradients(grads=zeros).params
    )
    assert moved["classifier"]["kernel"]
    assert moved["classifier"]["bias"] == moved["BatchNorm_0"]["scale"] == decay_all
    assert moved["BatchNorm_0"]["bias"] == decay_all


def _images(n=6, size=8, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n, size, size, 3))


def test_label_smoothing_targets():
    t = recipes.targets(jnp.array([0, 2]), 4, 0.2)
    np.testing.assert_allclose(t, [[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]])
    np.testing.assert_allclose(t.sum(-1), 1.0)


def test_mixup_blends_images_and_targets_with_one_weight_and_stops_when_told():
    images, labels = _images(), jnp.array([0, 1, 2, 3, 4, 5])
    soft = recipes.targets(labels, 6, 0.1)
    options = recipes.StepOptions(mixup_alpha=1.0, mix_until_step=10)
    mixed, targets = recipes.mix(jax.random.key(1), images, soft, options, jnp.array(9))
    np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
    lam = (targets[0, 0] - 0.1 / 6) / 0.9  # weight left on example 0's own label
    assert 0 < lam < 1
    np.testing.assert_allclose(mixed, lam * images + (1 - lam) * images[::-1], atol=1e-5)
    np.testing.assert_allclose(targets, lam * soft + (1 - lam) * soft[::-1], atol=1e-6)
    unmixed, same = recipes.mix(jax.random.key(1), images, soft, options, jnp.array(10))
    np.testing.assert_array_equal(unmixed, images)
    np.testing.assert_array_equal(same, soft)


def test_cutmix_pastes_a_box_and_weights_targets_by_the_pixels_kept():
    images, soft = _images(size=16), recipes.targets(jnp.arange(6), 6, 0.0)
    options = recipes.StepOptions(cutmix_alpha=1.0, mix_until_step=1)
    for seed in range(4):
        mixed, targets = recipes.mix(jax.random.key(seed), images, soft, options, jnp.array(0))
        own = np.all(np.asarray(mixed) == np.asarray(images), axis=-1)
        other = np.all(np.asarray(mixed) == np.asarray(images[::-1]), axis=-1)
        assert np.all(own | other)  # each pixel is its own or the partner's
        np.testing.assert_allclose(targets[0, 0], own[0].mean(), atol=1e-6)
        np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
        rows, cols = np.nonzero(~own[0])
        if len(rows):  # the pasted pixels form one rectangle
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert box == len(rows)


def test_random_erasing_fills_one_rectangle_with_noise_and_only_when_drawn():
    image = tf.zeros([32, 24, 3])
    erased = [
        preprocess.random_erase(image, tf.constant([s, 0], tf.int64), 1.0).numpy()
        for s in range(20)
    ]
    for e in erased:
        rows, cols = np.nonzero(np.any(e != 0, axis=-1))
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert area == len(rows)  # a full rectangle
        assert area <= 0.4 * 32 * 24 + 32 and area >= 1
    assert len({e.tobytes() for e in erased}) == 20  # a new one per key
    again = preprocess.random_erase(image, tf.constant([3, 0], tf.int64), 1.0).numpy()
    np.testing.assert_array_equal(again, erased[3])
    never = preprocess.random_erase(image, tf.constant([3, 0], tf.int64), 0.0).numpy()
    assert not never.any()


def _step(config, model, batch, steps=1):
    """The host copies of the state before and after each of ``steps`` train steps."""
    dp = DataParallel("pmap", jax.devices()[:1])
    state = dp.put_state(create_train_state(config, model, batch["image"].shape[1:]))
    step, _ = compile_steps(config, dp)
    states = [jax.device_get(state)]
    for _ in range(steps):
        state, _ = step(state, dp.put_batch(batch))  # donates the previous state
        states.append(jax.device_get(state))
    return states


def _batch(n=8):
    images = np.asarray(_images(n, 4))
    return {"image": images, "label": np.arange(n, dtype=np.int32) % 3}


def _assert_close(a, b):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)


def test_ema_is_decay_times_ema_plus_the_rest_times_the_new_weights():
    states = _step(_config(ema_decay=0.75), _Tiny(), _batch(), steps=2)
    for key in ("params", "batch_stats"):
        _assert_close(states[0].ema[key], getattr(states[0], key))  # starts at the weights
        for old, new in zip(states, states[1:]):
            expected = recipes.ema_update(old.ema[key], getattr(new, key), 0.75)
            _assert_close(new.ema[key], expected)
            expected = jax.tree_util.tree_map(
                lambda e, w: 0.75 * e + 0.25 * w, old.ema[key], getattr(new, key)
            )
            _assert_close(new.ema[key], expected)


class _Linear(nn.Module):
    """No BatchNorm: the gradient of a batch is the mean of its micro-batches' gradients."""

    @nn.compact
    def __call__(self, x, train=False):
        self.variable("batch_stats", "unused", jnp.zeros, ())
        return nn.Dense(3, name="classifier")(x.reshape(len(x), -1))


def test_accumulated_micro_batches_give_the_update_of_the_whole_batch():
    batch = _batch(8)
    _, whole = _step(_config(), _Linear(), batch)
    _, accumulated = _step(_config(accumulate_steps=4), _Linear(), batch)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
        whole.params,
        accumulated.params,
    )
    moved = jax.tree_util.tree_map(
        lambda a, b: np.abs(a - b).max(),
        whole.params,
        _step(_config(), _Linear(), batch, steps=0)[0].params,
    )
    assert max(jax.tree_util.tree_leaves(moved)) > 1e-3  # the step did move the weights


def test_resuming_with_or_without_ema_is_reported_as_a_different_state():
    saved = {"model": "m", "param_shapes": {}}
    assert checkpointing._differences(saved, {**saved, "ema": True}) == [
        "ema: checkpoint has None, config gives True"
    ]
    assert checkpointing._differences(saved, dict(saved)) == []
