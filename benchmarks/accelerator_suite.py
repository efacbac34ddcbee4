r"""One prepared run on an accelerator: correctness, train-step speed, the PyTorch peer, input.

    python benchmarks/accelerator_suite.py --out=DIR [--budget_s=SECONDS] [--cases=PATTERNS]
    python benchmarks/accelerator_suite.py --out=DIR --tiny      # every case, toy sizes, CPU
    python benchmarks/accelerator_suite.py --list [--tiny]       # the cases, in order
    python benchmarks/accelerator_suite.py --summarize DIR1 DIR2 --out=DIR   # merge runs

Cases, most important first (issue 17; ``--list`` prints them):

1. ``correctness/*``: ``pytest`` on the model and train-step tests that need no TensorFlow,
   with JAX on the accelerator (``correctness/pytest``, run beside the next three); then
   ``attention56`` at 224, same parameters and inputs on the accelerator and on the host CPU
   (float32 there): float32 logits within the tests' tolerance at HIGHEST matmul precision
   and within a TF32 bound at the default one (``logits-f32``), bfloat16 logits within the
   bf16 bound of ``tests/models/test_network.py`` (``logits-bf16``), and two steps of the
   trainer's step, float32 at HIGHEST precision and bfloat16: the first loss and the first
   parameter update against the CPU's (``train-loss``). The bounds are the ``*_BOUND``
   constants below.
2. JAX train-step speed, ``ran_jax.benchmark.run`` (the trainer's step, bf16 compute, f32
   parameters, one device): ``attention56`` and ``attention92`` at 224, batch 256/128/64,
   remat off and on; ``cifar_attention92`` at 32, batch 1024 and 256; the eval step at 224,
   and at 320 for ``attention92``; ``pmap`` once against the default ``shard_map``.
3. The PyTorch peer, ``benchmarks/torch_reference.py`` on the same device at the same sizes,
   bf16 autocast and channels-last, eager and ``torch.compile`` (inductor), for every JAX
   case without remat; ``summary.*`` gives JAX/PyTorch per case.
4. ``pipeline/*``: ``ran_jax.data.pipeline_timing`` on this host's cores where TensorFlow is
   importable; elsewhere a recorded skip with the per-core figure measured on the 2-core CPU
   machine of ``docs/performance.md`` and the cores that feeding the fastest measured step
   would take.

Each case is appended to ``DIR/results.jsonl`` (one JSON object, flushed) as soon as it ends,
so a run cut short keeps what it measured; a case that fails is a record with its error, and
the suite goes on. Every record names the case, what it ran and on what (model, batch, image
size, dtype, remat, parallelism, mode, framework, versions, device kind), its ``status``
(``ok``, ``passed``, ``failed``, ``error``, ``skipped``) and figures. A case whose estimated
time no longer fits ``--budget_s`` is recorded as skipped, and the cheaper ones after it still
run; at the budget the running case is stopped. At the end ``summary.json`` and
``summary.md`` give the JAX/PyTorch ratios, the issue's targets, and the ``--cases`` value
that reruns what was skipped or failed. ``suite.log`` holds the workers' output.

JAX and PyTorch run in separate worker processes (this script with ``--worker``), one after
the other, so each has the device to itself and a crash costs one case. ``--tiny`` runs every
case at toy sizes on the CPU with TensorFlow unimportable (``tests/commands/
test_accelerator_suite.py`` runs it; ``torch.compile`` uses the ``aot_eager`` backend there,
``--inductor`` inductor); ``--no_tensorflow`` blocks TensorFlow in a full run. By its priors
the whole grid takes about 52 minutes on one H200; ``--budget_s`` (default: no limit) splits
it into shorter runs, each skipping what no longer fits, and ``--summarize`` merges their
``results.jsonl`` into one summary.

On a GPU machine (``docs/performance.md``, "GPU: the accelerator suite", lists what it needs
installed: JAX with CUDA, PyTorch with CUDA, pytest, ml-collections; TensorFlow is optional)::

    pip install -e '.[test]' 'jax[cuda12]' torch
    python benchmarks/accelerator_suite.py --out=gpu_results
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS, SUMMARY_JSON, SUMMARY_MD, LOG = "results.jsonl", "summary.json", "summary.md", "suite.log"

# Correctness bounds, on |got - ref| elementwise (scale = max |ref|).
F32_BOUND = dict(rtol=1e-4, atol=1e-4)  # tests/models/test_network.py (cross-replica BN)
TF32_BOUND = dict(scale=0.02, atol=0.02)  # float32 at default precision: TF32 on NVIDIA GPUs
BF16_BOUND = dict(scale=0.05, atol=0.02)  # tests/models/test_network.py (bfloat16 compute)
# The trainer's step: float32 at HIGHEST precision (the same arithmetic as the CPU's), and
# bfloat16. First step's loss: |loss - loss_cpu| / |loss_cpu|.
LOSS_BOUND = {"float32": 1e-3, "bfloat16": 3e-2}
# The first step's parameter update u (gradient, weight decay, Nesterov momentum) over all
# parameters: float32, |u - u_cpu| / |u_cpu|; bfloat16, the cosine of u and u_cpu. At random
# initialisation BatchNorm's backward pass (a small difference of large terms) magnifies
# rounding: bf16 against f32 gave a relative error of 0.53 (cosine 0.87) on --tiny's network,
# and PyTorch's bf16 autocast 0.65 (cosine 0.82) on the same one; a wrong gradient gives a
# cosine near 0 or below.
UPDATE_REL_BOUND = 1e-2  # float32
UPDATE_COSINE_BOUND = 0.5  # bfloat16

# The input pipeline on a 2-core CPU machine (docs/performance.md, "Input pipeline"),
# for machines without TensorFlow: images/s on 2 cores.
DEV_PIPELINE = {"imagenet2012": (484.0, 2), "cifar10": (5025.0, 2)}

# The test files whose tests need no TensorFlow and run JAX on the default device (the models,
# masks, and the step benchmark). Left out: tests that read data (TensorFlow), tests that pin
# JAX to the CPU themselves (training/test_train.py, test_host_allocator.py), and shape-only
# counts (models/test_registry.py, commands/test_summary.py).
PYTEST_FILES = (
    "tests/models/test_layers.py",
    "tests/models/test_attention_module.py",
    "tests/models/test_network.py",
    "tests/analysis/test_attention_maps.py",
    "tests/commands/test_benchmark.py",
)
# Asserts that the device's peak FLOP/s is unknown, true on the CPU only; the speed cases
# run the same step.
PYTEST_DESELECT = ("tests/commands/test_benchmark.py::test_figures_are_consistent",)
PYTEST_TINY = ("tests/models/test_layers.py", "-k", "pooled_size or interp_matches")
PYTEST_SHARE = 0.4  # of --budget_s, at most

_BLOCK_TF = (
    "import sys\nfor _n in ('tensorflow', 'tensorflow_datasets'):\n    sys.modules[_n] = None\n"
)
_PYTEST = _BLOCK_TF + "import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes of a full run, or of ``--tiny``'s toy run (one batch per axis)."""

    imagenet_size: int = 224
    large_size: int = 320
    imagenet_batches: tuple[int, ...] = (256, 128, 64)
    cifar_size: int = 32
    cifar_batches: tuple[int, ...] = (1024, 256)
    eval_batch: int = 256
    imagenet_overrides: tuple = ()  # get_model overrides, as (key, value) pairs
    cifar_overrides: tuple = ()
    imagenet_classes: int | None = None  # None: the model's default (1000, CIFAR 10)
    steps: int = 10
    warmup: int = 3
    compare_size: int = 224  # correctness: attention56 at this size and batch
    compare_batch: int = 4
    pytest_workers: int = 8
    pipeline: tuple = (("imagenet2012", 256, 12, 3), ("cifar10", 256, 100, 10))
    compile_backend: str = "inductor"  # torch.compile's backend for the peer


FULL = Sizes()
TINY = Sizes(
    imagenet_size=32,
    large_size=40,
    imagenet_batches=(2,),
    cifar_size=16,
    cifar_batches=(4,),
    eval_batch=2,
    # One Attention Module, in the stage whose mask pools once: the cheapest to compile.
    # attention56 and attention92 are then the same toy network (compiled once, cached).
    # Its trunk and pre/post units left out (t = p = 0): a third fewer layers to compile.
    imagenet_overrides=(
        ("widths", (2, 2, 4, 4)),
        ("stem_width", 4),
        ("modules", (0, 0, 1, 0)),
        ("p", 0),
        ("t", 0),
    ),  # fmt: skip
    cifar_overrides=(("widths", (2, 2, 2)), ("modules", (0, 0, 1)), ("p", 0), ("t", 0)),
    imagenet_classes=10,
    steps=2,
    warmup=1,
    # Toy widths and a batch of 2 at 32 px leave 2 values per channel to the last
    # BatchNorms, whose bf16 error is then noise; 8 images at 64 px leave 32.
    compare_size=64,
    compare_batch=8,
    pytest_workers=0,
    pipeline=(("imagenet2012", 4, 2, 1), ("cifar10", 8, 2, 1)),
    # On a CPU inductor generates C++ (not the GPU's Triton) and builds each kernel with g++:
    # its first toy graph cost 32 s of a core, a third of the whole dry run. So torch.compile
    # runs with aot_eager here: dynamo's graph capture and AOTAutograd's backward, which the
    # GPU's inductor starts from. --inductor compiles with inductor.
    compile_backend="aot_eager",
)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # pytest | compare | jax | torch | pipeline
    impl: str = ""  # jax, jax-remat, jax-pmap, torch-eager, torch-compile
    mode: str = "train"
    model: str = ""
    image_size: int = 0
    batch_size: int = 0
    prior_s: float = 60.0  # estimated seconds on an H200 until a like case is measured

    @property
    def remat(self) -> bool:
        return self.impl == "jax-remat"

    @property
    def parallelism(self) -> str:
        return "pmap" if self.impl == "jax-pmap" else "shard_map"

    @property
    def peer_key(self) -> tuple:
        return (self.mode, self.model, self.image_size, self.batch_size)

    @property
    def family(self) -> str:
        return f"{self.kind}:{self.impl}:{self.mode}:{self.model}"


def _speed(mode: str, model: str, size: int, batch: int, impl: str, prior: float) -> Case:
    kind = "torch" if impl.startswith("torch") else "jax"
    name = f"{mode}/{model}/{size}/b{batch}/{impl}"
    return Case(name, kind, impl, mode, model, size, batch, prior)


def cases(sizes: Sizes) -> list[Case]:
    """Every case of a run, most important first."""
    out = [
        Case("correctness/pytest", "pytest", prior_s=150),
        Case("correctness/logits-f32", "compare", model="attention56", prior_s=120),
        Case("correctness/logits-bf16", "compare", model="attention56", prior_s=30),
        Case("correctness/train-loss", "compare", model="attention56", prior_s=90),
    ]
    s, c = sizes.imagenet_size, sizes.cifar_size
    big, rest = sizes.cifar_batches[:1], sizes.cifar_batches[1:]
    jax_cases = (
        [_speed("train", "attention56", s, b, "jax", 60) for b in sizes.imagenet_batches]
        + [_speed("train", "cifar_attention92", c, b, "jax", 45) for b in big]
        + [_speed("train", "attention92", s, b, "jax", 90) for b in sizes.imagenet_batches]
        + [_speed("train", "cifar_attention92", c, b, "jax", 45) for b in rest]
        + [_speed("train", "attention56", s, b, "jax-remat", 75) for b in sizes.imagenet_batches]
        + [_speed("train", "attention92", s, b, "jax-remat", 110) for b in sizes.imagenet_batches]
        + [
            _speed("eval", "attention56", s, sizes.eval_batch, "jax", 30),
            _speed("eval", "attention92", s, sizes.eval_batch, "jax", 45),
            _speed("eval", "attention92", sizes.large_size, sizes.eval_batch, "jax", 45),
            _speed("train", "attention56", s, sizes.imagenet_batches[0], "jax-pmap", 60),
        ]
    )
    out += jax_cases
    for j in jax_cases:
        if j.impl == "jax":
            compile_prior = {"attention56": 120, "attention92": 180}.get(j.model, 90)
            if j.mode == "eval":
                compile_prior //= 2
            out.append(_speed(j.mode, j.model, j.image_size, j.batch_size, "torch-eager", 15))
            out.append(
                _speed(j.mode, j.model, j.image_size, j.batch_size, "torch-compile", compile_prior)
            )
    out += [Case(f"pipeline/{d}", "pipeline", prior_s=30) for d, *_ in sizes.pipeline]
    return out


def select(all_cases: list[Case], patterns: str | None) -> list[Case]:
    if not patterns:
        return list(all_cases)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [c for c in all_cases if any(fnmatch.fnmatchcase(c.name, p) for p in pats)]


def _overrides(sizes: Sizes, model: str) -> dict[str, Any]:
    return dict(sizes.cifar_overrides if model.startswith("cifar") else sizes.imagenet_overrides)


def _classes(sizes: Sizes, model: str) -> int | None:
    return None if model.startswith("cifar") else sizes.imagenet_classes


# ---------------------------------------------------------------------------- records


def versions() -> dict[str, str | None]:
    """Installed versions, read without importing anything."""
    names = (
        "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "libtpu", "flax", "optax",
        "orbax-checkpoint", "ml_collections", "numpy", "torch", "triton", "tensorflow",
        "tensorflow-cpu",
    )  # fmt: skip
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    found["python"] = platform.python_version()
    return found


def append(out: Path, record: dict[str, Any]) -> None:
    """Appends one JSON line to ``out/results.jsonl`` and pushes it to the disk."""
    line = json.dumps(record, default=str) + "\n"
    with open(out / RESULTS, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_records(out: Path) -> list[dict[str, Any]]:
    path = out / RESULTS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            pass
    return records


def _base(case: Case, tiny: bool) -> dict[str, Any]:
    record = {"case": case.name, "kind": case.kind, "tiny": tiny}
    if case.kind in ("jax", "torch"):
        record.update(
            framework=case.impl.split("-")[0] if case.kind == "jax" else case.impl,
            mode=case.mode,
            model=case.model,
            image_size=case.image_size,
            batch_size=case.batch_size,
            dtype="bfloat16",
            remat=case.remat,
            parallelism=case.parallelism if case.kind == "jax" else None,
        )
    return record


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:500] if text else type(e).__name__


def _skip(case: Case, tiny: bool, reason: str) -> dict[str, Any]:
    return {**_base(case, tiny), "status": "skipped", "reason": reason, "versions": versions()}


# ---------------------------------------------------------------------------- workers


def _block_tensorflow() -> None:
    """As if TensorFlow were not installed (tests/helpers/without_tensorflow.py)."""
    for name in ("tensorflow", "tensorflow_datasets"):
        sys.modules[name] = None


def _estimate(case: Case, observed: dict[str, float], tiny: bool) -> float:
    if tiny:  # every case runs; only the hard stop at the budget applies
        return 0.0
    if case.family in observed:
        return observed[case.family]
    like = [v for k, v in observed.items() if k.split(":")[::2] == case.family.split(":")[::2]]
    if like:  # same kind and mode, other implementation or model
        return 1.3 * max(like)
    return case.prior_s


def jax_case(case: Case, sizes: Sizes) -> dict[str, Any]:
    import jax

    from ran_jax import benchmark

    r = benchmark.run(
        case.model,
        case.batch_size,
        case.image_size,
        dtype="bfloat16",
        mode=case.mode,
        steps=sizes.steps,
        warmup=sizes.warmup,
        parallelism=case.parallelism,
        devices=1,
        remat=case.remat,
        num_classes=_classes(sizes, case.model),
        model_overrides=_overrides(sizes, case.model),
    )
    parts = [r.get(k) for k in ("xla_argument_bytes", "xla_output_bytes", "xla_temp_bytes")]
    if all(p is not None for p in parts):
        # What the step's executable holds at once; peak_device_bytes is the process's peak
        # since it started, over this case and the ones before it in the same worker.
        r["xla_step_bytes"] = sum(parts) - (r.get("xla_alias_bytes") or 0)
    r["framework"] = "jax"
    r["mfu"] = r.get("fraction_of_peak")
    r["jaxlib_version"] = importlib.metadata.version("jaxlib")
    r["platform"] = jax.devices()[0].platform
    return r


def torch_case(case: Case, sizes: Sizes, tiny: bool, inductor: bool = False) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(HERE))
    import torch_reference

    overrides = _overrides(sizes, case.model)
    args = argparse.Namespace(
        model=case.model,
        batch_size=case.batch_size,
        image_size=case.image_size,
        steps=sizes.steps,
        warmup=sizes.warmup,
        threads=1 if tiny else (os.cpu_count() or 1),
        mode=case.mode,
        device="cpu" if tiny else "auto",
        dtype="bfloat16",
        channels_last=True,
        compile=case.impl == "torch-compile",
        compile_backend=("inductor" if inductor else sizes.compile_backend),
        compile_mode=None,
        widths=overrides.get("widths"),
        modules=overrides.get("modules"),
        stem_width=overrides.get("stem_width"),
        p=overrides.get("p"),
        t=overrides.get("t"),
        r=overrides.get("r"),
        num_classes=_classes(sizes, case.model),
    )
    try:
        return torch_reference.benchmark(args)
    finally:
        torch._dynamo.reset()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _errors(got: Any, ref: Any) -> dict[str, float]:
    import numpy as np

    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max())
    return {
        "max_abs_error": float(diff.max()),
        "max_abs_reference": scale,
        "max_error_over_scale": float(diff.max() / scale) if scale else float(diff.max()),
        "relative_l2_error": float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30)),
        "finite": bool(np.isfinite(got).all()),
    }


def _within(got: Any, ref: Any, bound: dict[str, float]) -> bool:
    import numpy as np

    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if not np.isfinite(got).all():
        return False
    if "rtol" in bound:
        return bool(np.allclose(got, ref, rtol=bound["rtol"], atol=bound["atol"]))
    scale = float(np.abs(ref).max())
    return float(np.abs(got - ref).max()) <= bound["scale"] * scale + bound["atol"]


def compare_cases(wanted: list[Case], sizes: Sizes, tiny: bool) -> list[dict[str, Any]]:
    """The correctness comparisons: the same parameters and inputs on the default device and
    on the host CPU (float32). The CPU half runs in a thread beside the device half."""
    import concurrent.futures

    import jax
    import numpy as np

    from ran_jax import configs
    from ran_jax.models import get_model
    from ran_jax.training.model import make_model
    from ran_jax.training.parallel import DataParallel, to_host
    from ran_jax.training.state import create_train_state
    from ran_jax.training.steps import compile_steps

    names = {c.name for c in wanted}
    cpu, dev = jax.devices("cpu")[0], jax.devices()[0]
    model_name, size, batch = "attention56", sizes.compare_size, sizes.compare_batch
    overrides = _overrides(sizes, model_name)
    num_classes = _classes(sizes, model_name) or 1000
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=batch).astype(np.int32)

    def config(dtype: str):
        c = configs.base()
        c.model, c.dtype, c.batch_size = model_name, dtype, batch
        c.model_overrides.update(overrides)
        return c

    # One initial train state, made on the CPU and kept on the host: every run below starts
    # from copies of it (the train step donates its state).
    with jax.default_device(cpu):
        initial = jax.device_get(
            create_train_state(
                config("float32"), make_model(config("float32"), num_classes, size), images[0].shape
            )
        )
    variables = {"params": initial.params, "batch_stats": initial.batch_stats}

    def flat(tree: Any) -> Any:
        leaves = jax.tree_util.tree_leaves(tree)
        return np.concatenate([np.asarray(x, np.float64).ravel() for x in leaves])

    def logits(device, dtype: str, precision: str | None = None):
        model = get_model(model_name, num_classes, dtype=getattr(jax.numpy, dtype), **overrides)

        def forward(v, x):
            train, _ = model.apply(v, x, train=True, mutable=["batch_stats"])
            return train, model.apply(v, x, train=False)

        args = jax.device_put((variables, images), device)
        with jax.default_matmul_precision(precision):
            return jax.tree.map(np.asarray, jax.jit(forward)(*args))

    def losses(device, dtype: str, precision: str | None = None) -> tuple[list[float], Any]:
        """train_loss of two trainer steps, and the first step's parameter update (host)."""
        c = config(dtype)
        dp = DataParallel("shard_map", [device])
        net = make_model(c, num_classes, size)
        state = dp.put_state(initial.replace(apply_fn=net.apply))
        train_step, _ = compile_steps(c, dp)
        placed = dp.put_batch({"image": images, "label": labels})
        out, update = [], None
        with jax.default_matmul_precision(precision):  # read when the step compiles
            for i in range(2):  # the second step's loss sees the first step's update
                state, metrics = train_step(state, placed)
                out.append(float(metrics["train_loss"]))
                if i == 0:
                    update = flat(to_host(state.params)) - flat(initial.params)
        return out, update

    need_logits = bool(names & {"correctness/logits-f32", "correctness/logits-bf16"})
    need_loss = "correctness/train-loss" in names

    def on_cpu():
        return (
            logits(cpu, "float32") if need_logits else None,
            losses(cpu, "float32") if need_loss else None,
        )

    common = {
        "model": model_name,
        "image_size": size,
        "batch_size": batch,
        "device_kind": dev.device_kind,
        "reference_device": cpu.device_kind,
        "reference_is_the_device": dev == cpu,
        "jax_version": jax.__version__,
        "overrides": overrides,
    }
    records = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cpu_future = pool.submit(on_cpu)
        got: dict[str, Any] = {}
        # Where the default device is the CPU itself (--tiny), its float32 results are the
        # reference's: they are not computed twice.
        on_host = dev == cpu
        if "correctness/logits-f32" in names and not on_host:
            got["f32_highest"] = logits(dev, "float32", "highest")
            got["f32_default"] = logits(dev, "float32")
        if "correctness/logits-bf16" in names:
            got["bf16"] = logits(dev, "bfloat16")
        if need_loss:
            got["loss_f32"] = None if on_host else losses(dev, "float32", "highest")
            got["loss_bf16"] = losses(dev, "bfloat16")
        ref_logits, ref_losses = cpu_future.result()
        if on_host:
            got.update(f32_highest=ref_logits, f32_default=ref_logits, loss_f32=ref_losses)

    def logit_checks(key: str, bound: dict, bound_text: str) -> dict[str, Any]:
        checks = {}
        for i, mode in enumerate(("train_mode", "eval_mode")):
            checks[mode] = {
                **_errors(got[key][i], ref_logits[i]),
                "passed": _within(got[key][i], ref_logits[i], bound),
            }
        return {**checks, "bound": bound_text, "passed": all(c["passed"] for c in checks.values())}

    what = "logits of the forward pass with batch statistics (train_mode) and running ones"
    if "correctness/logits-f32" in names:
        highest = logit_checks("f32_highest", F32_BOUND, f"allclose {F32_BOUND}")
        default = logit_checks("f32_default", TF32_BOUND, "max|d| <= 0.02 max|ref| + 0.02")
        records.append(
            {
                "case": "correctness/logits-f32",
                **common,
                "dtype": "float32",
                "what": what,
                "precision_highest": highest,
                "precision_default": default,
                "status": "passed" if highest["passed"] and default["passed"] else "failed",
            }
        )
    if "correctness/logits-bf16" in names:
        bf16 = logit_checks("bf16", BF16_BOUND, "max|d| <= 0.05 max|ref| + 0.02")
        records.append(
            {
                "case": "correctness/logits-bf16",
                **common,
                "dtype": "bfloat16",
                "what": what,
                **bf16,
                "status": "passed" if bf16["passed"] else "failed",
            }
        )
    if need_loss:
        checks = {}
        ref_loss, ref_update = ref_losses
        for dtype, key in (("float32", "loss_f32"), ("bfloat16", "loss_bf16")):
            loss, update = got[key]
            first = abs(loss[0] - ref_loss[0]) / abs(ref_loss[0])
            moved = float(np.linalg.norm(update - ref_update) / np.linalg.norm(ref_update))
            cosine = float(
                update @ ref_update / (np.linalg.norm(update) * np.linalg.norm(ref_update))
            )
            if dtype == "float32":
                bounds = {"first_loss": LOSS_BOUND[dtype], "update_relative_l2": UPDATE_REL_BOUND}
                update_ok = moved <= UPDATE_REL_BOUND
            else:
                bounds = {"first_loss": LOSS_BOUND[dtype], "update_cosine": UPDATE_COSINE_BOUND}
                update_ok = cosine >= UPDATE_COSINE_BOUND
            checks[dtype] = {
                "precision": "highest" if dtype == "float32" else "default",
                "losses": loss,
                "first_loss_relative_error": first,
                "second_loss_relative_error": abs(loss[1] - ref_loss[1]) / abs(ref_loss[1]),
                "update_relative_l2_error": moved,
                "update_cosine": cosine,
                "bounds": bounds,
                "passed": bool(first <= LOSS_BOUND[dtype] and update_ok),
            }
        records.append(
            {
                "case": "correctness/train-loss",
                **common,
                "what": "train_loss of two trainer steps (shard_map, 1 device) and the first "
                "step's parameter update, against float32 on the CPU",
                "cpu_float32_losses": ref_loss,
                **checks,
                "status": "passed" if all(c["passed"] for c in checks.values()) else "failed",
            }
        )
    return records


def pipeline_case(
    dataset: str, batch: int, batches: int, warmup: int, train_images_per_second: float | None
) -> dict[str, Any]:
    """The input pipeline on this host (TensorFlow needed), against the train step's rate."""
    from ran_jax.data import pipeline_timing

    r = pipeline_timing.benchmark(pipeline_timing.make_config(dataset, batch), batches, warmup)
    per_core = r["images_per_second"] / r["cpu_cores"]
    r["per_core_images_per_second"] = per_core
    r["train_images_per_second"] = train_images_per_second
    r["cores_needed"] = (
        math.ceil(train_images_per_second / per_core) if train_images_per_second else None
    )
    return r


def worker(args: argparse.Namespace) -> None:
    """Runs the named cases of one kind in order, appending each record as it ends."""
    if args.no_tensorflow or args.tiny:
        _block_tensorflow()
    sizes = TINY if args.tiny else FULL
    by_name = {c.name: c for c in cases(sizes)}
    todo = [by_name[n] for n in args.case_names.split(",") if n]
    out = Path(args.out)
    observed: dict[str, float] = json.loads(args.estimates or "{}")
    if args.worker in ("jax", "compare"):
        from ran_jax.training import host_allocator

        host_allocator.keep_freed_memory()  # CPU-only hosts (--tiny); nothing elsewhere
    if args.worker == "compare":
        start = time.time()
        try:
            records = compare_cases(todo, sizes, args.tiny)
        except Exception as e:  # every comparison asked for fails with it
            records = [{"case": c.name, "status": "error", "error": _one_line(e)} for c in todo]
        for r in records:
            case = by_name[r["case"]]
            append(out, {**_base(case, args.tiny), **r, "seconds": time.time() - start,
                         "versions": versions()})  # fmt: skip
        return
    extra = json.loads(args.extra or "{}")
    for case in todo:
        need = _estimate(case, observed, args.tiny)
        left = args.deadline - time.time()
        if need > left:
            append(
                out, _skip(case, args.tiny, f"budget: needs about {need:.0f} s, {left:.0f} s left")
            )
            continue
        print(f"[suite] {case.name}: start ({left:.0f} s left)", flush=True)
        start = time.time()
        record = _base(case, args.tiny)
        try:
            if case.kind == "jax":
                figures = jax_case(case, sizes)
            elif case.kind == "torch":
                figures = torch_case(case, sizes, args.tiny, args.inductor)
            else:
                spec = dict((d, rest) for d, *rest in sizes.pipeline)[case.name.split("/")[1]]
                figures = pipeline_case(case.name.split("/")[1], *spec, extra.get(case.name))
            record.update(figures, status="ok")
        except Exception as e:
            record.update(status="error", error=_one_line(e))
        record.update(seconds=time.time() - start, versions=versions())
        append(out, record)
        observed[case.family] = record["seconds"]
        print(f"[suite] {case.name}: {record['status']} in {record['seconds']:.1f} s", flush=True)


# ---------------------------------------------------------------------------- orchestrator


def _children_cpu() -> float:
    """CPU seconds (user and system) of the ended child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tiny = args.tiny
        self.sizes = TINY if args.tiny else FULL
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.time()
        self.deadline = self.start + args.budget_s
        self.no_tf = args.tiny or args.no_tensorflow
        self.log = open(self.out / LOG, "a")
        self._cache: str | None = None
        results = self.out / RESULTS  # records of an earlier run into the same folder stay
        self._offset = results.stat().st_size if results.exists() else 0

    # -- processes

    def cache_dir(self) -> str:
        """A JAX compilation cache for this --tiny run, removed at its end."""
        if self._cache is None:
            self._cache = tempfile.mkdtemp(prefix="suite_jax_cache_")
        return self._cache

    def _env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if self.tiny:  # toy figures: compile fast, and each distinct computation once
            env["JAX_PLATFORMS"] = "cpu"
            env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
            if "JAX_COMPILATION_CACHE_DIR" not in env:
                env["JAX_COMPILATION_CACHE_DIR"] = self.cache_dir()
            env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
            env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
            env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # no pool of compile workers to start
        env.update(extra)
        return env

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.log.write(f"\n$ {' '.join(argv[:4])} ...\n")
        self.log.flush()
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole at the budget
        )  # fmt: skip

    def _wait(self, proc: subprocess.Popen, until: float | None = None) -> bool:
        """Waits until the process ends or the budget (or ``until``) does; False if it had to
        be stopped."""
        start, cpu = time.time(), _children_cpu()
        end = self.deadline if until is None else min(until, self.deadline)
        try:
            proc.wait(timeout=max(end - time.time(), 0.1))
            return True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        finally:
            self.log.write(
                f"[suite] process {proc.args[2][-40:]!r} ended after {time.time() - start:.1f} s, "
                f"{_children_cpu() - cpu:.1f} s of CPU\n"
            )
            self.log.flush()

    def _observed(self) -> dict[str, float]:
        by_name = {c.name: c for c in cases(self.sizes)}
        seen = {}
        for r in read_records(self.out):
            case = by_name.get(r.get("case"))
            if case and r.get("status") not in ("skipped",) and "seconds" in r:
                seen[case.family] = r["seconds"]
        return seen

    def _done(self) -> set[str]:
        """The cases recorded by this run."""
        with open(self.out / RESULTS, "rb") as f:
            f.seek(self._offset)
            lines = f.read().decode(errors="replace").splitlines()
        done = set()
        for line in lines:
            try:
                done.add(json.loads(line).get("case"))
            except json.JSONDecodeError:
                pass
        return done

    def _last_log_line(self) -> str:
        self.log.flush()
        with open(self.out / LOG, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [x.strip() for x in f.read().decode(errors="replace").splitlines()]
        lines = [x for x in lines if x and not x.startswith("[suite]")]
        return lines[-1][:300] if lines else ""

    def run_worker(self, kind: str, group: list[Case], extra: dict | None = None) -> None:
        """Runs ``group`` in worker processes; a crash costs one case, the rest go on."""
        todo = list(group)
        while todo:
            argv = [
                sys.executable, "-u", str(Path(__file__).resolve()), f"--worker={kind}",
                f"--out={self.out}", f"--deadline={self.deadline}",
                f"--case_names={','.join(c.name for c in todo)}",
                f"--estimates={json.dumps(self._observed())}", f"--extra={json.dumps(extra or {})}",
            ]  # fmt: skip
            if self.tiny:
                argv.append("--tiny")
            if self.no_tf:
                argv.append("--no_tensorflow")
            if self.args.inductor:
                argv.append("--inductor")
            # The comparisons share the device with the pytest run: no preallocated pool.
            extra_env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if kind == "compare" else {}
            proc = self._spawn(argv, self._env(**extra_env))
            finished = self._wait(proc)
            done = self._done()
            todo = [c for c in todo if c.name not in done]
            if not todo:
                return
            if finished and proc.returncode == 0:  # should not happen: it records each case
                reason = "the worker ended without recording it"
            elif finished:
                reason = (
                    f"the worker died (exit status {proc.returncode}): "
                    f"{self._last_log_line()} (see {LOG})"
                )
            else:
                reason = f"stopped at the budget ({self.args.budget_s:.0f} s)"
            failed = todo.pop(0) if kind != "compare" else None
            if failed is not None:
                append(
                    self.out,
                    {**_base(failed, self.tiny), "status": "error", "error": reason,
                     "versions": versions()},
                )  # fmt: skip
            if kind == "compare":
                for c in todo:
                    append(self.out, {**_base(c, self.tiny), "status": "error", "error": reason})
                return
            if not finished:
                for c in todo:
                    append(self.out, _skip(c, self.tiny, "budget spent"))
                return

    def start_pytest(self, case: Case) -> tuple[subprocess.Popen, str, float] | None:
        need = _estimate(case, self._observed(), self.tiny)
        left = self.deadline - time.time()
        if need > left:
            append(self.out, _skip(case, self.tiny, f"budget: needs about {need:.0f} s"))
            return None
        junit = tempfile.mkdtemp(prefix="suite_pytest_")
        argv = [sys.executable, "-c", _PYTEST]
        if self.tiny:
            argv += list(PYTEST_TINY)
        else:
            argv += list(PYTEST_FILES) + [f"--deselect={d}" for d in PYTEST_DESELECT]
            if importlib.util.find_spec("xdist") and self.sizes.pytest_workers:
                argv += ["-n", str(self.sizes.pytest_workers)]
        argv += ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}/junit.xml"]
        env = self._env(XLA_PYTHON_CLIENT_PREALLOCATE="false")
        if not self.tiny:
            # JAX picks the accelerator (tests/conftest.py sets "cpu" only where it is unset).
            env["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "")
        return self._spawn(argv, env), junit, time.time()

    def finish_pytest(self, case: Case, started: tuple[subprocess.Popen, str, float]) -> None:
        proc, junit, start = started
        # At most PYTEST_SHARE of the budget, so that a slow or stuck test run leaves the
        # speed cases their time.
        finished = self._wait(proc, until=start + PYTEST_SHARE * self.args.budget_s)
        record: dict[str, Any] = {
            **_base(case, self.tiny),
            "seconds": time.time() - start,
            "files": list(PYTEST_TINY if self.tiny else PYTEST_FILES),
            "deselected": [] if self.tiny else list(PYTEST_DESELECT),
            "tensorflow": "blocked",
            "versions": versions(),
        }
        path = Path(junit, "junit.xml")
        if path.exists():
            suite = ET.parse(path).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
            problems = []
            for tc in suite.iter("testcase"):
                for tag in ("failure", "error"):
                    bad = tc.find(tag)
                    if bad is not None:
                        message = (bad.get("message") or "").strip().splitlines()
                        problems.append(
                            f"{tc.get('classname')}::{tc.get('name')}: "
                            f"{message[0][:300] if message else tag}"
                        )
            record.update(counts, problems=problems[:30])
            failed = counts["failures"] + counts["errors"]
            record["status"] = "passed" if proc.returncode == 0 and not failed else "failed"
        else:
            record["status"] = "error"
            record["error"] = (
                f"pytest exited {proc.returncode} without a report; see {LOG}"
                if finished
                else f"stopped after {time.time() - start:.0f} s, its share of the budget"
            )
        shutil.rmtree(junit, ignore_errors=True)
        append(self.out, record)

    # -- the run

    def environment(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "case": "environment",
            "kind": "environment",
            "tiny": self.tiny,
            "argv": sys.argv[1:],
            "budget_s": _budget(self.args),
            "host_cores": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "versions": versions(),
            "tensorflow_importable": not self.no_tf
            and bool(importlib.util.find_spec("tensorflow")),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        if shutil.which("nvidia-smi"):
            query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm"
            try:
                smi = subprocess.run(
                    ["nvidia-smi", query, "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                record["nvidia_smi"] = smi.stdout.strip()
            except (OSError, subprocess.SubprocessError) as e:
                record["nvidia_smi"] = _one_line(e)
        try:  # a copy of the tree may have no .git, or no git
            git = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
            )
            record["commit"] = git.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            record["commit"] = None
        return record

    def pipeline(self, group: list[Case]) -> None:
        records = read_records(self.out)

        def fastest(cifar: bool) -> tuple[float | None, str | None]:
            best = max(
                (
                    r for r in records
                    if r.get("kind") == "jax" and r.get("status") == "ok"
                    and r.get("mode") == "train" and r["model"].startswith("cifar") == cifar
                ),
                key=lambda r: r["images_per_second"], default=None,
            )  # fmt: skip
            return (best["images_per_second"], best["case"]) if best else (None, None)

        rates = {c.name: fastest(c.name.endswith("cifar10")) for c in group}
        if not self.no_tf and importlib.util.find_spec("tensorflow"):
            self.run_worker("pipeline", group, {k: v[0] for k, v in rates.items()})
            return
        for case in group:
            dataset = case.name.split("/")[1]
            images, cores = DEV_PIPELINE[dataset]
            per_core = images / cores
            train, source = rates[case.name]
            append(
                self.out,
                {
                    **_base(case, self.tiny),
                    "status": "skipped",
                    "reason": "no TensorFlow on this machine",
                    "dataset": dataset,
                    "per_core_images_per_second": per_core,
                    "per_core_source": (
                        f"docs/performance.md, Input pipeline: {images:,.0f} images/s on "
                        f"{cores} cores of the 2-core CPU machine of docs/performance.md"
                    ),
                    "train_images_per_second": train,
                    "train_case": source,
                    "cores_needed": math.ceil(train / per_core) if train else None,
                    "host_cores": len(os.sched_getaffinity(0)),
                    "versions": versions(),
                },
            )

    def run(self) -> dict[str, Any]:
        append(self.out, self.environment())
        chosen = select(cases(self.sizes), self.args.cases)
        i = 0
        while i < len(chosen):
            kind = chosen[i].kind
            group = []
            while i < len(chosen) and chosen[i].kind == kind:
                group.append(chosen[i])
                i += 1
            if kind == "pytest":
                started = self.start_pytest(group[0])
                if i < len(chosen) and chosen[i].kind == "compare":  # beside the pytest run
                    compare = []
                    while i < len(chosen) and chosen[i].kind == "compare":
                        compare.append(chosen[i])
                        i += 1
                    self.run_compare(compare)
                if started:
                    self.finish_pytest(group[0], started)
            elif kind == "compare":
                self.run_compare(group)
            elif kind == "pipeline":
                self.pipeline(group)
            else:
                self.run_worker(kind, group)
        self.log.close()
        if self._cache:
            shutil.rmtree(self._cache, ignore_errors=True)
        return write_summary(self.out, self.args, time.time() - self.start)

    def run_compare(self, group: list[Case]) -> None:
        need = max(_estimate(c, self._observed(), self.tiny) for c in group)
        if need > self.deadline - time.time():
            for c in group:
                append(self.out, _skip(c, self.tiny, f"budget: needs about {need:.0f} s"))
            return
        self.run_worker("compare", group)


# ---------------------------------------------------------------------------- summary


def _fmt(x: float | None, spec: str = ".0f") -> str:
    return "–" if x is None else format(x, spec)


def write_summary(out: Path, args: argparse.Namespace, elapsed: float | None) -> dict[str, Any]:
    """summary.json and summary.md from results.jsonl (also usable on a cut-short run)."""
    records = [r for r in read_records(out) if r.get("kind") != "environment"]
    env = next((r for r in read_records(out) if r.get("kind") == "environment"), {})
    last = {r["case"]: r for r in records}  # a rerun's record replaces an earlier one
    ok = {k: r for k, r in last.items() if r.get("status") == "ok"}
    peers: dict[tuple, dict[str, dict]] = {}
    for r in ok.values():
        if r.get("kind") == "torch":
            key = (r["mode"], r["model"], r["image_size"], r["batch_size"])
            peers.setdefault(key, {})[r["framework"]] = r
    rows = []
    for name, r in last.items():
        if r.get("kind") != "jax":
            continue
        key = (r.get("mode"), r.get("model"), r.get("image_size"), r.get("batch_size"))
        p = peers.get(key, {}) if not r.get("remat") and r.get("parallelism") == "shard_map" else {}
        jax_ips = r.get("images_per_second") if r.get("status") == "ok" else None
        row = {"case": name, "status": r.get("status"), "jax_images_per_second": jax_ips}
        counted = {fw: x.get("params") for fw, x in p.items()}
        row["params_match"] = (
            all(n == r.get("params") for n in counted.values()) if counted and jax_ips else None
        )
        for fw in ("pytorch-eager", "pytorch-compile"):
            torch_ips = p.get(fw, {}).get("images_per_second")
            row[f"{fw}_images_per_second"] = torch_ips
            row[f"ratio_vs_{fw}"] = jax_ips / torch_ips if jax_ips and torch_ips else None
        for k in ("step_seconds_median", "step_seconds_min", "step_seconds_max",
                  "compile_seconds", "mfu", "xla_step_bytes", "peak_device_bytes"):  # fmt: skip
            row[k] = r.get(k)
        rows.append(row)

    def best(model: str, size: int | None = None) -> dict | None:
        cands = [
            x for x in rows
            if x["jax_images_per_second"] and f"train/{model}/" in x["case"]
            and x["case"].endswith("/jax") and (size is None or f"/{size}/" in x["case"])
        ]  # fmt: skip
        return max(cands, key=lambda x: x["jax_images_per_second"], default=None)

    sizes = TINY if args.tiny else FULL
    a56 = best("attention56", sizes.imagenet_size)
    c92 = next(
        (x for x in rows if x["case"] == f"train/cifar_attention92/{sizes.cifar_size}/"
         f"b{sizes.cifar_batches[0]}/jax"), None,
    )  # fmt: skip
    targets = [
        {
            "target": "attention56 @224 bf16 train >= 4,000 images/s",
            "measured": a56 and a56["jax_images_per_second"],
            "case": a56 and a56["case"],
            "met": (a56["jax_images_per_second"] >= 4000) if a56 else None,
        },
        {
            "target": "attention56 @224 >= 1.2x torch.compile (at JAX's best batch)",
            "measured": a56 and a56["ratio_vs_pytorch-compile"],
            "case": a56 and a56["case"],
            "met": (a56["ratio_vs_pytorch-compile"] >= 1.2)
            if a56 and a56["ratio_vs_pytorch-compile"]
            else None,
        },
        {
            "target": "cifar_attention92 batch 1024 >= 1.2x torch.compile",
            "measured": c92 and c92["ratio_vs_pytorch-compile"],
            "case": c92 and c92["case"],
            "met": (c92["ratio_vs_pytorch-compile"] >= 1.2)
            if c92 and c92["ratio_vs_pytorch-compile"]
            else None,
        },
    ]
    slower = [x["case"] for x in rows if (x["ratio_vs_pytorch-eager"] or 2) < 1]
    compared = [x for x in rows if x["ratio_vs_pytorch-eager"]]
    targets.append(
        {
            "target": "no case slower than eager PyTorch",
            "measured": f"{len(slower)} slower of {len(compared)} compared",
            "case": ", ".join(slower) or None,
            "met": (not slower) if compared else None,
        }
    )
    counts: dict[str, int] = {}
    for r in last.values():
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    rerun = [n for n, r in last.items() if r.get("status") in ("error", "skipped", "failed")]
    rerun = [n for n in rerun if not n.startswith("pipeline/")]  # their skip is their result
    summary = {
        "elapsed_s": elapsed,
        "budget_s": _budget(args),
        "tiny": args.tiny,
        "device": env.get("nvidia_smi")
        or next((r.get("device_kind") for r in records if r.get("device_kind")), None),
        "versions": env.get("versions"),
        "commit": env.get("commit"),
        "counts": counts,
        "correctness": {
            n: {"status": r.get("status"), "error": r.get("error")}
            for n, r in last.items()
            if n.startswith("correctness/")
        },
        "speed": rows,
        "torch": [
            {
                k: r.get(k)
                for k in (
                    "case",
                    "status",
                    "images_per_second",
                    "step_seconds_median",
                    "first_step_seconds",
                    "peak_device_bytes",
                    "error",
                    "reason",
                )
            }
            for r in last.values()
            if r.get("kind") == "torch"
        ],  # fmt: skip
        "pipeline": [r for n, r in last.items() if n.startswith("pipeline/")],
        "targets": targets,
        "params_mismatch": [x["case"] for x in rows if x["params_match"] is False],
        "not_measured": {
            n: r.get("error") or r.get("reason") for n, r in last.items() if n in rerun
        },
        "rerun_cases": ",".join(rerun),
    }
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / SUMMARY_MD).write_text(_markdown(summary))
    return summary


def _markdown(s: dict[str, Any]) -> str:
    gib = 2.0**30
    lines = [
        f"# Accelerator suite{' (--tiny)' if s['tiny'] else ''}",
        "",
        f"Device: {s['device']}. Commit {s['commit']}. "
        + (
            f"{s['elapsed_s']:.0f} s"
            + (f" of a {s['budget_s']:.0f} s budget. " if s["budget_s"] else ". ")
            if s["elapsed_s"] is not None
            else "Merged from earlier runs (--summarize). "
        )
        + "Cases: "
        + ", ".join(f"{v} {k}" for k, v in sorted(s["counts"].items())),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in (s["versions"] or {}).items()),
        "",
        "## Correctness",
        "",
        "| case | status | error |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {c['status']} | {c['error'] or ''} |" for n, c in s["correctness"].items()]
    lines += [
        "",
        "## Train and eval step, bf16 (JAX) against PyTorch (bf16 autocast, channels-last)",
        "",
        "| case | JAX images/s | step ms median (min-max) | compile s | MFU | XLA step GiB "
        "| eager images/s | compile images/s | JAX/eager | JAX/compile |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in s["speed"]:
        if x["jax_images_per_second"] is None:
            lines.append(f"| {x['case']} | {x['status']} | | | | | | | | |")
            continue
        ms = [1e3 * x[k] for k in ("step_seconds_median", "step_seconds_min", "step_seconds_max")]
        mfu = f"{100 * x['mfu']:.1f}%" if x["mfu"] is not None else "–"
        mem = _fmt(x["xla_step_bytes"] and x["xla_step_bytes"] / gib, ".1f")
        lines.append(
            f"| {x['case']} | {x['jax_images_per_second']:,.0f} | {ms[0]:.1f} ({ms[1]:.1f}-"
            f"{ms[2]:.1f}) | {_fmt(x['compile_seconds'], '.1f')} | {mfu} | {mem} | "
            f"{_fmt(x['pytorch-eager_images_per_second'], ',.0f')} | "
            f"{_fmt(x['pytorch-compile_images_per_second'], ',.0f')} | "
            f"{_fmt(x['ratio_vs_pytorch-eager'], '.2f')} | "
            f"{_fmt(x['ratio_vs_pytorch-compile'], '.2f')} |"
        )
    compared = sum(x["params_match"] is not None for x in s["speed"])
    lines += [
        "",
        f"Parameter counts, JAX against PyTorch: {compared - len(s['params_mismatch'])} of "
        f"{compared} compared cases agree"
        + (f"; differ: {', '.join(s['params_mismatch'])}." if s["params_mismatch"] else "."),
    ]
    lines += ["", "## Targets", "", "| target | measured | case | met |", "|---|---|---|---|"]
    for t in s["targets"]:
        m = t["measured"]
        m = f"{m:,.2f}" if isinstance(m, float) else ("–" if m is None else m)
        lines.append(f"| {t['target']} | {m} | {t['case'] or ''} | {t['met']} |")
    lines += ["", "## Input pipeline", ""]
    for p in s["pipeline"]:
        lines.append(
            f"- {p['case']}: {p.get('status')}"
            f"{' (' + p['reason'] + ')' if p.get('reason') else ''}; "
            f"{_fmt(p.get('per_core_images_per_second'))} images/s per core; the fastest "
            f"train step ({p.get('train_case') or p.get('case')}) takes "
            f"{_fmt(p.get('train_images_per_second'))} images/s: "
            f"{_fmt(p.get('cores_needed'))} core(s) to feed it."
        )
    lines += ["", "## Not measured (skipped, failed or errors)", ""]
    lines += [f"- {n}: {why}" for n, why in s["not_measured"].items()] or ["- none"]
    if s["rerun_cases"]:
        lines += ["", "Rerun them with:", "", f"    --cases={s['rerun_cases']}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- command line


def _budget(args: argparse.Namespace) -> float | None:
    """``--budget_s`` for the records: None where there is no limit."""
    return None if math.isinf(args.budget_s) else args.budget_s


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="results folder (results.jsonl, summary.json/.md, suite.log)")
    p.add_argument("--tiny", action="store_true", help="every case at toy sizes on the CPU")
    p.add_argument(
        "--budget_s",
        type=float,
        default=math.inf,
        help="seconds for all cases; what no longer fits is skipped (default: no limit)",
    )
    p.add_argument("--cases", default=None, help="comma-separated glob patterns of case names")
    p.add_argument("--no_tensorflow", action="store_true", help="TensorFlow unimportable")
    p.add_argument("--list", action="store_true", help="print the cases and exit")
    p.add_argument(
        "--summarize",
        nargs="+",
        metavar="DIR",
        help="merge the results.jsonl of earlier runs (later ones win per case) into --out "
        "and summarise them; runs nothing",
    )
    p.add_argument(
        "--inductor", action="store_true", help="--tiny: torch.compile with inductor everywhere"
    )
    # Internal: one worker process.
    p.add_argument("--worker", choices=("jax", "torch", "compare", "pipeline"), default=None)
    p.add_argument("--case_names", default="", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=math.inf, help=argparse.SUPPRESS)
    p.add_argument("--estimates", default=None, help=argparse.SUPPRESS)
    p.add_argument("--extra", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.list and not args.out:
        p.error("--out=DIR is required")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.worker:
        worker(args)
        return
    if args.tiny or args.no_tensorflow:
        _block_tensorflow()
    sizes = TINY if args.tiny else FULL
    if args.summarize:
        merged = [r for d in args.summarize for r in read_records(Path(d))]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        envs = [r for r in merged if r.get("kind") == "environment"]
        (out / RESULTS).write_text(
            "".join(json.dumps(r, default=str) + "\n" for r in envs[-1:] + [
                r for r in merged if r.get("kind") != "environment"
            ])
        )  # fmt: skip
        write_summary(out, args, None)
        print((out / SUMMARY_MD).read_text())
        return
    if args.list:
        for c in select(cases(sizes), args.cases):
            print(c.name if args.tiny else f"{c.name}  (about {c.prior_s:.0f} s on an H200)")
        return
    start = time.time()
    summary = Suite(args).run()
    print(Path(args.out, SUMMARY_MD).read_text())
    took = time.time() - start
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items()))
    print(f"accelerator suite{' --tiny' if args.tiny else ''}: {took:.1f} s; {counts}")


if __name__ == "__main__":
    main()
