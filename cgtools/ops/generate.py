"""Tensors made from shapes and attributes, not from input elements: Shape, Size, Constant(OfShape), Range."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import CODES
from cgtools.ops.base import Operation, register_op


@register_op("Shape")
class Shape(Operation):
    """data's shape as an int64 vector (only axes start to end, if given; Python slicing clamps as ONNX does)"""

    symbol = "shape"

    @staticmethod
    def forward(ctx, data, *, start: int = 0, end: int = None):
        return np.array(data.shape[start:end], np.int64)


@register_op("Size")
class Size(Operation):
    """the number of elements of data, an int64 scalar"""

    symbol = "size"

    @staticmethod
    def forward(ctx, data):
        return np.array(data.size, np.int64)


def one_value(value, name):
    if value.size != 1:
        raise CgError(f"attribute {name!r} must hold a single value, found {value.size}")
    return value.reshape(())


@register_op("ConstantOfShape")
class ConstantOfShape(Operation):
    """a tensor of the given shape, every element `value` (float32 zero when not given)"""

    symbol = "fill"

    @staticmethod
    def forward(ctx, input, *, value: np.ndarray = None):
        value = np.zeros((), np.float32) if value is None else one_value(value, "value")
        return np.full([int(d) for d in np.ravel(input)], value, value.dtype)


CONSTANT_DTYPES = {"value": None, "value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                   "value_ints": np.int64}


@register_op("Constant")
class Constant(Operation):
    """the tensor its one attribute gives: value, or value_float(s) as float32, or value_int(s) as int64"""

    symbol = "const"

    @staticmethod
    def forward(ctx, *, value: np.ndarray = None, value_float: float = None, value_floats: list[float] = None,
                value_int: int = None, value_ints: list[int] = None):
        values = (value, value_float, value_floats, value_int, value_ints)
        given = {name: v for name, v in zip(CONSTANT_DTYPES, values) if v is not None}
        if len(given) != 1:
            raise CgError(f"Constant needs exactly one of the attributes {', '.join(CONSTANT_DTYPES)}; found "
                          f"{', '.join(given) or 'none'}")
        (name, v), = given.items()
        return np.array(v, CONSTANT_DTYPES[name])


@register_op("Range")
class Range(Operation):
    """start, start + delta, start + 2·delta, … up to limit (exclusive)"""

    symbol = "range"

    @staticmethod
    def forward(ctx, start, limit, delta, *, stash_type: int = 1):
        work = start.dtype
        if work == np.float16:  # counted in float32, or float64 if stash_type says so (11), as ONNX asks
            work = np.float64 if stash_type == CODES["float64"] else np.float32
        s, l, d = (np.asarray(v, work).reshape(()) for v in (start, limit, delta))
        n = max(int(np.ceil((l - s) / d)), 0)
        steps = np.arange(n, dtype=work)
        ctx.save(steps)
        return (s + steps * d).astype(start.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        steps = ctx[0]
        # output[i] = start + i·delta; the count of elements does not change with small moves of limit
        return grad.sum(), None, (grad * steps).sum()
