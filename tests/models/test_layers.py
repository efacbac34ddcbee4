"""Caffe ceil-mode max-pooling and corner-aligned bilinear Interp against NumPy references;
the fast forms of pooling, Interp, 1x1 convolution and the 3x3 weight gradient against the
plain XLA ops."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ran_jax.checks import check_choice
from ran_jax.models import layers
from ran_jax.models.layers import (
    PointwiseConv,
    caffe_interp,
    caffe_max_pool,
    make_conv,
    pooled_size,
)


def _ref_max_pool(x: np.ndarray) -> np.ndarray:
    """Caffe Pooling (MAX, k=3, s=2, pad 0): windows start every 2 and are clipped at the edge."""
    n, h, w, c = x.shape
    oh, ow = pooled_size(h), pooled_size(w)
    out = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2))
    return out


def _ref_interp(x: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """Caffe Interp: out(i) samples in((in-1)/(out-1) * i) with bilinear weights."""
    n, h, w, c = x.shape
    out = np.zeros((n, oh, ow, c), np.float64)
    for i in range(oh):
        sy = i * (h - 1) / (oh - 1) if oh > 1 else 0.0
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(ow):
            sx = j * (w - 1) / (ow - 1) if ow > 1 else 0.0
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            out[:, i, j] = (
                (1 - fy) * (1 - fx) * x[:, y0, x0]
                + (1 - fy) * fx * x[:, y0, x1]
                + fy * (1 - fx) * x[:, y1, x0]
                + fy * fx * x[:, y1, x1]
            )
    return out


@pytest.mark.parametrize(
    "size,expected",
    [(112, 56), (56, 28), (28, 14), (14, 7), (7, 3), (8, 4), (4, 2), (3, 1), (2, 1)],
)
def test_pooled_size_is_caffe_ceil_mode(size, expected):
    assert pooled_size(size) == expected


@pytest.mark.parametrize("shape", [(2, 7, 7, 3), (1, 9, 6, 2), (1, 2, 5, 1), (1, 57, 57, 2)])
def test_max_pool_matches_caffe(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(caffe_max_pool(jnp.asarray(x))), _ref_max_pool(x))


def test_max_pool_rejects_a_map_too_small():
    with pytest.raises(ValueError, match="too small"):
        caffe_max_pool(jnp.zeros((1, 1, 1, 4)))


@pytest.mark.parametrize(
    "src,dst",
    [
        ((3, 3), (7, 7)),
        ((4, 2), (8, 5)),
        ((7, 7), (14, 14)),
        ((1, 1), (4, 4)),
        ((5, 6), (5, 6)),
        ((6, 6), (3, 3)),
    ],
)
def test_interp_matches_caffe_align_corners(src, dst):
    x = np.random.default_rng(1).normal(size=(2, *src, 3)).astype(np.float32)
    out = np.asarray(caffe_interp(jnp.asarray(x), dst))
    np.testing.assert_allclose(out, _ref_interp(x, *dst), rtol=1e-5, atol=1e-5)
    # Corner alignment: the four corners are copied exactly.
    np.testing.assert_allclose(
        out[:, [0, 0, -1, -1], [0, -1, 0, -1]], x[:, [0, 0, -1, -1], [0, -1, 0, -1]], rtol=1e-6
    )


def test_check_choice_names_value_and_choices():
    with pytest.raises(
        ValueError, match=r"Unknown colour 'red'; valid choices are: 'blue', 'green'"
    ):
        check_choice("colour", "red", ("blue", "green"))


@pytest.mark.parametrize("shape", [(2, 7, 7, 3), (1, 10, 9, 2)])
def test_max_pool_gradient_equals_reduce_window_gradient(shape):
    """Without ties (random inputs) each window's gradient goes to its maximum, as Caffe's."""
    x = jnp.asarray(np.random.default_rng(2).normal(size=shape).astype(np.float32))
    pad = [(pooled_size(n) - 1) * 2 + 3 - n for n in shape[1:3]]

    def reduce_window(x):
        return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((0, pad[0]), (0, pad[1])))

    weights = jnp.asarray(np.random.default_rng(3).normal(size=reduce_window(x).shape))
    ours = jax.grad(lambda x: jnp.sum(caffe_max_pool(x) * weights))(x)
    plain = jax.grad(lambda x: jnp.sum(reduce_window(x) * weights))(x)
    # Equal up to the order in which overlapping windows add into a shared cell.
    np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-6)


def test_interp_gradient_is_the_transposed_interpolation():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(1, 3, 4, 2)).astype(np.float32))
    g = np.random.default_rng(5).normal(size=(1, 7, 9, 2)).astype(np.float32)
    grad = jax.grad(lambda x: jnp.sum(caffe_interp(x, (7, 9)) * g))(x)
    # <interp(x), g> = <x, interp^T(g)>: check it through the reference, one basis at a time.
    expected = np.zeros(x.shape, np.float64)
    for index in np.ndindex(*x.shape):
        basis = np.zeros(x.shape, np.float32)
        basis[index] = 1
        expected[index] = np.sum(_ref_interp(basis, 7, 9) * g)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides,size", [(1, 6), (2, 7), (2, 8)])
def test_pointwise_conv_equals_a_1x1_convolution(strides, size):
    conv = make_conv(jnp.float32, jnp.float32)
    fast = conv(5, (1, 1), strides)
    assert isinstance(fast, PointwiseConv)
    plain = nn.Conv(5, (1, 1), strides, use_bias=False)
    x = jnp.asarray(np.random.default_rng(6).normal(size=(2, size, size, 3)).astype(np.float32))
    variables = fast.init(jax.random.key(0), x)
    assert jax.tree_util.tree_map(jnp.shape, variables) == {"params": {"kernel": (1, 1, 3, 5)}}
    np.testing.assert_allclose(
        fast.apply(variables, x), plain.apply(variables, x), rtol=1e-5, atol=1e-6
    )


def _conv3x3(x, kernel, strides=(1, 1)):
    return jax.lax.conv_general_dilated(
        x, kernel, strides, ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-4), (jnp.bfloat16, 3e-2)])
def test_shifted_weight_gradient_equals_xla_gradient(dtype, tol):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, 9, 7, 3)), dtype)
    kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), dtype)
    dy = jnp.asarray(rng.normal(size=(2, 9, 7, 4)), dtype)
    out, vjp = jax.vjp(layers.conv3x3_shifted_wgrad, x, kernel)
    ref_out, ref_vjp = jax.vjp(_conv3x3, x, kernel)
    np.testing.assert_array_equal(np.float32(out), np.float32(ref_out))
    for got, want in zip(vjp(dy), ref_vjp(dy), strict=True):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(np.float32(got), np.float32(want), rtol=tol, atol=tol)


def test_conv_takes_the_shifted_weight_gradient_only_where_it_is_faster(monkeypatch):
    """On the CPU: 3x3, stride 1, pad 1, ungrouped and at least 28x28; XLA's otherwise."""
    calls = []
    shifted = layers.conv3x3_shifted_wgrad
    monkeypatch.setattr(layers, "conv3x3_shifted_wgrad", lambda *a: calls.append(1) or shifted(*a))
    conv = make_conv(jnp.float32, jnp.float32)
    cases = [  # (module, input size, takes the shifted form)
        (conv(4, (3, 3), padding=((1, 1), (1, 1))), 28, True),
        (conv(4, (3, 3), padding=((1, 1), (1, 1))), 27, False),
        (conv(4, (3, 3), 2, padding=((1, 1), (1, 1))), 56, False),
        (conv(4, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=2), 28, False),
        (conv(4, (7, 7), padding=((3, 3), (3, 3))), 28, False),
    ]
    for module, size, expected in cases:
        calls.clear()
        x = jnp.ones((1, size, size, 4))
        module.init(jax.random.key(0), x)
        assert bool(calls) == expected, (module, size)
