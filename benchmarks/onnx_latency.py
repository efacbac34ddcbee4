r"""ONNX Runtime's CPU latency against ``model.apply`` under ``jax.jit``, on the same machine.

    python benchmarks/onnx_latency.py [--model=attention56] [--image_size=224] [--batch=1] \
        [--onnx_threads=0]

The network in evaluation mode, with its initial weights (the time does not depend on them),
lowered to ONNX as ``python -m ran_jax.export --format=onnx`` lowers it
(``ran_jax.training.onnx_graph``) and run by ONNX Runtime's CPU provider, with a thread per
core by default (``--onnx_threads=0``; JAX uses every core). Both are timed as the median of
``--repeats`` calls after 3 warm-up calls. Prints the file size, both latencies and one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import jax
import numpy as np
import onnx
import onnxruntime

from ran_jax.models import default_input, get_model
from ran_jax.training import host_allocator, onnx_graph

host_allocator.keep_freed_memory()


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="attention56")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--onnx_threads", type=int, default=0, help="0: ONNX Runtime's choice")
    args = parser.parse_args()

    num_classes, _ = default_input(args.model)
    model = get_model(args.model, num_classes)
    shape = (args.image_size, args.image_size, 3)
    images = np.random.default_rng(0).normal(size=(args.batch, *shape)).astype(np.float32)
    variables = model.init(jax.random.PRNGKey(0), images[:1])
    forward = jax.jit(lambda x: model.apply(variables, x, train=False))

    start = time.perf_counter()
    proto = onnx_graph.to_onnx(forward, shape)
    lowering_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save(proto, path)
        size_mb = os.path.getsize(path) / 1e6
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.onnx_threads
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    onnx_ms = _median_ms(lambda: session.run(None, {"images": images}), args.repeats)
    jax_ms = _median_ms(lambda: jax.block_until_ready(forward(images)), args.repeats)
    (got,) = session.run(None, {"images": images})
    expected = np.asarray(forward(images))
    report = {
        "model": args.model,
        "image_size": args.image_size,
        "batch": args.batch,
        "onnx_file_mb": round(size_mb, 1),
        "lowering_s": round(lowering_s, 1),
        "onnxruntime_ms": round(onnx_ms, 1),
        "onnx_threads": args.onnx_threads,
        "jax_jit_ms": round(jax_ms, 1),
        "max_relative_difference": float(np.max(np.abs(got - expected)) / np.max(np.abs(expected))),
        "onnxruntime": onnxruntime.__version__,
        "jax": jax.__version__,
        "cpu_count": os.cpu_count(),
    }
    print(f"{args.model} at {args.image_size}, batch {args.batch}: model.onnx {size_mb:.1f} MB")
    threads = args.onnx_threads or "default"
    print(f"ONNX Runtime {onnxruntime.__version__} (CPU, threads {threads}): {onnx_ms:.1f} ms")
    print(f"model.apply under jax.jit (JAX {jax.__version__}, CPU): {jax_ms:.1f} ms")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
