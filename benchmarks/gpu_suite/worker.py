"""One worker process: runs the named cases of one kind in order, appending each record as it
ends (``--worker=jax|torch|compare|pipeline``, started by ``scheduler.py``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import measure
from .cases import FULL, TINY, Case, Sizes, cases, estimate
from .records import append, base, one_line, skip, versions


def block_tensorflow() -> None:
    """As if TensorFlow were not installed (tests/helpers/without_tensorflow.py)."""
    for name in ("tensorflow", "tensorflow_datasets"):
        sys.modules[name] = None


def _compare(todo: list[Case], sizes: Sizes, out: Path, tiny: bool) -> None:
    """The comparisons, in one go: an error fails every one asked for."""
    from .correctness import compare_cases

    start = time.time()
    try:
        records = compare_cases(todo, sizes)
    except Exception as e:
        records = [{"case": c.name, "status": "error", "error": one_line(e)} for c in todo]
    by_name = {c.name: c for c in todo}
    for r in records:
        record = {**base(by_name[r["case"]], tiny), **r}
        append(out, {**record, "seconds": time.time() - start, "versions": versions()})


def _figures(case: Case, sizes: Sizes, args: argparse.Namespace, extra: dict) -> dict[str, Any]:
    if case.kind == "jax":
        return measure.jax_case(case, sizes)
    if case.kind == "torch":
        return measure.torch_case(case, sizes, args.tiny, args.inductor)
    dataset = case.name.split("/")[1]
    spec = dict((d, rest) for d, *rest in sizes.pipeline)[dataset]
    return measure.pipeline_case(dataset, *spec, extra.get(case.name))


def worker(args: argparse.Namespace) -> None:
    """Runs ``args.case_names`` (of kind ``args.worker``) within ``args.deadline``."""
    if args.no_tensorflow or args.tiny:
        block_tensorflow()
    sizes = TINY if args.tiny else FULL
    by_name = {c.name: c for c in cases(sizes)}
    todo = [by_name[n] for n in args.case_names.split(",") if n]
    out = Path(args.out)
    if args.worker in ("jax", "compare"):
        from ran_jax.training import host_allocator

        host_allocator.keep_freed_memory()  # CPU-only hosts (--tiny); nothing elsewhere
    if args.worker == "compare":
        _compare(todo, sizes, out, args.tiny)
        return
    observed: dict[str, float] = json.loads(args.estimates or "{}")
    extra = json.loads(args.extra or "{}")
    for case in todo:
        need = estimate(case, observed, args.tiny)
        left = args.deadline - time.time()
        if need > left:
            append(
                out, skip(case, args.tiny, f"budget: needs about {need:.0f} s, {left:.0f} s left")
            )
            continue
        print(f"[suite] {case.name}: start ({left:.0f} s left)", flush=True)
        start = time.time()
        record = base(case, args.tiny)
        try:
            record.update(_figures(case, sizes, args, extra), status="ok")
        except Exception as e:
            record.update(status="error", error=one_line(e))
        record.update(seconds=time.time() - start, versions=versions())
        append(out, record)
        observed[case.family] = record["seconds"]
        print(f"[suite] {case.name}: {record['status']} in {record['seconds']:.1f} s", flush=True)
