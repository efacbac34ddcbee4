"""Parameter and multiply-accumulate counts, computed from shapes alone (no FLOPs spent).

Conventions are the paper's (``docs/faithfulness.md`` §1.2): parameters are the trainable
ones (conv and FC weights, FC bias, BatchNorm scale and shift); BatchNorm running statistics
are reported separately. MACs count conv and dense layers only, per image.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ran_jax.models.layers import PointwiseConv
from ran_jax.models.network import ResidualStage


@dataclasses.dataclass(frozen=True)
class Complexity:
    """Counts of one network at one input size."""

    params: int  # trainable parameters
    batch_stats: int  # BatchNorm running means and variances
    macs: int  # conv + dense multiply-accumulates per image
    output_shape: tuple[int, ...]
    stage_shapes: dict[str, tuple[int, ...]]  # output shape of stem, stages and head


def count_leaves(tree: Any) -> int:
    """Total number of elements in a pytree of arrays or shape structs."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _layer_macs(module: nn.Module, out: Any) -> int:
    if isinstance(module, (nn.Conv, PointwiseConv)):
        kernel = module.get_variable("params", "kernel")
        # kernel is (kh, kw, cin / groups, cout): each output element costs kh*kw*cin/groups.
        return math.prod(out.shape[1:]) * math.prod(kernel.shape[:-1])
    kernel = module.get_variable("params", "kernel")
    return math.prod(out.shape[1:]) * kernel.shape[0]


def complexity(model: nn.Module, image_size: int | tuple[int, int]) -> Complexity:
    """Counts ``model`` (a ResidualAttentionNetwork) for one image of ``image_size``."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    images = jax.ShapeDtypeStruct((1, height, width, model.in_channels), jnp.float32)
    macs: list[int] = []
    stage_shapes: dict[str, tuple[int, ...]] = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__":
            return out
        if isinstance(module, (nn.Conv, PointwiseConv, nn.Dense)):
            macs.append(_layer_macs(module, out))
        if isinstance(module, ResidualStage):
            if not stage_shapes:
                stage_shapes["stem"] = tuple(args[0].shape)
            stage_shapes[module.name] = tuple(out.shape)
        elif module.name == "classifier":
            stage_shapes["head"] = tuple(out.shape)
        return out

    # One abstract trace: initialising also runs the network once, so it gives the output
    # and, after each layer's call, that layer's kernel.
    with nn.intercept_methods(record):
        output, variables = jax.eval_shape(
            lambda x: model.init_with_output(jax.random.key(0), x, train=False), images
        )
    return Complexity(
        params=count_leaves(variables["params"]),
        batch_stats=count_leaves(variables.get("batch_stats", {})),
        macs=sum(macs),
        output_shape=tuple(output.shape),
        stage_shapes=stage_shapes,
    )
