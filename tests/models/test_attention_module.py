"""Soft mask dataflow, mask activations and attention residual learning (paper 3.1-3.3)."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ran_jax.models import AttentionModule, LocalMaskBranch, SoftMaskBranch
from ran_jax.models.layers import caffe_interp, caffe_max_pool, make_conv, make_norm
from ran_jax.models.mask import MaskTail, mask_activation, num_mask_units
from ran_jax.models.residual_unit import PreActBottleneck

CHANNELS = 8


class Halve(nn.Module):
    """A stand-in Residual Unit with a known output, to trace the mask's dataflow."""

    @nn.compact
    def __call__(self, x):
        return 0.5 * x


class Identity(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x


def _reference_soft_mask(x, levels):
    """The official graph (docs/faithfulness.md §3.2), every unit = 0.5 * x, identity tail."""
    m, skips = x, []
    for level in range(1, levels + 1):
        m = caffe_max_pool(m)
        m = m * (0.25 if level == levels else 0.5)  # 2r units at the bottom, r above
        if level < levels:
            skips.append(m)
    for d in reversed(skips):
        m = caffe_interp(m, d.shape[1:3]) + 0.5 * d  # upsampled map + skip unit, nothing else
        m = 0.5 * m  # r up units
    return caffe_interp(m, x.shape[1:3])


@pytest.mark.parametrize("levels,size", [(1, 14), (2, 28), (3, 56), (3, 13), (2, 9)])
def test_soft_mask_dataflow_matches_official_graph(levels, size):
    x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
    branch = SoftMaskBranch(levels, 1, Halve, Identity)
    out = branch.apply({}, x)
    np.testing.assert_allclose(out, _reference_soft_mask(x, levels), rtol=1e-6, atol=1e-6)


def _module(attention="residual", mask_type="soft", activation="mixed", levels=2, train=False):
    conv = make_conv(jnp.float32, jnp.float32)
    norm = make_norm(train, jnp.float32, jnp.float32, None, 0.9, 1e-5)
    unit = functools.partial(
        PreActBottleneck, width=CHANNELS // 4, channels=CHANNELS, strides=1, conv=conv, norm=norm
    )
    tail = functools.partial(MaskTail, activation=activation, conv=conv, norm=norm)
    return AttentionModule(levels, unit, tail, attention=attention, mask_type=mask_type)


X = jax.random.normal(jax.random.key(1), (2, 12, 12, CHANNELS))


def _init(module):
    return module.init(jax.random.key(2), X)


@pytest.mark.parametrize("activation", ["mixed", "spatial"])
def test_mask_is_in_unit_interval_and_sown(activation):
    module = _module(activation=activation)
    variables = _init(module)
    out, state = module.apply(variables, X, mutable=["intermediates"])
    (mask,) = state["intermediates"]["mask"]
    chex.assert_shape([mask, out], X.shape)
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    assert float(mask.std()) > 0.0


def test_channel_attention_normalises_each_position():
    logits = jax.random.normal(jax.random.key(3), (2, 5, 5, CHANNELS)) * 3.0
    m = mask_activation(logits, "channel")
    np.testing.assert_allclose(jnp.linalg.norm(m, axis=-1), 1.0, rtol=1e-4)


def test_spatial_attention_standardises_each_channel():
    logits = jax.random.normal(jax.random.key(4), (2, 5, 5, CHANNELS)) * 4.0 + 2.0
    m = mask_activation(logits, "spatial")
    # The mask depends only on the standardised map: shifting and scaling a channel is a no-op.
    np.testing.assert_allclose(mask_activation(3.0 * logits - 7.0, "spatial"), m, atol=1e-5)
    # The standardised logits have zero mean over positions, so a channel's sigmoids average 0.5.
    np.testing.assert_allclose(jnp.mean(m, axis=(1, 2)), 0.5, atol=0.05)


@pytest.mark.parametrize("kind", ["channel", "spatial"])
def test_normalising_activations_have_finite_gradients_on_constant_maps(kind):
    # A 3x3 stage's mask pools to one value (constant over positions); a dead position is 0.
    for logits in (jnp.full((1, 3, 3, 4), 0.7), jnp.zeros((1, 3, 3, 4))):
        grad = jax.grad(lambda x: jnp.sum(mask_activation(x, kind) * jnp.arange(4.0)))(logits)
        assert bool(jnp.all(jnp.isfinite(grad))), (kind, grad)


def test_unknown_mask_activation_is_rejected():
    with pytest.raises(ValueError, match="Unknown mask activation 'hard'"):
        mask_activation(jnp.zeros((1, 2, 2, 1)), "hard")


def _fusion_with_forced_logits(attention):
    """Runs a module with the mask logits forced to -1e4; returns (trunk T, fused H)."""
    module = _module(attention=attention)
    variables = _init(module)
    seen = {}

    def force(next_fun, args, kwargs, context):
        name = context.module.name
        if name == "post1":
            seen["fused"] = args[0]
        out = next_fun(*args, **kwargs)
        if name == "trunk_branch":
            seen["trunk"] = out
        if name == "linear2":
            out = jnp.full_like(out, -1e4)
        return out

    with nn.intercept_methods(force):
        module.apply(variables, X)
    return seen["trunk"], seen["fused"]


def test_attention_residual_learning_keeps_trunk_when_mask_is_off():
    trunk, fused = _fusion_with_forced_logits("residual")
    assert float(jnp.abs(trunk).max()) > 0.1
    np.testing.assert_allclose(fused, trunk, rtol=1e-6, atol=1e-6)


def test_naive_attention_learning_gives_zero_when_mask_is_off():
    trunk, fused = _fusion_with_forced_logits("naive")
    assert float(jnp.abs(trunk).max()) > 0.1
    np.testing.assert_allclose(fused, 0.0, atol=1e-6)


def test_naive_and_residual_differ_with_a_live_mask():
    res, naive = _module("residual"), _module("naive")
    variables = _init(res)
    assert not np.allclose(res.apply(variables, X), naive.apply(variables, X))


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_local_mask_has_same_units_as_soft_mask_and_no_pooling(levels):
    soft = _init(_module(mask_type="soft", levels=levels))["params"]["mask_branch"]
    local = _init(_module(mask_type="local", levels=levels))["params"]["mask_branch"]
    size = lambda t: sum(x.size for x in jax.tree_util.tree_leaves(t))  # noqa: E731
    assert size(soft) == size(local)
    assert len([k for k in local if k.startswith("unit")]) == num_mask_units(levels, 1)
    # No pooling: the local mask works at every position of a 12x12 map whose soft mask at
    # L=3 would bottom out at 1x1; its first unit sees full resolution.
    conv = make_conv(jnp.float32, jnp.float32)
    norm = make_norm(False, jnp.float32, jnp.float32, None, 0.9, 1e-5)
    shapes = []

    def record(next_fun, args, kwargs, context):
        if context.module.name == "unit1":
            shapes.append(args[0].shape)
        return next_fun(*args, **kwargs)

    branch = LocalMaskBranch(
        levels, 1, Halve, functools.partial(MaskTail, activation="mixed", conv=conv, norm=norm)
    )
    with nn.intercept_methods(record):
        branch.init(jax.random.key(0), X)
    assert shapes == [X.shape]


def test_num_mask_units_matches_the_mask_table():
    # docs/faithfulness.md §3.4: stages A, B, C hold 8, 5 and 2 mask units at r = 1.
    assert [num_mask_units(levels, 1) for levels in (3, 2, 1)] == [8, 5, 2]
