"""Plain eager PyTorch baseline of ran_jax's ``attention56`` and ``cifar_attention92``.

The same networks as ``ran_jax.models.get_model`` builds, written as straightforward PyTorch
modules (NCHW, float32, no ``torch.compile``, default memory format), timed on
synthetic data to give the CPU baseline the JAX train step is compared with. The topology
follows the official Caffe deploy files (``docs/faithfulness.md`` §2-4) as ran_jax does:
pre-activation bottleneck units, a trunk branch, a bottom-up top-down soft mask with Caffe
ceil-mode max-pooling and corner-aligned bilinear upsampling, attention residual learning
``(1 + M) * T`` (paper 3.1), and the stems and heads of ``ran_jax/models/network.py``.
Parameter counts (convolution and dense weights, dense bias, BatchNorm scale and shift; not
running statistics) are asserted equal to ran_jax's.

    python benchmarks/torch_reference.py --model=attention56 --batch_size=8 --steps=10 --json
    python benchmarks/torch_reference.py --model=cifar_attention92 --batch_size=64 --mode=eval

PyTorch is NOT a dependency of ran_jax; install it, CPU only, in a separate environment:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu

(``benchmarks/requirements-torch.txt``). Where that index cannot be reached, plain
``pip install torch`` gets PyPI's CUDA build (several GB more of CUDA libraries), whose CPU
kernels (MKL, oneDNN) are the same; the version it reports ends in ``+cuNNN``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

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
    params: int  # as printed by ``python -m ran_jax.summary --model=NAME``


MODELS: dict[str, ModelSpec] = {
    "attention56": ModelSpec(
        stem="imagenet",
        stem_width=64,
        stages=(
            Stage(64, 256, num_modules=1, pool_levels=3),
            Stage(128, 512, num_modules=1, pool_levels=2, stride=2),
            Stage(256, 1024, num_modules=1, pool_levels=1, stride=2),
            Stage(512, 2048, stride=2, units_before=3),
        ),
        num_classes=1000,
        image_size=224,
        params=31_810_728,
    ),
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
    """Bottom-up top-down soft mask (paper 3.2, faithfulness §3.2) with ``r = 1``.

    ``pool_levels`` max-poolings with one unit each (two at the bottom); going up, the map is
    upsampled to the level's size, added to a skip unit applied to that level's down-path
    output (nothing else is added), and passed through one unit. The tail
    BN-ReLU-conv1x1-BN-ReLU-conv1x1-sigmoid gives ``M`` at the input's size.
    """

    def __init__(self, width: int, channels: int, pool_levels: int) -> None:
        super().__init__()
        self.down = nn.ModuleList(
            units(2 if level == pool_levels else 1, width, channels)
            for level in range(1, pool_levels + 1)
        )
        self.skip = nn.ModuleList(units(1, width, channels) for _ in range(pool_levels - 1))
        self.up = nn.ModuleList(units(1, width, channels) for _ in range(pool_levels - 1))
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
    """One pre unit, trunk ``T`` (2 units) and mask ``M``, ``(1 + M) * T``, one post unit.

    The paper's default p, t, r = 1, 2, 1 with attention residual learning (paper 3.1).
    """

    def __init__(self, width: int, channels: int, pool_levels: int) -> None:
        super().__init__()
        self.pre = units(1, width, channels)
        self.trunk = units(2, width, channels)
        self.mask = SoftMaskBranch(width, channels, pool_levels)
        self.post = units(1, width, channels)

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
                AttentionModule(s.width, s.channels, s.pool_levels) for _ in range(s.num_modules)
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


def benchmark(args: argparse.Namespace) -> dict:
    """Times ``args.steps`` train steps (or forward passes) after ``args.warmup`` untimed ones."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = MODELS[args.model]
    model = ResidualAttentionNetwork(spec)
    params = count_params(model)
    if params != spec.params:
        raise RuntimeError(f"{args.model}: {params:,} parameters where ran_jax has {spec.params:,}")
    image_size = args.image_size or spec.image_size
    images = torch.randn(args.batch_size, 3, image_size, image_size)
    labels = torch.randint(0, spec.num_classes, (args.batch_size,))

    if args.mode == "train":
        model.train()
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
        )

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

    else:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(images)

    for _ in range(args.warmup):
        step()
    times = []
    before_step = getattr(args, "before_step", None)  # set by benchmarks/paired_compare.py
    for _ in range(args.steps):
        if before_step is not None:
            before_step()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "model": args.model,
        "batch_size": args.batch_size,
        "image_size": image_size,
        "dtype": "float32",
        "mode": args.mode,
        "framework": "pytorch-eager",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_seconds_median": median,
        "step_seconds_min": min(times),
        "step_seconds_max": max(times),
        "images_per_second": args.batch_size / median,
        "params": params,
    }


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
    parser.add_argument("--json", action="store_true", help="end with a one-line JSON object")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("need --steps >= 1, --warmup >= 0 and --batch_size >= 1")
    r = benchmark(args)
    print(
        f"{r['model']} {r['mode']} (pytorch {r['torch']} eager, {r['threads']} thread(s), "
        f"float32), batch {r['batch_size']} at {r['image_size']}x{r['image_size']}, "
        f"{r['params']:,} parameters (equal to ran_jax's)"
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
