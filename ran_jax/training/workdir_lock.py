"""One training run per workdir: ``WORKDIR/lock.json`` names the run that holds it.

Two runs writing the same checkpoints would overwrite each other's steps, so the second run
started on a workdir (a command run twice by mistake, a second shell) is refused at once,
with the host and pid of the first. Only process 0 takes the lock: the processes of one
multi-process job share their workdir. The lock file is created atomically (``O_EXCL``) and
removed when the run ends, however it ends short of SIGKILL; a lock left by a process that
is gone (same host, pid no longer running, or running a newer process) is taken over with a
warning. A lock from another host cannot be checked and is respected; the message says how
to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import time

from absl import logging

NAME = "lock.json"


class WorkdirInUseError(RuntimeError):
    """Another training run holds the workdir."""


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except OSError:
        return None


def _alive(holder: dict) -> bool:
    """Whether the process that wrote ``holder`` (on this host) is still running."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    started = holder.get("start_ticks")
    return started is None or _start_ticks(pid) in (None, started)  # else: pid reused


class WorkdirLock:
    """Held from ``acquire`` to ``release``; ``acquire`` raises ``WorkdirInUseError``."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, NAME)
        self._held = False

    def _create(self, content: dict) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(content, f)
        return True

    def _holder(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}  # half written by a process that died at that moment: stale

    def _refusal(self, holder: dict, host: str) -> str | None:
        """Why ``holder`` (the lock file's content) keeps this host's run out; None where the
        lock is free or stale."""
        if holder and holder.get("host") != host:
            return (
                f"{os.path.dirname(self.path)} is in use by a training run on host "
                f"{holder.get('host')} (pid {holder.get('pid')}, started "
                f"{holder.get('started')}); wait for it to end, or, if it is gone, delete "
                f"{self.path} and start again."
            )
        if holder and _alive(holder):
            return (
                f"{os.path.dirname(self.path)} is in use by another training run: pid "
                f"{holder['pid']} on this host ({holder['host']}), started "
                f"{holder.get('started')}. Wait for it to end or stop it, or use another "
                "--workdir."
            )
        return None

    def check(self) -> None:
        """Raises ``WorkdirInUseError`` where another run holds the workdir; takes nothing and
        writes nothing, so a run can be refused before it opens (or prepares) its data."""
        refusal = self._refusal(self._holder(), socket.gethostname())  # {} where no file
        if refusal:
            raise WorkdirInUseError(refusal)

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "start_ticks": _start_ticks(os.getpid()),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for _ in range(3):  # a stale lock is removed, then taken like a free one
            if self._create(me):
                self._held = True
                return
            holder = self._holder()
            refusal = self._refusal(holder, me["host"])
            if refusal:
                raise WorkdirInUseError(refusal)
            logging.warning(
                "Taking over %s: the run that held it (pid %s on %s) is gone.",
                self.path,
                holder.get("pid"),
                holder.get("host"),
            )
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        raise WorkdirInUseError(f"Could not take {self.path}; another run keeps taking it.")

    def release(self) -> None:
        if self._held:
            self._held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
