"""The run: the cases in order, each kind in worker processes one after the other, within the
budget; a case that no longer fits is skipped, the one running at the budget stopped."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import measure, pytest_case
from .cases import FULL, TINY, Case, cases, estimate, select
from .records import LOG, RESULTS, ROOT, append, base, environment, read_records, skip, versions
from .report import write_summary

COMMAND = ROOT / "benchmarks" / "accelerator_suite.py"  # started with --worker


def _children_cpu() -> float:
    """CPU seconds (user and system) of the ended child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Suite:
    """One run into ``out``: ``run(patterns)`` runs the chosen cases and writes the summary."""

    def __init__(
        self,
        out: Path,
        tiny: bool = False,
        budget_s: float = math.inf,
        no_tensorflow: bool = False,
        inductor: bool = False,
    ) -> None:
        self.tiny, self.budget_s, self.inductor = tiny, budget_s, inductor
        self.sizes = TINY if tiny else FULL
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.time()
        self.deadline = self.start + budget_s
        self.no_tf = tiny or no_tensorflow
        self.log = open(self.out / LOG, "a")
        self._cache: str | None = None
        results = self.out / RESULTS  # records of an earlier run into the same folder stay
        self._offset = results.stat().st_size if results.exists() else 0

    @property
    def budget(self) -> float | None:
        """``budget_s`` for the records: None where there is no limit."""
        return None if math.isinf(self.budget_s) else self.budget_s

    # -- processes

    def cache_dir(self) -> str:
        """A JAX compilation cache for this --tiny run, removed at its end."""
        if self._cache is None:
            self._cache = tempfile.mkdtemp(prefix="suite_jax_cache_")
        return self._cache

    def _env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if self.tiny:  # toy figures: compile fast, and each distinct computation once
            env["JAX_PLATFORMS"] = "cpu"
            env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
            if "JAX_COMPILATION_CACHE_DIR" not in env:
                env["JAX_COMPILATION_CACHE_DIR"] = self.cache_dir()
            env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
            env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
            env["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # no pool of compile workers to start
        env.update(extra)
        return env

    def _spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        self.log.write(f"\n$ {' '.join(argv[:4])} ...\n")
        self.log.flush()
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped whole at the budget
        )  # fmt: skip

    def _wait(self, proc: subprocess.Popen, until: float | None = None) -> bool:
        """Waits until the process ends or the budget (or ``until``) does; False if it had to
        be stopped."""
        start, cpu = time.time(), _children_cpu()
        end = self.deadline if until is None else min(until, self.deadline)
        try:
            proc.wait(timeout=max(end - time.time(), 0.1))
            return True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        finally:
            self.log.write(
                f"[suite] process {proc.args[2][-40:]!r} ended after {time.time() - start:.1f} s, "
                f"{_children_cpu() - cpu:.1f} s of CPU\n"
            )
            self.log.flush()

    def _observed(self) -> dict[str, float]:
        by_name = {c.name: c for c in cases(self.sizes)}
        seen = {}
        for r in read_records(self.out):
            case = by_name.get(r.get("case"))
            if case and r.get("status") not in ("skipped",) and "seconds" in r:
                seen[case.family] = r["seconds"]
        return seen

    def _done(self) -> set[str]:
        """The cases recorded by this run."""
        with open(self.out / RESULTS, "rb") as f:
            f.seek(self._offset)
            lines = f.read().decode(errors="replace").splitlines()
        done = set()
        for line in lines:
            try:
                done.add(json.loads(line).get("case"))
            except json.JSONDecodeError:
                pass
        return done

    def _last_log_line(self) -> str:
        self.log.flush()
        with open(self.out / LOG, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [x.strip() for x in f.read().decode(errors="replace").splitlines()]
        lines = [x for x in lines if x and not x.startswith("[suite]")]
        return lines[-1][:300] if lines else ""

    def _worker_argv(self, kind: str, todo: list[Case], extra: dict | None) -> list[str]:
        argv = [
            sys.executable, "-u", str(COMMAND), f"--worker={kind}",
            f"--out={self.out}", f"--deadline={self.deadline}",
            f"--case_names={','.join(c.name for c in todo)}",
            f"--estimates={json.dumps(self._observed())}", f"--extra={json.dumps(extra or {})}",
        ]  # fmt: skip
        if self.tiny:
            argv.append("--tiny")
        if self.no_tf:
            argv.append("--no_tensorflow")
        if self.inductor:
            argv.append("--inductor")
        return argv

    def run_worker(self, kind: str, group: list[Case], extra: dict | None = None) -> None:
        """Runs ``group`` in worker processes; a crash costs one case, the rest go on."""
        todo = list(group)
        while todo:
            # The comparisons share the device with the pytest run: no preallocated pool.
            extra_env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if kind == "compare" else {}
            proc = self._spawn(self._worker_argv(kind, todo, extra), self._env(**extra_env))
            finished = self._wait(proc)
            done = self._done()
            todo = [c for c in todo if c.name not in done]
            if not todo:
                return
            if finished and proc.returncode == 0:  # should not happen: it records each case
                reason = "the worker ended without recording it"
            elif finished:
                reason = (
                    f"the worker died (exit status {proc.returncode}): "
                    f"{self._last_log_line()} (see {LOG})"
                )
            else:
                reason = f"stopped at the budget ({self.budget_s:.0f} s)"
            if kind == "compare":
                for c in todo:
                    append(self.out, {**base(c, self.tiny), "status": "error", "error": reason})
                return
            failed = todo.pop(0)
            append(
                self.out,
                {**base(failed, self.tiny), "status": "error", "error": reason,
                 "versions": versions()},
            )  # fmt: skip
            if not finished:
                for c in todo:
                    append(self.out, skip(c, self.tiny, "budget spent"))
                return

    def _fits(self, group: list[Case]) -> bool:
        """Whether the group's slowest estimate fits the budget left; else records skips."""
        need = max(estimate(c, self._observed(), self.tiny) for c in group)
        if need <= self.deadline - time.time():
            return True
        for c in group:
            append(self.out, skip(c, self.tiny, f"budget: needs about {need:.0f} s"))
        return False

    def start_pytest(self, case: Case) -> tuple[subprocess.Popen, str, float] | None:
        if not self._fits([case]):
            return None
        junit = tempfile.mkdtemp(prefix="suite_pytest_")
        env = self._env(XLA_PYTHON_CLIENT_PREALLOCATE="false")
        if not self.tiny:
            # JAX picks the accelerator (tests/conftest.py sets "cpu" only where it is unset).
            env["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "")
        return self._spawn(pytest_case.argv(self.sizes, self.tiny, junit), env), junit, time.time()

    def finish_pytest(self, case: Case, started: tuple[subprocess.Popen, str, float]) -> None:
        proc, junit, start = started
        # At most PYTEST_SHARE of the budget, so that a slow or stuck test run leaves the
        # speed cases their time.
        finished = self._wait(proc, until=start + pytest_case.PYTEST_SHARE * self.budget_s)
        seconds = time.time() - start
        append(
            self.out,
            pytest_case.record(case, self.tiny, proc.returncode, finished, junit, seconds),
        )
        shutil.rmtree(junit, ignore_errors=True)

    # -- the run

    def pipeline(self, group: list[Case]) -> None:
        """The input cases: measured where TensorFlow is importable, else recorded skips
        with the per-core figure measured on the CPU machine."""
        records = read_records(self.out)

        def fastest(cifar: bool) -> tuple[float | None, str | None]:
            best = max(
                (
                    r for r in records
                    if r.get("kind") == "jax" and r.get("status") == "ok"
                    and r.get("mode") == "train" and r["model"].startswith("cifar") == cifar
                ),
                key=lambda r: r["images_per_second"], default=None,
            )  # fmt: skip
            return (best["images_per_second"], best["case"]) if best else (None, None)

        rates = {c.name: fastest(c.name.endswith("cifar10")) for c in group}
        if not self.no_tf and importlib.util.find_spec("tensorflow"):
            self.run_worker("pipeline", group, {k: v[0] for k, v in rates.items()})
            return
        for case in group:
            figures = measure.pipeline_without_tensorflow(
                case.name.split("/")[1], *rates[case.name]
            )
            append(self.out, {**base(case, self.tiny), **figures, "versions": versions()})

    def run(self, patterns: str | None = None) -> dict[str, Any]:
        """Runs the cases matching ``patterns`` (all: None); returns the summary."""
        append(self.out, environment(self.tiny, self.budget, self.no_tf))
        chosen = select(cases(self.sizes), patterns)
        i = 0
        while i < len(chosen):
            kind = chosen[i].kind
            group = []
            while i < len(chosen) and chosen[i].kind == kind:
                group.append(chosen[i])
                i += 1
            if kind == "pytest":
                started = self.start_pytest(group[0])
                if i < len(chosen) and chosen[i].kind == "compare":  # beside the pytest run
                    compare = []
                    while i < len(chosen) and chosen[i].kind == "compare":
                        compare.append(chosen[i])
                        i += 1
                    self.run_compare(compare)
                if started:
                    self.finish_pytest(group[0], started)
            elif kind == "compare":
                self.run_compare(group)
            elif kind == "pipeline":
                self.pipeline(group)
            else:
                self.run_worker(kind, group)
        self.log.close()
        if self._cache:
            shutil.rmtree(self._cache, ignore_errors=True)
        return write_summary(self.out, self.tiny, self.budget, time.time() - self.start)

    def run_compare(self, group: list[Case]) -> None:
        if self._fits(group):
            self.run_worker("compare", group)
