"""Test-wide settings: CPU only, quiet TensorFlow. Runs before JAX is first imported.

Also the xdist scheduler that starts the slowest files first, and ``--cpu-report``.
"""

import fcntl
import json
import os
import resource
import tempfile
import time

from helpers import COMPILE_XLA_FLAGS

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests compile the same tiny steps in many processes (CLI runs, resumed runs): a persistent
# XLA cache shared by them (and inherited by subprocesses) turns repeats into cache hits.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ran_jax_test_xla_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests run tiny networks a few times each: compile time dominates, so trade run-time
# optimisations for faster XLA compiles (as flax/examples do in their tests). Set in the
# environment, not with jax.config, so that the CLI runs in subprocesses compile the same way
# and share the cache entries of the test process.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if COMPILE_XLA_FLAGS:
    os.environ.setdefault("XLA_FLAGS", COMPILE_XLA_FLAGS)
# The CLI runs of tests train tiny models for a few steps. One run of test_reliability.py took
# 7:32 with host_allocator's setting and 5:20 without; tests of the setting set it themselves.
os.environ.setdefault("RAN_JAX_KEEP_FREED_MEMORY", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cluttered_digits_dir(tmp_path_factory):
    """A tfds data_dir with cluttered_digits prepared once per run (generating it takes ~7 s).

    Under pytest-xdist the workers share it: the first to come prepares it, under a lock.
    Tests only read it.
    """
    from ran_jax.data import cluttered_digits

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's directory, shared by its workers
    data_dir = root / "cluttered_digits_tfds"
    with open(root / "cluttered_digits_tfds.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cluttered_digits.prepare(str(data_dir))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return str(data_dir)


# Test files that take minutes on 2 cores (CLI runs, subprocesses), slowest first. With
# --dist loadfile, pytest-xdist hands out files largest test count first, which leaves these
# few-test files for the end, where one of them runs alone while the other worker idles.
# Starting them first lets the many short files fill in around them.
SLOW_FILES = (  # by their time in a full run (--cpu-report's wall seconds), 2026-12-07
    "test_reliability.py",
    "test_accelerator_suite.py",  # its dry run needs PyTorch: seconds without
    "test_multiprocess.py",
    "test_use_trained.py",
    "test_network.py",
    "test_fashion_mnist_run.py",
    "test_onnx_export.py",
    "test_tiny_imagenet_run.py",
    "test_main.py",
    "test_train.py",
    "test_studies.py",
    "test_registry.py",
    "test_architecture.py",
    "test_old_runs.py",
)


def _slow_rank(scope: str) -> int:
    name = os.path.basename(scope.split("::", 1)[0])
    return SLOW_FILES.index(name) if name in SLOW_FILES else len(SLOW_FILES)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, handing out SLOW_FILES first; other files keep xdist's order."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SlowFilesFirst(LoadFileScheduling):
        _ordered = False

        def _assign_work_unit(self, node):
            if not self._ordered:  # the first assignment: the work queue is complete
                self._ordered = True
                units = sorted(self.workqueue.items(), key=lambda unit: _slow_rank(unit[0]))
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return SlowFilesFirst(config, log)


def pytest_addoption(parser):
    parser.addoption(
        "--cpu-report",
        metavar="FILE",
        help="write one JSON line per test to FILE (wall and CPU seconds of the test's "
        "process and of the processes it waited for, XLA compile seconds) and print the CPU "
        "seconds of the costliest files at the end",
    )


def pytest_configure(config):
    path = config.getoption("cpu_report")
    if not path:
        return
    if not hasattr(config, "workerinput"):  # before xdist starts its workers
        open(path, "w").close()
    import jax.monitoring

    jax.monitoring.register_event_duration_secs_listener(_count_compile)


_COMPILE = {"seconds": 0.0}


def _count_compile(event: str, seconds: float, **_) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILE["seconds"] += seconds


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """--cpu-report: where the suite's CPU goes. A command a test runs in a subprocess counts
    as the test's once it has been waited for, which --durations shows as waiting."""
    path = item.config.getoption("cpu_report")
    if not path:
        yield
        return
    before = (time.time(), time.process_time(), _children_cpu(), _COMPILE["seconds"])
    yield
    after = (time.time(), time.process_time(), _children_cpu(), _COMPILE["seconds"])
    wall, cpu, children, compile_seconds = (b - a for a, b in zip(before, after))
    line = dict(
        test=item.nodeid, wall=wall, cpu=cpu, children_cpu=children, compile=compile_seconds
    )
    with open(path, "a") as f:  # one short write: the workers' lines do not interleave
        f.write(json.dumps(line) + "\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pytest_terminal_summary(terminalreporter, config):
    path = config.getoption("cpu_report")
    if not path or hasattr(config, "workerinput"):
        return
    by_file: dict[str, float] = {}
    with open(path) as f:
        for line in map(json.loads, f):
            name = line["test"].split("::")[0]
            by_file[name] = by_file.get(name, 0.0) + line["cpu"] + line["children_cpu"]
    terminalreporter.section(f"CPU seconds by file, with subprocesses ({path})")
    for name, seconds in sorted(by_file.items(), key=lambda kv: -kv[1])[:15]:
        terminalreporter.write_line(f"{seconds:7.1f}  {name}")
    terminalreporter.write_line(f"{sum(by_file.values()):7.1f}  in all")
