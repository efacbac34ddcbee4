"""Whole networks at tiny widths: shapes at any input size, gradients, jit, bf16, masks, BN."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import TINY
from ran_jax.models import get_model
from ran_jax.models.complexity import complexity
from ran_jax.models.layers import pooled_size

TINY_CIFAR = dict(widths=(2, 4, 4))
TINY_IMAGENET = dict(widths=(2, 2, 4, 4), stem_width=4)


def _side(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


# The sizes' arithmetic (stem, pooling, strides) is the same in every ImageNet network: all
# four sizes on attention56, one odd size on the others.
@pytest.mark.parametrize(
    "name,size",
    [("attention56", s) for s in (224, 320, 227, 193)]
    + [("attention92", 227), ("attentionnext56", 193)],
)
def test_imagenet_stage_shapes_at_any_size(name, size):
    c = complexity(get_model(name, 1000), size)
    stem = pooled_size(_side(size, 2))
    expected = {"stem": (1, stem, stem, 64)}
    side = stem
    for i, channels in enumerate((256, 512, 1024, 2048)):
        side = _side(side, 1 if i == 0 else 2)
        expected[f"stage{i + 1}"] = (1, side, side, channels)
    expected["head"] = (1, 1000)
    assert c.stage_shapes == expected


@pytest.mark.parametrize("name", ["cifar_attention56", "preact_resnet164"])
def test_cifar_stage_shapes(name):
    c = complexity(get_model(name, 100), 32)
    assert c.stage_shapes == {
        "stem": (1, 32, 32, 16),
        "stage1": (1, 32, 32, 64),
        "stage2": (1, 16, 16, 128),
        "stage3": (1, 8, 8, 256),
        "head": (1, 100),
    }


@pytest.fixture(scope="module")
def tiny():
    """One tiny CIFAR Attention-56 (3 modules, soft masks, ARL), initialised once per module."""
    model = get_model("cifar_attention56", 10, **TINY_CIFAR)
    x = jax.random.normal(jax.random.key(2), (8, 32, 32, 3))
    init = jax.jit(model.init)
    return model, init, init(jax.random.key(0), x), x


def test_same_seed_same_init_and_other_seed_differs(tiny):
    model, init, variables, x = tiny
    chex.assert_trees_all_equal(init(jax.random.key(0), x), variables)
    other = init(jax.random.key(1), x)
    leaves = zip(
        jax.tree_util.tree_leaves(variables["params"]), jax.tree_util.tree_leaves(other["params"])
    )
    assert any(not (u == v).all() for u, v in leaves)


def test_masks_are_sown_for_every_module_with_trunk_shapes(tiny):
    model, _, variables, x = tiny
    _, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(variables, x)
    masks = {
        f"{stage}/{module}": v["mask"][0]
        for stage, modules in state["intermediates"].items()
        for module, v in modules.items()
    }
    assert sorted(masks) == ["stage1/attention1", "stage2/attention1", "stage3/attention1"]
    for key, side, channels in [
        ("stage1/attention1", 32, 8),
        ("stage2/attention1", 16, 16),
        ("stage3/attention1", 8, 16),
    ]:
        chex.assert_shape(masks[key], (8, side, side, channels))
        assert 0.0 <= float(masks[key].min()) and float(masks[key].max()) <= 1.0


def _assert_gradients_finite_and_nonzero(model, variables, x):
    labels = jnp.arange(x.shape[0]) % model.num_classes

    def loss_fn(params):
        logits, _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            train=True,
            mutable=["batch_stats"],
        )
        chex.assert_shape(logits, (x.shape[0], model.num_classes))
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(variables["params"])
    assert np.isfinite(float(loss))
    chex.assert_tree_all_finite(grads)
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    zero = [jax.tree_util.keystr(path) for path, g in flat if not np.any(np.asarray(g))]
    assert not zero, f"parameters with all-zero gradients: {zero}"


@pytest.mark.slow  # gradients of a whole network: compiles for seconds
def test_gradients_reach_every_parameter(tiny):
    model, _, variables, x = tiny
    _assert_gradients_finite_and_nonzero(model, variables, x)


@pytest.mark.slow  # gradients of a whole network: compiles for seconds
def test_resnext_network_at_odd_size_has_gradients_for_every_parameter():
    """One Attention Module, in the first stage: its mask pools and upsamples 9x9 maps."""
    model = get_model("attentionnext56", 10, **TINY_IMAGENET, cardinality=2, modules=(1, 0, 0, 0))
    x = jax.random.normal(jax.random.key(3), (2, 35, 35, 3))
    _assert_gradients_finite_and_nonzero(model, jax.jit(model.init)(jax.random.key(0), x), x)


@pytest.mark.slow  # gradients of a whole network: compiles for seconds
def test_remat_keeps_parameters_loss_and_gradients():
    model = get_model("cifar_attention56", 10, **TINY)
    remat = model.clone(remat=True)
    x = jax.random.normal(jax.random.key(4), (2, 16, 16, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    chex.assert_trees_all_equal_shapes(jax.eval_shape(remat.init, jax.random.key(0), x), variables)

    def loss_and_grads(m):
        def loss_fn(params):
            logits, _ = m.apply(
                {"params": params, "batch_stats": variables["batch_stats"]},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            return jnp.mean(logits**2)

        grad_fn = jax.value_and_grad(loss_fn)
        return str(jax.make_jaxpr(grad_fn)(variables["params"])), jax.jit(grad_fn)(
            variables["params"]
        )

    remat_jaxpr, remat_out = loss_and_grads(remat)
    plain_jaxpr, plain_out = loss_and_grads(model)
    # The rematerialised forward appears as one remat (checkpoint) primitive per module.
    assert "remat" in remat_jaxpr and "remat" not in plain_jaxpr
    chex.assert_trees_all_close(remat_out, plain_out, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # runs a whole network op by op: seconds
def test_jit_equals_eager(tiny):
    model, _, variables, x = tiny
    eager = model.apply(variables, x)
    jitted = jax.jit(functools.partial(model.apply, train=False))(variables, x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)


def test_bfloat16_compute_with_float32_params_stays_close(tiny):
    model, _, variables, x = tiny
    bf16 = model.clone(dtype=jnp.bfloat16)
    # Parameters and statistics stay float32 with bfloat16 compute.
    chex.assert_trees_all_equal_dtypes(jax.eval_shape(bf16.init, jax.random.key(0), x), variables)
    ref = jax.jit(model.apply)(variables, x)
    out = jax.jit(bf16.apply)(variables, x)
    assert out.dtype == jnp.float32  # logits come back in float32
    assert not np.array_equal(out, ref)  # bfloat16 really was used
    scale = float(jnp.abs(ref).max())
    assert float(jnp.abs(out - ref).max()) <= 0.05 * scale + 0.02


@pytest.mark.slow  # compiles a whole network twice, in training mode: seconds
def test_cross_replica_batchnorm_equals_whole_batch(tiny):
    """With axis_name, BN statistics average over replicas: 2 shards of 4 == one batch of 8."""
    model, _, variables, x = tiny
    synced = model.clone(axis_name="batch")
    train = functools.partial(model.apply, train=True, mutable=["batch_stats"])
    whole, whole_state = jax.jit(train)(variables, x)
    sharded, sharded_state = jax.jit(
        jax.vmap(
            lambda xs: synced.apply(variables, xs, train=True, mutable=["batch_stats"]),
            axis_name="batch",
        )
    )(x.reshape(2, 4, 32, 32, 3))
    np.testing.assert_allclose(sharded.reshape(8, 10), whole, rtol=1e-4, atol=1e-4)
    first_replica = jax.tree_util.tree_map(lambda a: a[0], sharded_state)
    chex.assert_trees_all_close(first_replica, whole_state, rtol=1e-4, atol=1e-5)
    # The running statistics moved away from their initial values.
    moved = zip(
        jax.tree_util.tree_leaves(variables["batch_stats"]), jax.tree_util.tree_leaves(whole_state)
    )
    assert any(not np.allclose(a, b) for a, b in moved)


@pytest.mark.parametrize(
    "shape,message",
    [
        ((32, 32, 3), r"rank 4 .* got an array of shape \(32, 32, 3\)"),
        ((1, 32, 32, 1), r"Expected 3 channels .* got shape \(1, 32, 32, 1\)"),
        ((1, 3, 32, 32), r"Expected 3 channels"),
        ((1, 16, 16, 3), r"16x16 are too small for this network; its smallest input is 31x31"),
    ],
)
def test_bad_inputs_raise_clear_errors(shape, message):
    model = get_model("attention56", 10, **TINY_IMAGENET)
    with pytest.raises(ValueError, match=message):
        model.init(jax.random.key(0), jnp.zeros(shape))
