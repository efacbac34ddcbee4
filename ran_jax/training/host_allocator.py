"""Lets XLA:CPU reuse its per-step buffers instead of page-faulting them in every step.

XLA:CPU allocates each execution's temporaries as one large block with ``malloc`` and frees
it at the end of the step. glibc serves a block that large with a fresh ``mmap`` and returns
it with ``munmap``, so every step page-faults the whole block in again, in kernel time
(figures: docs/performance.md, "What changed in the step", host memory). Eager PyTorch does
not pay this: its tensors are small enough for glibc to recycle.

``keep_freed_memory`` fixes it in two settings, made before JAX creates its CPU client:

- glibc's ``mallopt``: the main heap never uses ``mmap`` for large blocks and never gives
  freed memory back to the OS, so the second step reuses the first step's pages. The
  process keeps its peak heap, as a caching allocator would.
- ``jax_cpu_enable_async_dispatch=False``: a single-device computation then runs, and
  allocates, in the calling (main) thread, whose heap is the one tuned above. XLA's worker
  threads allocate from their own glibc arenas, which ``mallopt`` cannot keep from
  ``mmap``-ing blocks this large, and forcing every thread onto the main heap instead
  (``M_ARENA_MAX=1``) made the steps slower through lock contention. Multi-device
  computations stay asynchronous (JAX applies the flag to single-device ones only).

It acts only where JAX runs on the CPU: on accelerator hosts XLA's buffers live on the
device. ``main`` and ``benchmark`` call it first thing; ``RAN_JAX_KEEP_FREED_MEMORY=0``
turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import os
import sys

# mallopt parameters from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_ACCELERATOR_PLUGINS = ("jax-cuda", "jax-rocm", "libtpu")


def cpu_only() -> bool:
    """Whether JAX runs on the CPU: JAX_PLATFORMS says so, or no accelerator plugin is installed."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not any(
        (dist.metadata["Name"] or "").lower().replace("_", "-").startswith(_ACCELERATOR_PLUGINS)
        for dist in importlib.metadata.distributions()
    )


def _keep_main_heap() -> bool:
    """glibc only: no ``mmap`` for large blocks, no trimming of the main heap."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, for one): nothing to tune
        return False
    # -1 as mallopt's int is SIZE_MAX to glibc: no trimming, however large the free top is.
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1


def keep_freed_memory() -> bool:
    """Applies both settings on a CPU-only Linux host; returns whether it did."""
    if os.environ.get("RAN_JAX_KEEP_FREED_MEMORY", "1") == "0" or not cpu_only():
        return False
    if not _keep_main_heap():
        return False
    import jax  # here, so that the heap is tuned before JAX's first allocation

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True
