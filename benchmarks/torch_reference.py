"""PyTorch baseline of ran_jax's ``attention56``, ``attention92`` and ``cifar_attention92``.

The same networks as ``ran_jax.models.get_model`` builds, written as straightforward PyTorch
modules (NCHW), timed on synthetic data. The topology follows the official Caffe deploy files
(``docs/faithfulness.md`` §2-4) as ran_jax does: pre-activation bottleneck units, a trunk
branch, a bottom-up top-down soft mask with Caffe ceil-mode max-pooling and corner-aligned
bilinear upsampling, attention residual learning ``(1 + M) * T`` (paper 3.1), and the stems
and heads of ``ran_jax/models/network.py``. Parameter counts (convolution and dense weights,
dense bias, BatchNorm scale and shift; not running statistics) are asserted equal to
ran_jax's for the named networks; with ``--widths``/``--modules``/``--stem_width`` (ran_jax's
overrides of the same names) the count is reported for the caller to compare.

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
import dataclasses
import functools
import json
import statistics
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage at a single resolution, as ``ran_jax.models.network.Stage``.

    See ``docs/faithfulness.md`` §4.1 and §5.3.
    """

    width: int  # bottleneck channels of its units
    channels: int  # output channels of its units
    num_modules: int = 0  # Attention Modules
    pool_levels: int = 1  # max-pooling levels of each module's soft mask
    stride: int = 1  # stride of the first unit
    units_before: int = 1
    units_after: int = 0


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A named network of ran_jax's registry and its parameter count there."""

    stem: str  # 'imagenet' (7x7/2 conv, BN-ReLU, max-pool) or 'cifar' (3x3 conv)
    stem_width: int
    stages: tuple[Stage, ...]
    num_classes: int
    image_size: int
    params: int | None  # as printed by ``python -m ran_jax.summary --model=NAME``
    p: int = 1  # Attention Module hyper-parameters (paper 3.1, ran_jax's overrides p, t, r)
    t: int = 2
    r: int = 1


def _imagenet_spec(modules: tuple[int, int, int], params: int) -> ModelSpec:
    """ran_jax's ``registry._imagenet``: pre-activation units, masks pooling 3, 2, 1 times."""
    m1, m2, m3 = modules
    return ModelSpec(
        stem="imagenet",
        stem_width=64,
        stages=(
            Stage(64, 256, num_modules=m1, pool_levels=3),
            Stage(128, 512, num_modules=m2, pool_levels=2, stride=2),
            Stage(256, 1024, num_modules=m3, pool_levels=1, stride=2),
            Stage(512, 2048, stride=2, units_before=3),
        ),
        num_classes=1000,
        image_size=224,
        params=params,
    )


MODELS: dict[str, ModelSpec] = {
    "attention56": _imagenet_spec((1, 1, 1), params=31_810_728),
    "attention92": _imagenet_spec((1, 2, 3), params=52_466_344),
    "cifar_attention92": ModelSpec(
        stem="cifar",
        stem_width=16,
        stages=tuple(
            Stage(w, 4 * w, num_modules=2, pool_levels=levels, stride=stride, units_after=1)
            for w, levels, stride in ((16, 3, 1), (32, 2, 2), (64, 1, 2))
        ),
        num_classes=10,
        image_size=32,
        params=1_841_242,
    ),
}


def model_spec(
    name: str,
    widths: Sequence[int] | None = None,
    modules: Sequence[int] | None = None,
    stem_width: int | None = None,
    num_classes: int | None = None,
    p: int | None = None,
    t: int | None = None,
    r: int | None = None,
) -> ModelSpec:
    """``MODELS[name]`` with ran_jax's overrides (``registry.get_model``'s rules): ``widths``
    sets each stage's bottleneck width (output channels keep the stage's expansion),
    ``modules`` its Attention Modules, ``p``, ``t``, ``r`` theirs. Any override drops the
    known parameter count."""
    spec = MODELS[name]
    stages = spec.stages
    for key, values in (("widths", widths), ("modules", modules)):
        if values is not None and len(values) != len(stages):
            raise ValueError(f"{key} needs one value per stage ({len(stages)}); got {values}.")
    if widths is not None:
        stages = tuple(
            dataclasses.replace(s, width=w, channels=w * s.channels // s.width)
            for s, w in zip(stages, widths)
        )
    if modules is not None:
        stages = tuple(dataclasses.replace(s, num_modules=m) for s, m in zip(stages, modules))
    changed = dataclasses.replace(
        spec,
        stages=stages,
        stem_width=spec.stem_width if stem_width is None else stem_width,
        num_classes=spec.num_classes if num_classes is None else num_classes,
        p=spec.p if p is None else p,
        t=spec.t if t is None else t,
        r=spec.r if r is None else r,
    )
    return spec if changed == spec else dataclasses.replace(changed, params=None)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm as ran_jax's: epsilon 1e-5, Flax momentum 0.9 (PyTorch's 0.1)."""
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


def caffe_max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3/2 max-pooling, pad 0, ceil mode: Caffe's ``Pooling`` (faithfulness §3.3, §8.4)."""
    return F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)


def caffe_interp(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize to ``like``'s height and width, corners aligned (Caffe ``Interp``)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class PreActBottleneck(nn.Module):
    """``y = x_sc + W3 r(BN(W2 r(BN(W1 a))))`` with ``a = r(BN(x))`` (paper 3, faithfulness §2).

    ``a`` feeds W1 and the projection, which exists only when the shape changes; the stride
    sits on the 3x3 conv and the projection. All convolutions are bias-free.
    """

    def __init__(self, in_channels: int, width: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = batch_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn2 = batch_norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn3 = batch_norm(width)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.projection = (
            nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
            if in_channels != channels or stride != 1
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(a)
        y = self.conv1(a)
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return shortcut + y


def units(count: int, width: int, channels: int) -> nn.Sequential:
    """``count`` shape-preserving units in sequence."""
    return nn.Sequential(*(PreActBottleneck(channels, width, channels) for _ in range(count)))


class SoftMaskBranch(nn.Module):
    """Bottom-up top-down soft mask (paper 3.2, faithfulness §3.2), ``r`` units per step.

    ``pool_levels`` max-poolings with ``r`` units each (``2r`` at the bottom); going up, the
    map is upsampled to the level's size, added to a skip unit applied to that level's
    down-path output (nothing else is added), and passed through ``r`` units. The tail
    BN-ReLU-conv1x1-BN-ReLU-conv1x1-sigmoid gives ``M`` at the input's size.
    """

    def __init__(self, width: int, channels: int, pool_levels: int, r: int = 1) -> None:
        super().__init__()
        self.down = nn.ModuleList(
            units(2 * r if level == pool_levels else r, width, channels)
            for level in range(1, pool_levels + 1)
        )
        self.skip = nn.ModuleList(units(1, width, channels) for _ in range(pool_levels - 1))
        self.up = nn.ModuleList(units(r, width, channels) for _ in range(pool_levels - 1))
        self.tail = nn.Sequential(
            batch_norm(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
            batch_norm(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, skips = x, []
        for down in self.down:
            m = down(caffe_max_pool(m))
            skips.append(m)
        skips.pop()  # the bottom level has no skip connection
        for level in reversed(range(len(skips))):
            d = skips[level]
            m = self.up[level](caffe_interp(m, d) + self.skip[level](d))
        return self.tail(caffe_interp(m, x))


class AttentionModule(nn.Module):
    """``p`` pre units, trunk ``T`` (``t`` units) and mask ``M``, ``(1 + M) * T``, ``p`` post
    units: attention residual learning (paper 3.1), by default with its p, t, r = 1, 2, 1.
    """

    def __init__(
        self, width: int, channels: int, pool_levels: int, p: int = 1, t: int = 2, r: int = 1
    ) -> None:
        super().__init__()
        self.pre = units(p, width, channels)
        self.trunk = units(t, width, channels)
        self.mask = SoftMaskBranch(width, channels, pool_levels, r)
        self.post = units(p, width, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.post((1 + self.mask(x)) * self.trunk(x))


class ResidualAttentionNetwork(nn.Module):
    """Stem, stages of units and Attention Modules, BN-ReLU, global average pool, FC (3.4)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.stem == "imagenet":  # conv1 7x7/2, BN-ReLU, pool1 3x3/2 ceil (faithfulness §4.1)
            self.stem = nn.Sequential(
                nn.Conv2d(3, spec.stem_width, 7, stride=2, padding=3, bias=False),
                batch_norm(spec.stem_width),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, ceil_mode=True),
            )
        else:  # a 3x3 conv of 16 channels, no pooling (faithfulness §5.3)
            self.stem = nn.Conv2d(3, spec.stem_width, 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        in_channels = spec.stem_width
        for s in spec.stages:
            layers.append(PreActBottleneck(in_channels, s.width, s.channels, s.stride))
            layers.extend(
                PreActBottleneck(s.channels, s.width, s.channels) for _ in range(s.units_before - 1)
            )
            layers.extend(
                AttentionModule(s.width, s.channels, s.pool_levels, spec.p, spec.t, spec.r)
                for _ in range(s.num_modules)
            )
            layers.extend(
                PreActBottleneck(s.channels, s.width, s.channels) for _ in range(s.units_after)
            )
            in_channels = s.channels
        self.stages = nn.Sequential(*layers)
        self.head_bn = batch_norm(in_channels)
        self.classifier = nn.Linear(in_channels, spec.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He (MSRA) init, as ran_jax and Caffe
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.head_bn(self.stages(self.stem(images))))
        return self.classifier(x.mean(dim=(2, 3)))


def count_params(model: nn.Module) -> int:
    """Trainable parameters; BatchNorm running statistics are buffers and not counted."""
    return sum(p.numel() for p in model.parameters())


def _option(args: argparse.Namespace, name: str, default):
    """``args.name``, or ``default`` for callers that build an older Namespace by hand
    (``benchmarks/paired_compare.py``)."""
    value = getattr(args, name, None)
    return default if value is None else value


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device=cuda: torch sees no CUDA device.")
    return torch.device(name)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(args: argparse.Namespace) -> dict:
    """Times ``args.steps`` train steps (or forward passes) after ``args.warmup`` untimed ones.

    Options beyond the CPU baseline's (all optional on ``args``): ``device`` ('cpu', 'cuda'
    or 'auto'), ``dtype`` ('float32' or 'bfloat16': autocast, parameters stay float32),
    ``channels_last``, ``compile`` (``torch.compile``; ``compile_backend``, default inductor,
    and ``compile_mode``), and the
    overrides ``widths``, ``modules``, ``stem_width``, ``num_classes``, ``p``, ``t``, ``r``.
    """
    device = _device(_option(args, "device", "cpu"))
    dtype = _option(args, "dtype", "float32")
    channels_last = bool(_option(args, "channels_last", False))
    compiled = bool(_option(args, "compile", False))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as a PyTorch user sets it for fixed shapes
    spec = model_spec(
        args.model,
        _option(args, "widths", None),
        _option(args, "modules", None),
        _option(args, "stem_width", None),
        _option(args, "num_classes", None),
        *(_option(args, key, None) for key in ("p", "t", "r")),
    )
    model = ResidualAttentionNetwork(spec)
    params = count_params(model)
    if spec.params is not None and params != spec.params:
        raise RuntimeError(f"{args.model}: {params:,} parameters where ran_jax has {spec.params:,}")
    image_size = args.image_size or spec.image_size
    images = torch.randn(args.batch_size, 3, image_size, image_size)
    labels = torch.randint(0, spec.num_classes, (args.batch_size,))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    images = images.to(device=device, memory_format=memory_format)
    labels = labels.to(device)
    backend = _option(args, "compile_backend", "inductor")
    mode = _option(args, "compile_mode", None)
    net = torch.compile(model, backend=backend, mode=mode) if compiled else model
    autocast = (
        functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
        if dtype == "bfloat16"
        else contextlib.nullcontext
    )

    if args.mode == "train":
        model.train()
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
        )

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = F.cross_entropy(net(images), labels)
            loss.backward()
            optimizer.step()

    else:
        model.eval()

        def step() -> None:
            with torch.no_grad(), autocast():
                net(images)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # The first step compiles (torch.compile) or picks cuDNN algorithms: timed on its own.
    warmup = max(args.warmup, 1) if compiled else args.warmup
    first_step_seconds = None
    for i in range(warmup):
        start = time.perf_counter()
        step()
        _sync(device)
        if i == 0:
            first_step_seconds = time.perf_counter() - start
    times, device_times = [], []
    before_step = getattr(args, "before_step", None)  # set by benchmarks/paired_compare.py
    events = device.type == "cuda"
    for _ in range(args.steps):
        if before_step is not None:
            before_step()
        if events:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        start = time.perf_counter()
        step()
        if events:
            end.record()
        _sync(device)
        times.append(time.perf_counter() - start)
        if events:
            device_times.append(begin.elapsed_time(end) / 1e3)
    median = statistics.median(times)
    return {
        "model": args.model,
        "batch_size": args.batch_size,
        "image_size": image_size,
        "dtype": dtype,
        "mode": args.mode,
        "framework": "pytorch-compile" if compiled else "pytorch-eager",
        "compile_backend": backend if compiled else None,
        "compile_mode": (mode or "default") if compiled else None,
        "memory_format": "channels_last" if channels_last else "contiguous",
        "device": device.type,
        "device_kind": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "first_step_seconds": first_step_seconds,
        "steps": args.steps,
        "step_seconds_median": median,
        "step_seconds_min": min(times),
        "step_seconds_max": max(times),
        "device_step_seconds_median": statistics.median(device_times) if device_times else None,
        "images_per_second": args.batch_size / median,
        "peak_device_bytes": (
            torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
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
    for key in ("p", "t", "r"):
        parser.add_argument(f"--{key}", type=int, default=None, help="Attention Modules' (3.1)")
    parser.add_argument("--json", action="store_true", help="end with a one-line JSON object")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("need --steps >= 1, --warmup >= 0 and --batch_size >= 1")
    r = benchmark(args)
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
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
