"""Element-type conversions: Cast (to an ONNX type code) and CastLike (to another tensor's type)."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, described
from cgtools.ops.base import Operation, register_op


def cast(x, dtype):
    with np.errstate(invalid="ignore", over="ignore"):  # out of range is undefined (ints) or ±inf (floats)
        return x.astype(dtype, copy=False)


class _Cast(Operation):
    """Shared backward of Cast and CastLike: the engine casts the gradient back to the input's dtype, and calls
    backward only when the output is float too (an int or bool tensor carries no gradient)."""

    @staticmethod
    def backward(ctx, grad):
        return (grad,) + (None,) * (len(ctx.needs_grad) - 1)


@register_op("Cast")
class Cast(_Cast):
    """input converted to the element type `to` (an ONNX TensorProto code: 1 float32, 7 int64, 9 bool, 11 float64…)"""

    symbol = "cast"

    @staticmethod
    def forward(ctx, input, *, to: int, saturate: int = 1, round_mode: str = "up"):
        # saturate and round_mode only concern float8 targets, which numpy cannot hold
        if to not in NUMPY_TYPES:
            raise CgError(f"cannot cast to ONNX type {to} (attribute 'to'); supported: {described(NUMPY_TYPES)}")
        return cast(input, NUMPY_TYPES[to])


@register_op("CastLike")
class CastLike(_Cast):
    """input converted to the element type of target_type"""

    symbol = "cast like"

    @staticmethod
    def forward(ctx, input, target_type, *, saturate: int = 1, round_mode: str = "up"):
        return cast(input, target_type.dtype)
