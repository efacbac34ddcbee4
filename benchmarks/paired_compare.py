r"""ran_jax against eager PyTorch on one CPU, step by step in alternation.

    python benchmarks/paired_compare.py --model=cifar_attention92 --batch_size=64 --steps=12 \
        --torch_python=/tmp/torchvenv/bin/python

On a shared VM the speed of the machine drifts by tens of percent within minutes (CPU time
stolen by other guests), so two benchmarks run one after the other can disagree by more than
the difference they measure. Here both run at once as worker processes: each compiles and
warms up, then takes one timed train step whenever the driver tells it to, while the other
waits idle. The steps alternate (who goes first alternates too), so both see the same
drift. The driver times each step from its "go" to the worker's next "ready" (pipe latency
is microseconds). Reported: each side's median step time, and the median of the per-pair
ratios.

The ran_jax side is ``ran_jax.training.step_benchmark.run`` (the trainer's step, as
``python -m ran_jax.benchmark`` times it); the PyTorch side is ``torch_reference.benchmark``,
run by ``--torch_python``, an interpreter with torch installed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))

# Each worker prints "ready" once warmed up and after each step, and steps on each "go".
_WAIT = """
import sys
def wait():
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit(0)
"""

_JAX_WORKER = (
    _WAIT
    + """
from ran_jax.training import step_benchmark
step_benchmark.run({model!r}, {batch_size}, steps={steps}, warmup={warmup}, before_step=wait)
print("ready", flush=True)
"""
)

_TORCH_WORKER = (
    _WAIT
    + """
sys.path.insert(0, {here!r})
import torch_reference
torch_reference.benchmark({model!r}, {batch_size}, steps={steps}, warmup={warmup}, threads=2,
                          before_step=wait)
print("ready", flush=True)
"""
)


class _Worker:
    def __init__(self, name: str, python: str, code: str) -> None:
        self.name = name
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [python, "-u", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def ready(self) -> None:
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the {self.name} worker exited or misbehaved: {line!r}")

    def timed_step(self) -> float:
        start = time.perf_counter()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.ready()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cifar_attention92")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--torch_python", required=True, help="a python with torch installed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fields = dict(model=args.model, batch_size=args.batch_size, steps=args.steps)
    fields.update(warmup=args.warmup, here=_HERE)
    workers = {
        "ran_jax": _Worker("ran_jax", sys.executable, _JAX_WORKER.format(**fields)),
        "pytorch": _Worker("pytorch", args.torch_python, _TORCH_WORKER.format(**fields)),
    }
    for worker in workers.values():
        worker.ready()
    times: dict[str, list[float]] = {name: [] for name in workers}
    for i in range(args.steps):
        order = list(workers) if i % 2 == 0 else list(workers)[::-1]
        for name in order:
            times[name].append(workers[name].timed_step())
    for worker in workers.values():
        worker.proc.stdin.close()
        worker.proc.wait()
    ratios = [t / j for j, t in zip(times["ran_jax"], times["pytorch"], strict=True)]
    result = {
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "ran_jax_median_seconds": statistics.median(times["ran_jax"]),
        "pytorch_median_seconds": statistics.median(times["pytorch"]),
        "speed_ratio_median": statistics.median(ratios),
        "speed_ratio_min": min(ratios),
        "speed_ratio_max": max(ratios),
        "times": times,
    }
    print(
        f"{args.model} train step, batch {args.batch_size}, {args.steps} alternating pairs: "
        f"ran_jax {result['ran_jax_median_seconds']:.3f} s, "
        f"PyTorch eager {result['pytorch_median_seconds']:.3f} s (medians); "
        f"ran_jax's speed / PyTorch's per pair: median {result['speed_ratio_median']:.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
