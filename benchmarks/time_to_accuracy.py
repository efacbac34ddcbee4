"""Time to accuracy on Fashion-MNIST: ran_jax against PyTorch eager and ``torch.compile``.

Runs, one after another, ``python -m ran_jax.main`` with ran_jax's Python and
``benchmarks/torch_fashion_mnist.py`` with a PyTorch Python (eager, then ``--compile``), each
on the same experiment file, steps and seed, and reports for each the seconds from its
process's start to the first evaluation at or above each target test top-1: imports, data
loading, compilation, checkpoints and evaluations included. Evaluation times are the
``wall_time`` (ran_jax) or ``time`` (PyTorch) key of the runs' ``metrics.jsonl`` lines, in
unix seconds; the driver follows the files every ``POLL_SECONDS`` to print progress::

    python benchmarks/time_to_accuracy.py --config=experiments/fashion_mnist_budget.py \\
        --torch_python=/tmp/torchvenv/bin/python --workdir=/tmp/tta [--skip=torch_compile]

Writes ``WORKDIR/time_to_accuracy.md`` (the table), ``WORKDIR/results.json`` and, for each
run, ``WORKDIR/NAME/`` with its ``metrics.jsonl``, ``output.log`` and, once it has ended,
``result.json``. Run again with the same arguments, it keeps the ended runs and starts the
unfinished one afresh, so the three hours need not be one sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNS = ("ran_jax", "torch_eager", "torch_compile")
POLL_SECONDS = 0.5
TIME_KEYS = ("time", "wall_time")  # unix seconds of a metrics line: PyTorch's, ran_jax's
# ran_jax's parameter count for Fashion-MNIST (10 classes, 28x28x1) under a config.
_COUNT_PARAMS = """
import importlib.util, sys
from ran_jax.models import get_model
from ran_jax.models.complexity import complexity
spec = importlib.util.spec_from_file_location("experiment_config", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
c = module.get_config()
print(complexity(get_model(c.model, 10, in_channels=1, **c.model_overrides), 28).params)
"""


def ran_jax_params(python: str, config: str) -> int:
    """ran_jax's trainable parameter count of the config's network on Fashion-MNIST."""
    out = subprocess.run(
        [python, "-c", _COUNT_PARAMS, config], check=True, capture_output=True, text=True
    )
    return int(out.stdout.split()[-1])


def commands(args: argparse.Namespace, workdir: Path, params: int) -> dict[str, list[str]]:
    """The command line of each run, writing its metrics under ``workdir/NAME``."""
    overrides = {
        key: getattr(args, key)
        for key in ("num_train_steps", "eval_every_steps", "seed")
        if getattr(args, key) is not None
    }
    jax_command = [args.jax_python, "-m", "ran_jax.main", f"--config={args.config}"]
    jax_command += [f"--workdir={workdir / 'ran_jax'}"]
    jax_command += [f"--config.{key}={value}" for key, value in overrides.items()]
    torch_command = [args.torch_python, str(ROOT / "benchmarks" / "torch_fashion_mnist.py")]
    torch_command += [f"--config={args.config}", f"--threads={args.threads}"]
    torch_command += [f"--expect_params={params}"]
    torch_command += [f"--{key}={value}" for key, value in overrides.items()]
    return {
        "ran_jax": jax_command,
        "torch_eager": [*torch_command, f"--out={workdir / 'torch_eager'}"],
        "torch_compile": [*torch_command, f"--out={workdir / 'torch_compile'}", "--compile"],
    }


def _read_new(path: Path, offset: int, seen: list[dict[str, Any]]) -> int:
    """Appends the complete lines of ``path`` after ``offset``; returns the new offset."""
    if not path.exists():
        return offset
    with open(path) as f:
        f.seek(offset)
        while (line := f.readline()).endswith("\n"):
            offset = f.tell()
            if line.strip():
                seen.append(json.loads(line))
    return offset


def _when(line: dict[str, Any]) -> float:
    """The unix time of a metrics line."""
    return next(line[key] for key in TIME_KEYS if key in line)


def run(name: str, command: list[str], rundir: Path) -> dict[str, Any]:
    """Runs ``command`` to its end, following ``rundir/metrics.jsonl``; the evaluations found.

    A run that ended before (its ``result.json`` exists) is read, not run again; one that was
    cut off is removed and started afresh, since its times would not be from one process.
    """
    if (rundir / "result.json").exists():
        print(f"[{name}] ended before; reading {rundir / 'result.json'}", flush=True)
        return json.loads((rundir / "result.json").read_text())
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    print(f"[{name}] {' '.join(command)}", flush=True)
    lines: list[dict[str, Any]] = []
    offset = 0
    with open(rundir / "output.log", "w") as log:
        start = time.time()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            time.sleep(POLL_SECONDS)
            before = len(lines)
            offset = _read_new(rundir / "metrics.jsonl", offset, lines)
            for line in lines[before:]:
                if "eval_top1" in line:
                    print(
                        f"[{name}] step {line['step']}: eval top-1 {line['eval_top1']:.4f} "
                        f"after {_when(line) - start:.0f} s",
                        flush=True,
                    )
        end = time.time()
    _read_new(rundir / "metrics.jsonl", offset, lines)
    evals = [
        {"step": x["step"], "top1": x["eval_top1"], "seconds": _when(x) - start}
        for x in lines
        if "eval_top1" in x
    ]
    if process.returncode:
        print(f"[{name}] exit status {process.returncode}; see {rundir / 'output.log'}")
    result = {"returncode": process.returncode, "wall_seconds": end - start, "evals": evals}
    (rundir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def time_to(evals: list[dict[str, Any]], target: float) -> float | None:
    """Seconds to the first evaluation at or above ``target``; None if never reached."""
    return next((e["seconds"] for e in evals if e["top1"] >= target), None)


def table(results: dict[str, dict[str, Any]], targets: list[float]) -> str:
    """The markdown table of the runs."""
    head = ["framework", *(f"time to {t * 100:g}% (s)" for t in targets)]
    head += ["final top-1", "steps", "wall time (s)"]
    rows = [f"| {' | '.join(head)} |", f"|{'---|' * len(head)}"]
    for name, r in results.items():
        evals = r["evals"]
        cells = [name]
        for target in targets:
            seconds = time_to(evals, target)
            cells.append("not reached" if seconds is None else f"{seconds:.0f}")
        final = f"{evals[-1]['top1']:.4f}" if evals else "none"
        if r["returncode"]:
            final += f" (exit {r['returncode']})"
        cells += [final, str(evals[-1]["step"]) if evals else "0", f"{r['wall_seconds']:.0f}"]
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="ran_jax experiment file")
    parser.add_argument("--workdir", required=True, help="a new directory for all runs")
    parser.add_argument("--torch_python", default=None, help="a Python with torch installed")
    default_jax = ROOT / ".venv" / "bin" / "python"
    parser.add_argument(
        "--jax_python",
        default=str(default_jax) if default_jax.exists() else sys.executable,
        help="ran_jax's Python (default: the repository's .venv, else this one)",
    )
    parser.add_argument("--targets", default="0.90,0.92", help="test top-1 marks")
    parser.add_argument("--skip", default="", help=f"comma-separated runs of {RUNS}")
    parser.add_argument("--num_train_steps", type=int, default=None, help="overrides the config")
    parser.add_argument("--eval_every_steps", type=int, default=None, help="overrides the config")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    args = parser.parse_args()
    args.skip = {s for s in args.skip.split(",") if s}
    if args.skip - set(RUNS):
        parser.error(f"--skip takes names of {RUNS}; got {sorted(args.skip - set(RUNS))}")
    if args.torch_python is None and {"torch_eager", "torch_compile"} - args.skip:
        parser.error("--torch_python is needed unless --skip=torch_eager,torch_compile")
    args.config = os.path.abspath(args.config)
    return args


def main() -> None:
    args = parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    workdir = Path(args.workdir).resolve()
    params = ran_jax_params(args.jax_python, args.config)
    print(f"ran_jax's network: {params:,} parameters", flush=True)
    runs = commands(args, workdir, params)
    stamp = workdir / "commands.json"
    if stamp.exists() and json.loads(stamp.read_text()) != runs:
        sys.exit(f"error: --workdir={workdir} holds runs of other arguments; use a new one.")
    if not stamp.exists() and workdir.exists() and any(workdir.iterdir()):
        sys.exit(f"error: --workdir={workdir} is not empty; runs need a fresh directory.")
    workdir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(runs, indent=1) + "\n")
    results = {
        name: run(name, command, workdir / name)
        for name, command in runs.items()
        if name not in args.skip
    }
    text = table(results, targets)
    (workdir / "time_to_accuracy.md").write_text(text)
    (workdir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(text, end="")


if __name__ == "__main__":
    main()
