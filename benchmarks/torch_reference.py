"""PyTorch baseline of ran_jax's ``attention56``, ``attention92`` and ``cifar_attention56/92``.

The networks of ``torch_networks.py`` (the same as ``ran_jax.models.get_model`` builds, in
plain PyTorch modules) timed on synthetic data. Parameter counts are asserted equal to
ran_jax's for the named networks; with ``--widths``/``--modules``/``--stem_width`` (ran_jax's
overrides of the same names) the count is reported for the caller to compare. ``benchmark``
is the same timing as a function (``benchmarks/accelerator_suite.py`` and
``benchmarks/paired_compare.py`` call it).

By default it is the plain eager CPU baseline of ``docs/performance.md``: float32, default
memory format, no ``torch.compile``, 2 threads, timed with the host clock:

    python benchmarks/torch_reference.py --model=attention56 --batch_size=8 --steps=10 --json
    python benchmarks/torch_reference.py --model=cifar_attention92 --batch_size=64 --mode=eval

On a GPU, as a PyTorch user would set it up (``benchmarks/accelerator_suite.py`` runs it so):
bf16 autocast over float32 parameters, channels-last tensors, ``cudnn.benchmark``, and
optionally ``torch.compile`` (inductor). Each timed step ends with ``torch.cuda.synchronize``
(host-clock step time, as ``ran_jax.benchmark`` waits for each step's result); CUDA events
give the device time of the same steps, and ``torch.cuda.max_memory_allocated`` the peak:

    python benchmarks/torch_reference.py --device=cuda --dtype=bfloat16 --channels_last \
        --compile --model=attention56 --batch_size=256 --json

PyTorch is NOT a dependency of ran_jax; install it, CPU only, in a separate environment:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu

(``benchmarks/requirements-torch.txt``; the test extra ``.[test-torch]`` installs plain
``torch`` for ``tests/commands/test_accelerator_suite.py``). Where that index cannot be
reached, plain ``pip install torch`` gets PyPI's CUDA build (several GB more of CUDA
libraries), whose CPU kernels (MKL, oneDNN) are the same; its version ends in ``+cuNNN``.
``torch.compile`` on the CPU needs a C++ compiler.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch_networks import MODELS, ResidualAttentionNetwork, count_params, model_spec


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device=cuda: torch sees no CUDA device.")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(
    model: str,
    batch_size: int,
    image_size: int | None = None,
    *,
    steps: int = 10,
    warmup: int = 3,
    threads: int = 2,
    mode: str = "train",
    device: str = "cpu",
    dtype: str = "float32",
    channels_last: bool = False,
    compile: bool = False,
    compile_backend: str = "inductor",
    compile_mode: str | None = None,
    widths: Sequence[int] | None = None,
    modules: Sequence[int] | None = None,
    stem_width: int | None = None,
    num_classes: int | None = None,
    p: int | None = None,
    t: int | None = None,
    r: int | None = None,
    in_channels: int | None = None,
    before_step: Callable[[], None] | None = None,
) -> dict:
    """Times ``steps`` train steps (or forward passes, ``mode='eval'``) of ``model`` after
    ``warmup`` untimed ones; returns the figures as a JSON-ready dict.

    ``image_size`` defaults to the network's (224 or 32). ``device`` is 'cpu', 'cuda' or
    'auto'; ``dtype`` 'float32' or 'bfloat16' (autocast, parameters stay float32);
    ``compile`` runs the network under ``torch.compile`` with ``compile_backend`` and
    ``compile_mode``. ``widths``, ``modules``, ``stem_width``, ``num_classes``, ``p``, ``t``,
    ``r`` and ``in_channels`` are ran_jax's overrides (``torch_networks.model_spec``).
    ``before_step`` runs, untimed, before each timed step (``benchmarks/paired_compare.py``
    interleaves two processes with it).
    """
    where = _device(device)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if where.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as a PyTorch user sets it for fixed shapes
    spec = model_spec(model, widths, modules, stem_width, num_classes, p, t, r, in_channels)
    network = ResidualAttentionNetwork(spec)
    params = count_params(network)
    if spec.params is not None and params != spec.params:
        raise RuntimeError(f"{model}: {params:,} parameters where ran_jax has {spec.params:,}")
    image_size = image_size or spec.image_size
    images = torch.randn(batch_size, spec.in_channels, image_size, image_size)
    labels = torch.randint(0, spec.num_classes, (batch_size,))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(device=where, memory_format=memory_format)
    images = images.to(device=where, memory_format=memory_format)
    labels = labels.to(where)
    net = torch.compile(network, backend=compile_backend, mode=compile_mode) if compile else network
    autocast = (
        functools.partial(torch.autocast, device_type=where.type, dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else contextlib.nullcontext
    )

    if mode == "train":
        network.train()
        optimizer = torch.optim.SGD(
            network.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
        )

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(net(images), labels)
            loss.backward()
            optimizer.step()

    else:
        network.eval()

        def step() -> None:
            with torch.no_grad(), autocast():
                net(images)

    if where.type == "cuda":
        torch.cuda.reset_peak_memory_stats(where)
    # The first step compiles (torch.compile) or picks cuDNN algorithms: timed on its own.
    untimed = max(warmup, 1) if compile else warmup
    first_step_seconds = None
    for i in range(untimed):
        start = time.perf_counter()
        step()
        _sync(where)
        if i == 0:
            first_step_seconds = time.perf_counter() - start
    times, device_times = [], []
    events = where.type == "cuda"
    for _ in range(steps):
        if before_step is not None:
            before_step()
        if events:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        start = time.perf_counter()
        step()
        if events:
            end.record()
        _sync(where)
        times.append(time.perf_counter() - start)
        if events:
            device_times.append(begin.elapsed_time(end) / 1e3)
    median = statistics.median(times)
    return {
        "model": model,
        "batch_size": batch_size,
        "image_size": image_size,
        "dtype": dtype,
        "mode": mode,
        "framework": "pytorch-compile" if compile else "pytorch-eager",
        "compile_backend": compile_backend if compile else None,
        "compile_mode": (compile_mode or "default") if compile else None,
        "memory_format": "channels_last" if channels_last else "contiguous",
        "device": where.type,
        "device_kind": torch.cuda.get_device_name(where) if where.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "first_step_seconds": first_step_seconds,
        "steps": steps,
        "step_seconds_median": median,
        "step_seconds_min": min(times),
        "step_seconds_max": max(times),
        "device_step_seconds_median": statistics.median(device_times) if device_times else None,
        "images_per_second": batch_size / median,
        "peak_device_bytes": (
            torch.cuda.max_memory_allocated(where) if where.type == "cuda" else None
        ),
        "params": params,
        "params_asserted": spec.params is not None,  # equal to ran_jax's count, checked
    }


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="attention56")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--image_size", type=int, default=None, help="default: 224 (ImageNet) or 32 (CIFAR)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--mode", choices=("train", "eval"), default="train")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16: torch.autocast over float32 parameters",
    )
    parser.add_argument("--channels_last", action="store_true", help="NHWC memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile (inductor)")
    parser.add_argument("--compile_backend", default="inductor", help="torch.compile's backend")
    parser.add_argument("--compile_mode", default=None, help="torch.compile's mode (inductor)")
    parser.add_argument("--widths", type=_ints, default=None, help="e.g. 2,2,4,4 (ran_jax's)")
    parser.add_argument("--modules", type=_ints, default=None, help="e.g. 1,0,0,0")
    parser.add_argument("--stem_width", type=int, default=None)
    parser.add_argument("--num_classes", type=int, default=None)
    parser.add_argument("--in_channels", type=int, default=None, help="1 for grey images")
    for key in ("p", "t", "r"):
        parser.add_argument(f"--{key}", type=int, default=None, help="Attention Modules' (3.1)")
    parser.add_argument("--json", action="store_true", help="end with a one-line JSON object")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("need --steps >= 1, --warmup >= 0 and --batch_size >= 1")
    options = vars(args)
    as_json = options.pop("json")
    r = benchmark(**options)
    counted = "equal to ran_jax's" if r["params_asserted"] else "overridden sizes"
    print(
        f"{r['model']} {r['mode']} (pytorch {r['torch']} {r['framework'].split('-')[1]} on "
        f"{r['device_kind']}, {r['threads']} thread(s), {r['dtype']}, {r['memory_format']}), "
        f"batch {r['batch_size']} at {r['image_size']}x{r['image_size']}, "
        f"{r['params']:,} parameters ({counted})"
    )
    print(
        f"  step: median {r['step_seconds_median']:.3f} s "
        f"(min {r['step_seconds_min']:.3f}, max {r['step_seconds_max']:.3f}, {args.steps} steps "
        f"after {args.warmup} warm-up), {r['images_per_second']:.2f} images/s"
    )
    if as_json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
