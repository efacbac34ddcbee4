r"""Exports a trained network for serving: a TensorFlow SavedModel, a ``jax.export`` file or
an ONNX model.

    python -m ran_jax.export --workdir=DIR --out=OUT                       # SavedModel
    python -m ran_jax.export --workdir=DIR --out=OUT --format=jax_export
    python -m ran_jax.export --workdir=DIR --out=OUT --format=onnx   # pip install -e '.[onnx]'

Each holds one function, the network in evaluation mode (BatchNorm running statistics) with
the run's input normalisation built in::

    logits = f(images)   # images: float32 [batch, S, S, C], pixel values 0-255

for any batch size. ``S`` is the run's evaluation size (``--image_size`` overrides it) and
``C`` its channels; prepare images as evaluation does (shorter side resized, centre crop;
``data.preprocess.eval_view`` minus its normalisation). ``OUT/signature.json`` records the
size, channels, class names and normalisation.

- ``saved_model`` (orbax-export, jax2tf): ``tf.saved_model.load(OUT)`` and call
  ``.signatures["serving_default"](images=x)["logits"]``; TF Serving loads it as is.
- ``jax_export``: ``OUT/model.jax_export`` is a serialized ``jax.export.Exported`` with the
  parameters inside: ``jax.export.deserialize(open(path, "rb").read()).call(x)``.
- ``onnx``: ``OUT/model.onnx`` (``training/onnx_graph.py``), standard operators of opset 17
  for ONNX Runtime; the batch size is free, the image size fixed at export.

The first two are lowered for CPU, CUDA GPUs and TPUs, so an export made on a CPU serves on
either. The SavedModel and the ONNX file are run once before they are kept (ONNX Runtime's
logits must also match ``model.apply``'s); one that fails is removed, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ran_jax import cli
from ran_jax.checks import check_choice
from ran_jax.training import trained

FORMATS = ("saved_model", "jax_export", "onnx")
JAX_EXPORT_FILE = "model.jax_export"
ONNX_FILE = "model.onnx"
ONNX_INSTALL = "pip install -e '.[onnx]' (in the ran_jax checkout)"
# Largest difference from model.apply's logits, relative to their largest: a wrong lowering
# is off by far more; rounding, amplified through hundreds of layers, by up to 1e-4.
ONNX_RTOL = 1e-3
SIGNATURE_FILE = "signature.json"
PLATFORMS = ("cpu", "cuda", "tpu")  # both formats hold code for each, whatever exports them


def _define_flags() -> None:
    cli.define_trained_run()
    flags.DEFINE_string("out", None, "Directory to write to (new or empty).", required=True)
    flags.DEFINE_string("format", "saved_model", f"One of: {', '.join(FORMATS)}.")
    flags.DEFINE_integer(
        "image_size", None, "Input side (default: the run's evaluation size); fixed in ONNX."
    )


def serving_fn(run: trained.Trained) -> Callable[[Any, jax.Array], jax.Array]:
    """``f(variables, images)``: logits of 0-255 pixel images, normalised as in training."""
    mean, std = (jnp.asarray(v, jnp.float32) for v in run.dataset.normalisation)

    def f(variables, images):
        x = (images / 255.0 - mean) / std
        return run.model.apply(variables, x, train=False)

    return f


def _check_out(out: str) -> None:
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ValueError(f"--out={out} exists and is not an empty directory; choose a new one.")


@contextlib.contextmanager
def _stablehlo_tensorflow_reads() -> Iterator[None]:
    """While exporting for TensorFlow, JAX writes StableHLO no newer than the installed
    TensorFlow reads.

    JAX writes the newest StableHLO that is at least 4 weeks old; jax 0.12 writes 1.18, which
    TensorFlow 2.21 (StableHLO 1.13.7) cannot read (``vhlo.custom_call_v2`` in the batch-size
    assertion), while jax 0.10 writes operations TensorFlow reads. This is the one place that
    tells the two JAX versions apart (docs/training.md). It sets the target through JAX's
    private ``hlo`` module; where that is missing, nothing changes and ``_verified`` reports
    a SavedModel TensorFlow cannot run.
    """
    from jax._src.lib.mlir.dialects import hlo
    from tensorflow.compiler.mlir.stablehlo import stablehlo

    target = getattr(hlo, "get_version_from_compatibility_requirement", None)
    if target is None:
        yield
        return

    def version(requirement: Any) -> str:
        ours, theirs = target(requirement), stablehlo.get_current_version()
        key = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
        return min(ours, theirs, key=key)

    hlo.get_version_from_compatibility_requirement = version
    try:
        yield
    finally:
        hlo.get_version_from_compatibility_requirement = target


def _saved_model(variables: Any, f, shape: tuple[int, ...], out: str) -> None:
    # TensorFlow (seconds to import) only for this format, after the run has been found, and
    # set up by tf_runtime before orbax.export imports it.
    from ran_jax.data.tf_runtime import tf  # noqa: I001
    from orbax.export import ExportManager, JaxModule, ServingConfig

    with _stablehlo_tensorflow_reads():
        module = JaxModule(
            variables,
            f,
            trainable=False,
            input_polymorphic_shape="(b, ...)",
            jax2tf_kwargs={"native_serialization_platforms": PLATFORMS},
        )
        config = ServingConfig(
            "serving_default",
            input_signature=[tf.TensorSpec((None, *shape), tf.float32, name="images")],
            tf_postprocessor=lambda logits: {"logits": logits},
        )
        ExportManager(module, [config]).save(out)
    _verified(out, shape)


def _verified(out: str, shape: tuple[int, ...]) -> None:
    """Runs the SavedModel once in TensorFlow; removes it and says why if that fails."""
    from ran_jax.data.tf_runtime import tf

    try:
        serve = tf.saved_model.load(out).signatures["serving_default"]
        serve(images=tf.zeros((1, *shape), tf.float32))
    except tf.errors.OpError as e:
        shutil.rmtree(out)
        raise ValueError(
            f"TensorFlow {tf.__version__} cannot run the SavedModel that JAX {jax.__version__} "
            f"wrote ({e.message.splitlines()[-1][:200]}); use --format=jax_export, or "
            "versions that agree (docs/training.md)."
        ) from e


def _jax_export(variables: Any, f, shape: tuple[int, ...], out: str) -> None:
    (batch,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(lambda images: f(variables, images)), platforms=PLATFORMS)(
        jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
    )
    with open(os.path.join(out, JAX_EXPORT_FILE), "wb") as file:
        file.write(exported.serialize())


def _onnx_modules() -> tuple[Any, Any]:
    """``onnx`` and ``onnxruntime``, or a ValueError with the command that installs them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ValueError(
            f"--format=onnx needs the onnx and onnxruntime packages ({e.name} is missing): "
            f"{ONNX_INSTALL}"
        ) from e
    return onnx, onnxruntime


def _onnx(variables: Any, f, shape: tuple[int, ...], out: str) -> None:
    from ran_jax.training import onnx_graph

    onnx, _ = _onnx_modules()
    path = os.path.join(out, ONNX_FILE)
    onnx.save(onnx_graph.to_onnx(lambda images: f(variables, images), shape), path)
    try:
        _onnx_checked(path, variables, f, shape)
    except ValueError:
        os.remove(path)
        raise


def _onnx_checked(path: str, variables: Any, f, shape: tuple[int, ...]) -> None:
    """Checks the ONNX file and runs it once in ONNX Runtime on a batch of 2 random images;
    a ValueError says why it is not the network."""
    onnx, onnxruntime = _onnx_modules()
    images = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype(np.float32)
    expected = np.asarray(jax.jit(f)(variables, images))
    try:
        onnx.checker.check_model(path, full_check=True)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"images": images})
    except Exception as e:  # the checker's and ONNX Runtime's errors share no base class
        reason = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"The ONNX model fails onnx.checker or ONNX Runtime ({reason}); no model.onnx was kept."
        ) from e
    error = float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-30))
    if not error <= ONNX_RTOL:
        raise ValueError(
            f"ONNX Runtime {onnxruntime.__version__}'s logits differ from model.apply's by "
            f"{error:.1e} of their largest (allowed {ONNX_RTOL:.0e}); no model.onnx was kept."
        )


def export(
    workdir: str,
    out: str,
    fmt: str = "saved_model",
    checkpoint: str = "latest",
    image_size: int | None = None,
    ema: bool = False,
) -> dict:
    """Writes the export of one checkpoint (its EMA weights with ``ema``) to ``out``."""
    check_choice("--format", fmt, FORMATS)
    if fmt == "onnx":
        _onnx_modules()
    _check_out(out)
    run = trained.load(workdir, checkpoint)
    variables = run.variables(ema)
    size = image_size or run.dataset.eval_image_size
    run.model.check_fits(size, what="Images (--image_size)")
    shape = (size, size, run.dataset.num_channels)
    os.makedirs(out, exist_ok=True)
    writers = {"saved_model": _saved_model, "jax_export": _jax_export, "onnx": _onnx}
    writers[fmt](variables, serving_fn(run), shape, out)
    mean, std = run.dataset.normalisation
    signature = {
        "format": fmt,
        "input": {"shape": ["batch", *shape], "dtype": "float32", "pixel_range": [0, 255]},
        "normalisation_inside": {"mean": list(mean), "std": list(std)},
        "output": {"logits": ["batch", run.dataset.num_classes]},
        "class_names": list(run.dataset.class_names),
        "model": run.config.model,
        "workdir": os.path.abspath(workdir),
        "step": run.step,
        "ema": ema,
    }
    with open(os.path.join(out, SIGNATURE_FILE), "w") as file:
        json.dump(signature, file, indent=1)
    return {"out": out, "format": fmt, "step": run.step, "input_shape": ["batch", *shape]}


def _show(r: dict) -> None:
    shape = "x".join(map(str, r["input_shape"]))
    print(f"Wrote {r['format']} of step {r['step']} to {r['out']} (input {shape}, float32 0-255)")


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    cli.report(
        argv, lambda: export(f.workdir, f.out, f.format, f.checkpoint, f.image_size, f.ema), _show
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
