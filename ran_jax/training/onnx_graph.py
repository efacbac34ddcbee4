"""The ONNX graph of a JAX function of an image batch, ``logits = f(images)``, for ONNX Runtime
and other ONNX runtimes.

The function is traced once with a symbolic batch size, and each primitive of its jaxpr
becomes standard ONNX operators (opset 17, no custom domain): ``conv_general_dilated`` an NCHW
``Conv`` between two ``Transpose`` nodes, ``dot_general`` a ``MatMul`` (Caffe Interp's matrix
products and the 1x1 convolutions), the strided slices and maxima of Caffe pooling ``Slice``
and ``Max``, BatchNorm its arithmetic. Calls (``jit``, custom derivatives) are inlined, with
their forward pass only. Parts that do not depend on the images (BatchNorm scales, index
grids) are computed at export time and stored as constants. The batch dimension stays
dynamic; image sizes are fixed, since pooling sizes and Interp matrices follow from them.

Only the primitives the registered networks use in evaluation mode are lowered; any other
stops the export with a ``ValueError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from jax.extend.core import Literal
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17, not the newest one onnx writes: older runtimes read it
_BIG = np.iinfo(np.int64).max  # a Slice end past any dimension
_CALLS = ("jit", "pjit", "custom_jvp_call", "custom_vjp_call")  # pjit: jit in older JAX
_ELEMENTWISE = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max"}
_FOLDED_SIZE = 4096  # values computed at export time may grow to this many elements


def _static(dim: Any) -> bool:
    return isinstance(dim, (int, np.integer))


def _shape_constant(dims: Sequence[Any]) -> np.ndarray:
    """A Reshape target: the one dimension that depends on the batch size becomes -1."""
    dynamic = [i for i, d in enumerate(dims) if not _static(d)]
    if len(dynamic) > 1:
        raise ValueError(f"ONNX export cannot reshape to {tuple(dims)}: two batch-sized axes.")
    return np.array([-1 if not _static(d) else d for d in dims], np.int64)


class _Graph:
    """ONNX nodes and constants under construction; ``values`` holds the known constants."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.values: dict[str, np.ndarray] = {}
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, value: Any, dtype: Any = None) -> str:
        """A constant; those the nodes read become the model's initializers."""
        name = self.name("const")
        self.values[name] = np.asarray(value, dtype)
        return name

    def constants(self, *values: Sequence[int]) -> list[str]:
        return [self.constant(list(v), np.int64) for v in values]

    def node(self, op: str, inputs: Sequence[str], **attributes: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attributes))
        return out

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        if list(perm) == sorted(perm):
            return x
        if x in self.values:
            return self.constant(np.transpose(self.values[x], perm))
        return self.node("Transpose", [x], perm=list(perm))

    def reshape(self, x: str, dims: Sequence[Any]) -> str:
        if x in self.values and all(map(_static, dims)):
            return self.constant(self.values[x].reshape(dims))
        return self.node("Reshape", [x, self.constant(_shape_constant(dims), np.int64)])

    def lower(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[str]) -> list[str]:
        """Adds the nodes of ``jaxpr`` applied to ``args``; returns the names of its outputs."""
        env: dict[Any, str] = {}

        def read(atom: Any) -> str:
            if isinstance(atom, Literal):
                return self.constant(atom.val, atom.aval.dtype)
            return env[atom]

        for var, value in zip(jaxpr.constvars, consts):
            env[var] = self.constant(value, var.aval.dtype)
        env.update(zip(jaxpr.invars, args))
        for eqn in jaxpr.eqns:
            inputs = [read(atom) for atom in eqn.invars]
            if eqn.primitive.name in _CALLS:
                sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
                outs = self.lower(sub.jaxpr, sub.consts, inputs)
            elif self._foldable(eqn, inputs):
                results = eqn.primitive.bind(*(self.values[i] for i in inputs), **eqn.params)
                results = results if eqn.primitive.multiple_results else [results]
                outs = [self.constant(r, v.aval.dtype) for r, v in zip(results, eqn.outvars)]
            else:
                rule = _RULES.get(eqn.primitive.name)
                if rule is None:
                    raise ValueError(
                        f"ONNX export has no lowering for JAX's {eqn.primitive.name} "
                        f"({eqn.source_info.name_stack})."
                    )
                outs = [rule(self, eqn, *inputs)]
            env.update(zip(eqn.outvars, outs))
        return [read(atom) for atom in jaxpr.outvars]

    def _foldable(self, eqn: Any, inputs: Sequence[str]) -> bool:
        """Whether ``eqn`` can be computed now: constant inputs, a small fixed-size output."""
        if not all(i in self.values for i in inputs):
            return False
        shapes = [v.aval.shape for v in eqn.outvars]
        if not all(_static(d) for shape in shapes for d in shape):
            return False
        largest_input = max((self.values[i].size for i in inputs), default=0)
        return max(int(np.prod(s)) for s in shapes) <= max(largest_input, _FOLDED_SIZE)


def _broadcast_in_dim(g: _Graph, eqn: Any, x: str) -> str:
    shape, kept = eqn.params["shape"], eqn.params["broadcast_dimensions"]
    new_axes = [i for i in range(len(shape)) if i not in kept]
    if new_axes:
        x = g.node("Unsqueeze", [x, *g.constants(new_axes)])
    operand = dict(zip(kept, eqn.invars[0].aval.shape))
    if all(operand.get(i, 1) == d for i, d in enumerate(shape)):
        return x
    if not all(_static(d) or operand.get(i) == d for i, d in enumerate(shape)):
        raise ValueError("ONNX export cannot broadcast to a new batch-sized axis.")
    target = [d if _static(d) else 1 for d in shape]  # Expand keeps the batch axis as it is
    return g.node("Expand", [x, *g.constants(target)])


def _pad(g: _Graph, eqn: Any, x: str, value: str) -> str:
    config = eqn.params["padding_config"]
    if any(interior or low < 0 or high < 0 for low, high, interior in config):
        raise ValueError("ONNX export pads only by whole non-negative borders.")
    pads = [low for low, _, _ in config] + [high for _, high, _ in config]
    return g.node("Pad", [x, *g.constants(pads), value], mode="constant")


def _slice(g: _Graph, eqn: Any, x: str) -> str:
    starts, limits = eqn.params["start_indices"], eqn.params["limit_indices"]
    steps = eqn.params["strides"] or (1,) * len(starts)
    ends = [d if _static(d) else _BIG for d in limits]
    return g.node("Slice", [x, *g.constants(starts, ends, range(len(starts)), steps)])


def _grid(indices: np.ndarray | None) -> list[tuple[int, int]] | None:
    """(start, step) per axis of an index grid ``[n1, ..., nk, k]`` whose component ``j`` is
    ``start + step * i_j``: the indices of strided slicing; None for other index arrays."""
    if indices is None or indices.ndim != indices.shape[-1] + 1:
        return None
    counts, origin = indices.shape[:-1], indices[(0,) * (indices.ndim - 1)]
    unit = np.eye(len(counts), dtype=int)
    steps = [
        int(indices[tuple(e)][j] - origin[j]) if n > 1 else 1
        for j, (e, n) in enumerate(zip(unit, counts))
    ]
    ranges = [o + s * np.arange(n) for o, s, n in zip(origin, steps, counts)]
    expected = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1)
    if min(steps) < 1 or not np.array_equal(indices, expected):
        return None
    return [(int(o), s) for o, s in zip(origin, steps)]


def _gather(g: _Graph, eqn: Any, x: str, indices: str) -> str:
    """The gather of strided indexing (``x[:, ::s, ::s]``): whole slices at a grid of evenly
    spaced indices, in the operand's axis order, which is a ``Slice`` with steps."""
    numbers, sizes = eqn.params["dimension_numbers"], eqn.params["slice_sizes"]
    axes, shape = tuple(numbers.start_index_map), eqn.invars[0].aval.shape
    grid = _grid(g.values.get(indices))
    rank = len(shape)
    if (
        grid is None
        or numbers.operand_batching_dims
        or tuple(numbers.collapsed_slice_dims) != axes
        or len(grid) != len(axes)
        or [i for i in range(rank) if i not in numbers.offset_dims] != sorted(axes)
        or any(sizes[i] != (1 if i in axes else shape[i]) for i in range(rank))
    ):
        raise ValueError("ONNX export lowers only the gathers of strided slicing.")
    counts = g.values[indices].shape[:-1]
    starts = [start for start, _ in grid]
    steps = [step for _, step in grid]
    ends = [start + step * (n - 1) + 1 for (start, step), n in zip(grid, counts)]
    return g.node("Slice", [x, *g.constants(starts, ends, axes, steps)])


def _dot_general(g: _Graph, eqn: Any, lhs: str, rhs: str) -> str:
    """A ``MatMul`` of the operands transposed and flattened to [free, contracted] and
    [contracted, free], reshaped back to JAX's [lhs free..., rhs free...]."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    if lb or rb:
        raise ValueError("ONNX export does not lower batched dot_general.")
    lshape, rshape = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
    lfree = [i for i in range(len(lshape)) if i not in lc]
    rfree = [i for i in range(len(rshape)) if i not in rc]

    def flat(dims: Sequence[Any]) -> Any:
        return int(np.prod(dims)) if all(map(_static, dims)) else -1

    contracted = flat([lshape[i] for i in lc])
    lhs = g.transpose(lhs, [*lfree, *lc])
    rhs = g.transpose(rhs, [*rc, *rfree])
    if len(lshape) != 2:
        lhs = g.reshape(lhs, [flat([lshape[i] for i in lfree]), contracted])
    if len(rshape) != 2:
        rhs = g.reshape(rhs, [contracted, flat([rshape[i] for i in rfree])])
    out = g.node("MatMul", [lhs, rhs])
    if len(lshape) == len(rshape) == 2:
        return out
    return g.reshape(out, [*(lshape[i] for i in lfree), *(rshape[i] for i in rfree)])


def _conv(g: _Graph, eqn: Any, x: str, kernel: str) -> str:
    """An NCHW ``Conv`` with OIHW weights, between transposes to and from JAX's layouts."""
    p = eqn.params
    if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
        raise ValueError("ONNX export does not lower transposed or batch-grouped convolutions.")
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    padding = p["padding"]
    y = g.node(
        "Conv",
        [g.transpose(x, lhs_spec), g.transpose(kernel, rhs_spec)],
        strides=list(p["window_strides"]),
        pads=[low for low, _ in padding] + [high for _, high in padding],
        dilations=list(p["rhs_dilation"]),
        group=p["feature_group_count"],
    )
    return g.transpose(y, list(np.argsort(out_spec)))


def _convert(g: _Graph, eqn: Any, x: str) -> str:
    dtype = eqn.params["new_dtype"]
    if dtype == eqn.invars[0].aval.dtype:
        return x
    return g.node("Cast", [x], to=helper.np_dtype_to_tensor_dtype(dtype))


_RULES: dict[str, Callable[..., str]] = {
    **{
        name: lambda g, eqn, *xs: g.node(_ELEMENTWISE[eqn.primitive.name], xs)
        for name in _ELEMENTWISE
    },
    "logistic": lambda g, eqn, x: g.node("Sigmoid", [x]),
    "rsqrt": lambda g, eqn, x: g.node("Reciprocal", [g.node("Sqrt", [x])]),
    "square": lambda g, eqn, x: g.node("Mul", [x, x]),
    "convert_element_type": _convert,
    "reshape": lambda g, eqn, x: g.reshape(x, eqn.params["new_sizes"]),
    "squeeze": lambda g, eqn, x: g.node("Squeeze", [x, *g.constants(eqn.params["dimensions"])]),
    "transpose": lambda g, eqn, x: g.transpose(x, eqn.params["permutation"]),
    "concatenate": lambda g, eqn, *xs: g.node("Concat", xs, axis=eqn.params["dimension"]),
    "reduce_sum": lambda g, eqn, x: g.node(
        "ReduceSum", [x, *g.constants(eqn.params["axes"])], keepdims=0
    ),
    "broadcast_in_dim": _broadcast_in_dim,
    "pad": _pad,
    "slice": _slice,
    "gather": _gather,
    "dot_general": _dot_general,
    "conv_general_dilated": _conv,
}


def to_onnx(
    f: Callable[[jax.Array], jax.Array],
    shape: Sequence[int],
    input_name: str = "images",
    output_name: str = "logits",
) -> onnx.ModelProto:
    """The ONNX model of ``f`` on float32 ``[batch, *shape]``, for any batch size."""
    (batch,) = jax.export.symbolic_shape("batch")
    closed = jax.make_jaxpr(f)(jax.ShapeDtypeStruct((batch, *shape), jnp.float32))
    (out_aval,) = closed.out_avals
    g = _Graph()
    (out,) = g.lower(closed.jaxpr, closed.consts, [input_name])
    g.nodes.append(helper.make_node("Identity", [out], [output_name]))
    used = {name for node in g.nodes for name in node.input}

    def info(name: str, dims: Sequence[Any], dtype: Any) -> onnx.ValueInfoProto:
        dims = [d if _static(d) else "batch" for d in dims]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype), dims)

    graph = helper.make_graph(
        g.nodes,
        "ran_jax",
        [info(input_name, (batch, *shape), np.dtype(np.float32))],
        [info(output_name, out_aval.shape, out_aval.dtype)],
        [numpy_helper.from_array(v, name) for name, v in g.values.items() if name in used],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model.producer_name = "ran_jax"
    return model
