"""The suite's command line: flags, then a run, a worker, ``--list`` or ``--summarize``."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import gpu_suite

from .cases import FULL, TINY, cases, select
from .records import RESULTS, SUMMARY_MD, read_records
from .report import write_summary
from .scheduler import Suite
from .worker import block_tensorflow, worker


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The suite's flags, and the worker's internal ones."""
    p = argparse.ArgumentParser(description=gpu_suite.__doc__.split("\n\n")[0])
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


def budget(args: argparse.Namespace) -> float | None:
    """``--budget_s`` for the records: None where there is no limit."""
    return None if math.isinf(args.budget_s) else args.budget_s


def summarize(dirs: list[str], out: Path, tiny: bool, budget_s: float | None) -> None:
    """Merges the ``results.jsonl`` of ``dirs`` (the later one wins per case, the last
    environment record stays) into ``out``, and summarises them."""
    merged = [r for d in dirs for r in read_records(Path(d))]
    out.mkdir(parents=True, exist_ok=True)
    envs = [r for r in merged if r.get("kind") == "environment"]
    (out / RESULTS).write_text(
        "".join(json.dumps(r, default=str) + "\n" for r in envs[-1:] + [
            r for r in merged if r.get("kind") != "environment"
        ])
    )  # fmt: skip
    write_summary(out, tiny, budget_s, None)


def main(argv: list[str] | None = None) -> None:
    """Runs the suite, one worker, ``--list`` or ``--summarize``, as the flags say."""
    args = parse(argv)
    if args.worker:
        worker(args)
        return
    if args.tiny or args.no_tensorflow:
        block_tensorflow()
    if args.summarize:
        summarize(args.summarize, Path(args.out), args.tiny, budget(args))
        print(Path(args.out, SUMMARY_MD).read_text())
        return
    if args.list:
        for c in select(cases(TINY if args.tiny else FULL), args.cases):
            print(c.name if args.tiny else f"{c.name}  (about {c.prior_s:.0f} s on an H200)")
        return
    start = time.time()
    suite = Suite(Path(args.out), args.tiny, args.budget_s, args.no_tensorflow, args.inductor)
    summary = suite.run(args.cases)
    print(Path(args.out, SUMMARY_MD).read_text())
    took = time.time() - start
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary["counts"].items()))
    print(f"accelerator suite{' --tiny' if args.tiny else ''}: {took:.1f} s; {counts}")
