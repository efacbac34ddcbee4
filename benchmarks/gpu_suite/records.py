"""``results.jsonl``, one JSON record a case, and the fields every record shares."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .cases import Case

ROOT = Path(__file__).resolve().parents[2]
RESULTS, SUMMARY_JSON, SUMMARY_MD, LOG = "results.jsonl", "summary.json", "summary.md", "suite.log"


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
    """The records of ``out/results.jsonl``, less a last line cut by a kill."""
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


def base(case: Case, tiny: bool) -> dict[str, Any]:
    """What every record of ``case`` names: the case, and for a speed case what it ran."""
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


def one_line(e: BaseException) -> str:
    """An error as one line of at most 500 characters."""
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:500] if text else type(e).__name__


def skip(case: Case, tiny: bool, reason: str) -> dict[str, Any]:
    """The record of a case skipped for ``reason``."""
    return {**base(case, tiny), "status": "skipped", "reason": reason, "versions": versions()}


def environment(tiny: bool, budget_s: float | None, no_tensorflow: bool) -> dict[str, Any]:
    """The run's first record: the host, the versions, the GPUs, the commit."""
    record: dict[str, Any] = {
        "case": "environment",
        "kind": "environment",
        "tiny": tiny,
        "argv": sys.argv[1:],
        "budget_s": budget_s,
        "host_cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "versions": versions(),
        "tensorflow_importable": not no_tensorflow and bool(importlib.util.find_spec("tensorflow")),
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
            record["nvidia_smi"] = one_line(e)
    try:  # a copy of the tree may have no .git, or no git
        git = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        record["commit"] = git.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        record["commit"] = None
    return record
