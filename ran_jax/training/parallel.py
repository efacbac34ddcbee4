"""Data parallelism: one per-device step with named-axis collectives, launched two ways.

The step functions in ``steps.py`` see one device's share of the batch and call
``lax.pmean``/``lax.psum`` over ``AXIS`` (BatchNorm does too, through its ``axis_name``).
``DataParallel`` runs such a function under ``jax.pmap`` (state broadcast, batch stacked per
local device) or under ``jax.jit(jax.shard_map(...))`` over a one-axis device mesh (state
replicated, batch sharded along its leading axis). Both use every device of every process and
compute the same numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ran_jax import configs
from ran_jax.checks import check_choice

AXIS = "batch"


def _mesh(devices: list[jax.Device]) -> Mesh:
    # Auto axis types keep "compiler takes the wheel" semantics on newer JAX, whose
    # make_mesh defaults to explicit sharding (AxisType.Explicit, since JAX 0.9.0).
    return Mesh(np.array(devices), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


class DataParallel:
    """Places states and batches for, and compiles steps under, ``pmap`` or ``shard_map``."""

    def __init__(self, mode: str, devices: list[jax.Device] | None = None):
        check_choice("parallelism", mode, configs.PARALLELISM)
        self.mode = mode
        self.devices = list(devices or jax.devices())
        self.mesh = _mesh(self.devices)
        self._replicated = NamedSharding(self.mesh, P())
        self._sharded = NamedSharding(self.mesh, P(AXIS))
        # pmap takes this process's share stacked over its local devices; placing it there
        # ahead of the call (see ``prefetch``) keeps the copy out of the step.
        self._stacked = NamedSharding(_mesh(self._local_devices), P(AXIS))

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def _local_devices(self) -> list[jax.Device]:
        return [d for d in self.devices if d.process_index == jax.process_index()]

    def compile(self, fn: Callable, donate_state: bool = True) -> Callable:
        """Compiles ``fn(state, batch) -> replicated outputs`` for this mode."""
        if self.mode == "pmap":
            return jax.pmap(
                fn,
                axis_name=AXIS,
                in_axes=(None, 0),
                out_axes=None,
                donate_argnums=(0,) if donate_state else (),
                devices=self.devices,
            )
        # check_vma=False: the step averages gradients itself (lax.pmean), exactly as under
        # pmap. With the check on, shard_map would also sum the gradients of the replicated
        # parameters across devices on its own, and the step would apply that sum.
        mapped = jax.shard_map(
            fn, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=P(), check_vma=False
        )
        return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())

    def put_state(self, state: Any) -> Any:
        """Replicates ``state`` on every device."""
        return jax.device_put(state, self._replicated)

    def put_batch(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's batch -> the global batch, split across devices."""
        if self.mode == "pmap":  # pmap splits the leading axis over this process's devices
            n = len(self._local_devices)
            return jax.tree_util.tree_map(
                lambda x: jax.device_put(x.reshape(n, -1, *x.shape[1:]), self._stacked), batch
            )
        return jax.tree_util.tree_map(
            lambda x: jax.make_array_from_process_local_data(self._sharded, x), batch
        )


def to_host(tree: Any) -> Any:
    """Replicated device values as numpy, read from this process's first replica.

    Unlike ``jax.device_get`` this also works for arrays spanning several processes.
    """
    return jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_shards[0].data), tree)


def prefetch(batches: Iterator[Any], put: Callable[[Any], Any], size: int = 2) -> Iterator[Any]:
    """Transfers up to ``size`` batches ahead, so host-to-device copies overlap compute."""
    queue: deque = deque()
    for batch in batches:
        queue.append(put(batch))
        if len(queue) > size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()
