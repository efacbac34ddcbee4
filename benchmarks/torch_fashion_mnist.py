"""Fashion-MNIST training of ran_jax's networks in plain PyTorch: the peer of time to accuracy.

Reads the experiment file ran_jax trains with (``python -m ran_jax.main --config=PATH``) and
trains the same network (``torch_reference.py``, 1 input channel, the parameter count of
ran_jax's) with the same recipe on the four official Fashion-MNIST files (Xiao et al. 2017):

- data: zero-pad 4 pixels per side, random 28x28 crop, random horizontal flip, then
  ``(x / 255 - mean) / std`` with the training pixels' mean and std; evaluation on the
  10,000 test images as they are (``fashion_mnist_torch_data.py``: a ``Dataset`` and a
  plain shuffling ``DataLoader``).
- optimiser: ``torch.optim.SGD(nesterov=True)``. ran_jax chains ``optax.add_decayed_weights``
  and ``optax.sgd(nesterov=True)``: ``g' = g + wd * w``, ``b = m * b + g'``,
  ``w -= lr * (g' + m * b)``, the trace starting at zero, which is PyTorch's SGD step with
  ``weight_decay`` (its first step sets ``b = g'``, the same value). With
  ``decay_norm_and_bias=False`` the decay is in the parameter group of the conv and dense
  kernels only (ran_jax's mask: ``ndim > 1``).
- schedule: ``learning_rate(config, step)``, optax's schedules of ``learning_rate_fn`` for
  update ``step`` (0, 1, ...), through ``LambdaLR``: linear warmup from 0, then cosine to 0 at
  ``num_train_steps`` or the peak divided by 10 from each of ``lr_boundaries`` (after warmup)
  on; the peak scaled by ``batch_size / base_batch_size`` with ``scale_lr_with_batch``.
- loss: cross entropy with ``label_smoothing`` (targets ``(1 - s) * onehot + s / C``, optax's).
- initialisation: He-normal convolutions (ran_jax's and Caffe's); the classifier as Flax's
  ``Dense``: LeCun-normal truncated at 2 std, zero bias.

Not the same: the random numbers (initial weights, data order, crops and flips), and
BatchNorm's running variance, which PyTorch updates with the unbiased batch variance and Flax
with the biased one: a factor n / (n - 1), n = batch x height x width (at least 1,152 for
``cifar_attention56`` at batch 128, whose smallest masks are 3x3).

``metrics.jsonl`` under ``--out`` starts with ``{"start": t}``, the unix time taken before
torch is imported, so time to accuracy counts imports, data loading and compilation; each
log and evaluation line carries ``step`` and ``time`` (unix seconds). Needs torch
(``benchmarks/requirements-torch.txt``), numpy and ml-collections (``pip install numpy
ml-collections``): ran_jax's ``configs`` module, which experiment files import and which
states the config keys' defaults, is pure Python::

    python benchmarks/torch_fashion_mnist.py --config=experiments/fashion_mnist_budget.py \\
        --out=/tmp/fmnist_torch [--compile] [--num_train_steps=N]
"""

# ruff: noqa: E402  (START is taken before anything else is imported)
from __future__ import annotations

import time

START = time.time()

import argparse
import importlib.util
import itertools
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # benchmarks/; ran_jax.configs
import fashion_mnist_torch_data as data
import torch_reference

from ran_jax import configs

# Config keys this script implements only at their defaults (ran_jax.configs.base()).
UNSUPPORTED = ("mixup_alpha", "cutmix_alpha", "random_erasing", "ema_decay", "label_noise")
UNSUPPORTED += ("accumulate_steps", "dtype", "eval_examples")
OVERRIDES = ("widths", "modules", "stem_width", "p", "t", "r")


def load_config(path: str) -> Any:
    """``get_config()`` of an experiment file (an ml_collections ConfigDict)."""
    spec = importlib.util.spec_from_file_location("experiment_config", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"--config={path}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def check_config(config: Any) -> None:
    """Raises ValueError for a data set or an option this script does not implement."""
    if "fashion_mnist" not in config.dataset:
        raise ValueError(f"dataset={config.dataset!r}: this script trains Fashion-MNIST only.")
    defaults = configs.base()
    for key in UNSUPPORTED:
        if config[key] != defaults[key]:
            raise ValueError(
                f"{key}={config[key]!r} is not implemented here, only {defaults[key]!r}."
            )
    if config.warmup_steps >= config.num_train_steps:
        raise ValueError("warmup_steps must be below num_train_steps (as ran_jax checks).")
    unknown = set(config.model_overrides) - set(OVERRIDES) - {"remat"}
    if unknown:
        raise ValueError(f"model_overrides {sorted(unknown)} are not implemented here.")


def build_model(config: Any) -> nn.Module:
    """``config.model`` with its overrides for 10 classes of grey images, ran_jax's init."""
    overrides = {k: config.model_overrides[k] for k in OVERRIDES if k in config.model_overrides}
    spec = torch_reference.model_spec(
        config.model, num_classes=data.NUM_CLASSES, in_channels=1, **overrides
    )
    model = torch_reference.ResidualAttentionNetwork(spec)
    fc = model.classifier
    std = math.sqrt(1 / fc.in_features) / 0.87962566103423978  # Flax's lecun_normal
    nn.init.trunc_normal_(fc.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(fc.bias)
    return model


def learning_rate(config: Any, step: int) -> float:
    """The learning rate of update ``step`` (0-based), as ran_jax's ``learning_rate_fn``."""
    peak = config.learning_rate
    if config.scale_lr_with_batch:
        peak *= config.batch_size / config.base_batch_size
    warmup = config.warmup_steps
    if step < warmup:
        return peak * step / warmup
    after = step - warmup
    if config.lr_schedule == "cosine":
        decay = config.num_train_steps - warmup
        return peak * 0.5 * (1 + math.cos(math.pi * min(after, decay) / decay))
    return peak * 0.1 ** sum(after >= b for b in config.lr_boundaries)


def make_optimizer(model: nn.Module, config: Any) -> torch.optim.SGD:
    """Nesterov SGD with weight decay on all parameters, or on kernels only."""
    params = list(model.parameters())
    if config.decay_norm_and_bias:
        groups = [{"params": params, "weight_decay": config.weight_decay}]
    else:
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    return torch.optim.SGD(groups, lr=1.0, momentum=config.momentum, nesterov=True)


def evaluate(net: nn.Module, model: nn.Module, loader: DataLoader) -> dict[str, float]:
    """Top-1 and mean loss over the whole test set, with BatchNorm's running statistics."""
    model.eval()
    correct, loss, count = 0, 0.0, 0
    with torch.no_grad():
        for images, labels in loader:
            logits = net(images)
            loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            count += len(labels)
    model.train()
    return {"eval_top1": correct / count, "eval_loss": loss / count}


def train(args: argparse.Namespace, config: Any, out: TextIO) -> dict[str, Any]:
    """Trains ``config.num_train_steps`` steps, writing metric lines to ``out``."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(config.seed)
    train_loader, test_loader = data.make_loaders(
        args.data_dir,
        config.batch_size,
        args.eval_batch_size,
        args.num_workers,
        config.seed,
        args.mean,
        args.std,
    )
    model = build_model(config)
    params = torch_reference.count_params(model)
    print(f"{config.model}: {params:,} parameters (ran_jax: {args.expect_params or '?'})")
    if args.expect_params is not None and params != args.expect_params:
        raise RuntimeError(f"{params:,} parameters where ran_jax has {args.expect_params:,}.")
    net = torch.compile(model) if args.compile else model
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: learning_rate(config, i))
    total = config.num_train_steps

    def report(step: int, values: dict[str, float], text: str) -> None:
        out.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        out.flush()
        print(f"step {step}/{total}  {text}  ({time.time() - START:.1f} s)")

    print(f"ready after {time.time() - START:.1f} s")
    batches = itertools.islice(itertools.chain.from_iterable(itertools.repeat(train_loader)), total)
    step_seconds: list[float] = []
    losses, hits, seen = 0.0, 0, 0  # since the last log line
    last_time = time.time()
    for step, (images, labels) in enumerate(batches, 1):
        begin = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        logits = net(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses += loss.item() * len(labels)
        hits += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        step_seconds.append(time.perf_counter() - begin)
        if step % config.log_every_steps == 0 or step == total:
            rate = seen / (time.time() - last_time)
            values = {"train_loss": losses / seen, "train_accuracy": hits / seen}
            values |= {"learning_rate": lr, "images_per_second": rate}
            text = f"loss {losses / seen:.4f}  acc {hits / seen:.4f}  lr {lr:.4g}  {rate:.1f} img/s"
            report(step, values, text)
            losses, hits, seen = 0.0, 0, 0
            last_time = time.time()
        if step % config.eval_every_steps == 0 or step == total:
            evals = evaluate(net, model, test_loader)
            report(
                step, evals, f"eval top-1 {evals['eval_top1']:.4f}  loss {evals['eval_loss']:.4f}"
            )
            last_time = time.time()  # keep evaluation out of the throughput figure
    return {
        "framework": "pytorch-compile" if args.compile else "pytorch-eager",
        "final_top1": evals["eval_top1"],
        "steps": total,
        "wall_seconds": time.time() - START,
        "first_step_seconds": step_seconds[0],  # with --compile: the training graphs' compilation
        "step_seconds_median": statistics.median(step_seconds),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "num_workers": args.num_workers,
        "params": params,
        "ran_jax_params": args.expect_params,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="ran_jax experiment file")
    parser.add_argument("--out", required=True, help="directory for metrics.jsonl")
    parser.add_argument("--num_train_steps", type=int, default=None, help="overrides the config")
    parser.add_argument("--eval_every_steps", type=int, default=None, help="overrides the config")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config")
    parser.add_argument("--compile", action="store_true", help="torch.compile (inductor)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--eval_batch_size", type=int, default=500)
    parser.add_argument("--data_dir", default=data.DATA_DIR, help="the four .gz files")
    parser.add_argument("--mean", type=float, default=None, help="default: the training set's")
    parser.add_argument("--std", type=float, default=None, help="default: the training set's")
    parser.add_argument("--expect_params", type=int, default=None, help="ran_jax's count")
    return parser.parse_args()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach a log file at once
    args = parse_args()
    config = load_config(args.config)
    for key in ("num_train_steps", "eval_every_steps", "seed"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    check_config(config)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.jsonl"), "w") as out:
        out.write(json.dumps({"start": START}) + "\n")
        try:
            summary = train(args, config, out)
        except torch._dynamo.exc.TorchDynamoException as e:
            if not args.compile:
                raise
            message = next((line for line in str(e).splitlines() if line.strip()), "")
            print(
                f"torch.compile failed: {type(e).__name__}: {message} (torch {torch.__version__})"
            )
            sys.exit(3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
