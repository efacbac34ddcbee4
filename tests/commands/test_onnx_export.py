"""ONNX export (``python -m ran_jax.export --format=onnx``, ``training/onnx_graph.py``): the
units of every registered network and the mask ablations run in ONNX Runtime with
``model.apply``'s logits at two batch sizes; without the ``[onnx]`` extra, one line with the
install command. A trained run's ONNX export is tested beside its other exports, in
``test_use_trained.py``."""

import importlib.util
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import ROOT
from ran_jax import export
from ran_jax.models import get_model, list_models

needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason=f"the [onnx] extra is not installed: {export.ONNX_INSTALL}",
)

# Measured: at most 1.6e-6 (cifar_attention452 at full depth, batch 3).
RTOL = 1e-4


def _tiny(name: str, **overrides):
    """The network ``name`` at bottleneck width 2 (ResNeXt: 2 groups of 1) and its smallest
    usual input size (32 for CIFAR networks, 64 for ImageNet ones), with random BatchNorm
    statistics near the initial ones and convolution kernels at half their initial scale.

    Random networks hundreds of layers deep amplify rounding: with batch statistics as
    BatchNorm's, the logits of cifar_attention452 under jax.jit and without it differ by
    1e-4 of their largest, and ONNX Runtime's by as much. Smaller residual branches keep
    such networks near the identity, where a lowering error still shows.

    The variables are drawn here with the variances of the initialisers (He for
    convolutions, LeCun for the classifier, BatchNorm's scale 1 and biases 0) on shapes from
    ``jax.eval_shape``: running ``model.init`` of the deepest networks op by op took about as
    long as exporting them.
    """
    imagenet = name.startswith("attention")
    widths = (2, 2, 2, 2) if imagenet else (2, 2, 2)
    if "next" in name:
        overrides["cardinality"] = 2
    model = get_model(name, 10, widths=widths, **overrides)
    size = 64 if imagenet else 32
    shapes = jax.eval_shape(
        model.init, jax.random.PRNGKey(0), np.zeros((1, size, size, 3), np.float32)
    )
    rng = np.random.default_rng(0)

    def statistic(path, value):
        if path[-1].key == "mean":
            return rng.normal(0, 0.1, value.shape).astype(np.float32)
        return rng.uniform(0.5, 2.0, value.shape).astype(np.float32)

    def parameter(path, value):
        kind = path[-1].key
        if kind == "kernel":
            fan_in = int(np.prod(value.shape[:-1]))
            # He normal, at half scale, for convolutions; LeCun normal for the classifier
            std = 0.5 * np.sqrt(2 / fan_in) if len(value.shape) == 4 else np.sqrt(1 / fan_in)
            return rng.normal(0, std, value.shape).astype(np.float32)
        assert kind in ("scale", "bias"), jax.tree_util.keystr(path)
        return np.full(value.shape, 1.0 if kind == "scale" else 0.0, np.float32)

    return (
        model,
        {
            "params": jax.tree_util.tree_map_with_path(parameter, shapes["params"]),
            "batch_stats": jax.tree_util.tree_map_with_path(statistic, shapes["batch_stats"]),
        },
        size,
    )


def _check_runs_as_model_apply(name: str, **overrides) -> None:
    import onnx
    import onnxruntime

    from ran_jax.training import onnx_graph

    model, variables, size = _tiny(name, **overrides)
    forward = jax.jit(lambda x: model.apply(variables, x, train=False))
    proto = onnx_graph.to_onnx(forward, (size, size, 3))
    onnx.checker.check_model(proto, full_check=True)
    assert {op.domain for op in proto.opset_import} == {""}  # standard operators only
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", size, size, 3]
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    images = np.random.default_rng(1).normal(size=(3, size, size, 3)).astype(np.float32)
    # Evaluation is per image, so the first row of a batch of 3 is the batch of 1: one
    # compile of model.apply (seconds for the deepest networks) serves both batch sizes.
    expected = np.asarray(forward(images))
    for n in (1, 3):
        (got,) = session.run(None, {"images": images[:n]})
        assert got.shape == (n, 10)
        assert np.max(np.abs(got - expected[:n])) <= RTOL * np.max(np.abs(expected[:n]))


def _one_module_a_stage(name: str) -> tuple[int, ...]:
    return tuple(min(stage.num_modules, 1) for stage in get_model(name, 10).stages)


def _networks_by_units() -> dict[str, list[str]]:
    """The registered networks grouped by their form with at most one Attention Module a
    stage, each group named by the network of that form (or, if none is, its first)."""
    groups: dict = {}
    for name in list_models():
        form = get_model(name, 10, modules=_one_module_a_stage(name))
        groups.setdefault(form, []).append(name)
    return {
        next((n for n in names if get_model(n, 10) == form), names[0]): names
        for form, names in groups.items()
    }


# Depth adds no operator: a network with more Attention Modules a stage repeats the units of
# its one-module form, which is what is exported, once per group (the deepest networks took
# most of this file's time). cifar_attention452 (p=2, t=4, r=3) has units of its own.
GROUPS = _networks_by_units()


def test_the_exported_forms_group_every_registered_network_by_its_units():
    assert GROUPS == {
        "attention56": ["attention56", "attention92"],
        "attentionnext56": ["attentionnext56"],
        "cifar_attention452": ["cifar_attention452"],
        "cifar_attention56": [
            "cifar_attention128",
            "cifar_attention164",
            "cifar_attention236",
            "cifar_attention56",
            "cifar_attention92",
        ],
        "preact_resnet164": ["preact_resnet164"],
    }


@pytest.mark.slow
@needs_onnx
@pytest.mark.parametrize("name", sorted(GROUPS))
def test_the_units_of_every_registered_network_run_in_onnx_runtime_as_model_apply(name):
    _check_runs_as_model_apply(name, modules=_one_module_a_stage(name))


@needs_onnx
@pytest.mark.parametrize("overrides", [dict(mask_type="local"), dict(attention="naive")])
def test_the_mask_ablations_export_too(overrides):
    _check_runs_as_model_apply("cifar_attention56", **overrides)


def test_without_the_extra_the_export_names_the_install_command(monkeypatch, tmp_path):
    for module in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(
        ValueError, match=r"needs the onnx and onnxruntime .*: pip install"
    ) as error:
        export.export(str(tmp_path / "run"), str(tmp_path / "out"), "onnx")
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_without_the_extra_the_command_prints_one_line(tmp_path):
    code = (
        "import runpy, sys; sys.modules['onnx'] = sys.modules['onnxruntime'] = None; "
        f"sys.argv = ['export', '--workdir={tmp_path}', '--out={tmp_path / 'out'}', "
        "'--format=onnx']; runpy.run_module('ran_jax.export', run_name='__main__')"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --format=onnx needs the onnx and onnxruntime packages (onnx is missing): "
        + export.ONNX_INSTALL
    )
