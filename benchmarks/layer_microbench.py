r"""Forward + backward time of ran_jax's layer forms against the plain XLA ops they replace.

    python benchmarks/layer_microbench.py

Times ``jax.grad`` of a scalar function of each layer, jitted, as the median of 10 calls.
The plain forms are what ``ran_jax.models.layers`` used before (docs/performance.md): 1x1
convolutions as ``lax.conv``, max-pooling as ``reduce_window``, Interp as gathers, and XLA's
own weight gradient for 3x3 convolutions. Host memory is set up as ``ran_jax.main`` does
(``ran_jax.training.host_allocator``), so buffers are not page-faulted anew in every call.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ran_jax.models import layers
from ran_jax.training import host_allocator

host_allocator.keep_freed_memory()


def _conv1x1(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _pointwise(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return layers.PointwiseConv(kernel.shape[-1]).apply({"params": {"kernel": kernel}}, x)


def _conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(
        x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _reduce_window_pool(x: jax.Array) -> jax.Array:
    pad = [(layers.pooled_size(n) - 1) * 2 + 3 - n for n in x.shape[1:3]]
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((0, pad[0]), (0, pad[1])))


def _gather_interp(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    for axis, out in ((1, size[0]), (2, size[1])):
        lo, hi, frac = layers._interp_taps(x.shape[axis], out)
        shape = [1] * x.ndim
        shape[axis] = out
        low, high = jnp.take(x, lo, axis=axis), jnp.take(x, hi, axis=axis)
        x = low + (high - low) * jnp.asarray(frac.reshape(shape))
    return x


def _time(fn: Callable, *args: jax.Array) -> float:
    """Median milliseconds of one jitted gradient of sum(sin(fn(*args)))."""
    grad = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(fn(*a))), argnums=tuple(range(len(args)))))
    jax.block_until_ready(grad(*args))
    times = []
    for _ in range(10):
        start = time.perf_counter()
        jax.block_until_ready(grad(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)

    def normal(*shape: int) -> jax.Array:
        return jnp.asarray(rng.normal(size=shape).astype(np.float32))

    print(f"JAX {jax.__version__} on {jax.devices()[0].device_kind}; ms per forward+backward")
    for shape, out in (((32, 32, 32, 64), 64), ((32, 32, 32, 16), 64), ((32, 16, 16, 128), 128)):
        x, kernel = normal(*shape), normal(1, 1, shape[-1], out)
        print(
            f"1x1 conv {shape} -> {out}: lax.conv {_time(_conv1x1, x, kernel):.1f}, "
            f"PointwiseConv {_time(_pointwise, x, kernel):.1f}"
        )
    for shape in ((8, 56, 56, 64), (8, 28, 28, 128), (64, 32, 32, 16), (64, 16, 16, 32)):
        x, kernel = normal(*shape), normal(3, 3, shape[-1], shape[-1])
        print(
            f"3x3 conv {shape}: XLA weight gradient {_time(_conv3x3, x, kernel):.1f}, "
            f"shifted {_time(layers.conv3x3_shifted_wgrad, x, kernel):.1f}"
        )
    for shape in ((32, 32, 32, 64), (8, 56, 56, 256), (32, 17, 17, 128)):
        x = normal(*shape)
        print(
            f"max-pool {shape}: reduce_window {_time(_reduce_window_pool, x):.1f}, "
            f"separable {_time(layers.caffe_max_pool, x):.1f}"
        )
    for shape, size in (
        ((32, 16, 16, 64), (32, 32)),
        ((8, 28, 28, 256), (56, 56)),
        ((8, 7, 7, 1024), (14, 14)),
    ):
        x = normal(*shape)
        gather = _time(functools.partial(_gather_interp, size=size), x)
        matmul = _time(functools.partial(layers.caffe_interp, size=size), x)
        print(f"interp {shape} -> {size}: gather {gather:.1f}, matmul {matmul:.1f}")


if __name__ == "__main__":
    main()
