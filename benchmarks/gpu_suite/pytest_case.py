"""``correctness/pytest``: the model and step tests that need no TensorFlow, with JAX on the
accelerator; its command line, and its record from pytest's JUnit report."""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .cases import Case, Sizes
from .records import LOG, base, versions

# The test files whose tests need no TensorFlow and run JAX on the default device (the models,
# masks, and the step benchmark). Left out: tests that read data (TensorFlow), tests that pin
# JAX to the CPU themselves (training/test_train.py, test_host_allocator.py), and shape-only
# counts (models/test_registry.py, commands/test_summary.py).
PYTEST_FILES = (
    "tests/models/test_layers.py",
    "tests/models/test_attention_module.py",
    "tests/models/test_network.py",
    "tests/analysis/test_attention_maps.py",
    "tests/training/test_step_benchmark.py",
)
# Asserts that the device's peak FLOP/s is unknown, true on the CPU only; the speed cases
# run the same step.
PYTEST_DESELECT = ("tests/training/test_step_benchmark.py::test_figures_are_consistent",)
PYTEST_TINY = ("tests/models/test_layers.py", "-k", "pooled_size or interp_matches")
PYTEST_SHARE = 0.4  # of --budget_s, at most

_BLOCK_TF = (
    "import sys\nfor _n in ('tensorflow', 'tensorflow_datasets'):\n    sys.modules[_n] = None\n"
)
_PYTEST = _BLOCK_TF + "import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"


def argv(sizes: Sizes, tiny: bool, junit: str) -> list[str]:
    """pytest's command line, TensorFlow blocked, its JUnit report written into ``junit``."""
    args = [sys.executable, "-c", _PYTEST]
    if tiny:
        args += list(PYTEST_TINY)
    else:
        args += list(PYTEST_FILES) + [f"--deselect={d}" for d in PYTEST_DESELECT]
        if importlib.util.find_spec("xdist") and sizes.pytest_workers:
            args += ["-n", str(sizes.pytest_workers)]
    return args + ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}/junit.xml"]


def record(
    case: Case, tiny: bool, returncode: int | None, finished: bool, junit: str, seconds: float
) -> dict[str, Any]:
    """The case's record: pytest's counts and first problems, or why there is no report."""
    result: dict[str, Any] = {
        **base(case, tiny),
        "seconds": seconds,
        "files": list(PYTEST_TINY if tiny else PYTEST_FILES),
        "deselected": [] if tiny else list(PYTEST_DESELECT),
        "tensorflow": "blocked",
        "versions": versions(),
    }
    path = Path(junit, "junit.xml")
    if not path.exists():
        result["status"] = "error"
        result["error"] = (
            f"pytest exited {returncode} without a report; see {LOG}"
            if finished
            else f"stopped after {seconds:.0f} s, its share of the budget"
        )
        return result
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
    result.update(counts, problems=problems[:30])
    failed = counts["failures"] + counts["errors"]
    result["status"] = "passed" if returncode == 0 and not failed else "failed"
    return result
