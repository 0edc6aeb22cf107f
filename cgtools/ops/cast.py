"""Element-type conversions: Cast (to an ONNX type code) and CastLike (to another tensor's type).

Every numeric ONNX type is a numpy dtype (ml_dtypes' for bfloat16, float8, float6, float4, int4 and int2).
Casting to a float8 type with `saturate` (the default) clips out-of-range values to the type's largest finite
one, as ONNX says; without it they become NaN (or ±inf for float8_e5m2), which is ml_dtypes' own conversion.
float8_e8m0fnu (a power of two) is rounded as `round_mode` says, by onnx's own routine."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, described, require_onnx
from cgtools.ops.base import Operation, register_op

SATURATING = frozenset(np.dtype(name) for name in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                                                   "float8_e5m2fnuz"))
E8M0 = np.dtype("float8_e8m0fnu")
ROUND_MODES = ("up", "down", "nearest")


def cast(x, dtype, saturate: int = 1, round_mode: str = "up"):
    dtype = np.dtype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # out of range is undefined (ints) or ±inf (floats)
        if dtype in SATURATING and saturate:
            info = ml_dtypes.finfo(dtype)
            return np.clip(x, info.min, info.max).astype(dtype)  # clip keeps NaN
        if dtype == E8M0:
            if round_mode not in ROUND_MODES:
                raise CgError(f"expected round_mode one of {', '.join(ROUND_MODES)}, found {round_mode!r}",
                              where="round_mode")
            return require_onnx().numpy_helper.to_float8e8m0(x, bool(saturate), round_mode).astype(dtype)
        return x.astype(dtype, copy=False)


class _Cast(Operation):
    """Shared backward of Cast and CastLike: the engine casts the gradient back to the input's dtype, and calls
    backward only when the output is float too (an int or bool tensor carries no gradient)."""

    keeps_dtypes = True  # converts between dtypes itself: never run in float32 (ops.base.bound_forward)

    @staticmethod
    def backward(ctx, grad):
        return (grad,) + (None,) * (len(ctx.needs_grad) - 1)


@register_op("Cast")
class Cast(_Cast):
    """input converted to the element type `to` (an ONNX TensorProto code: 1 float32, 7 int64, 9 bool, 11 float64,
    16 bfloat16, 17 float8_e4m3fn …)"""

    symbol = "cast"
    local_gradients = ("1",)

    @staticmethod
    def forward(ctx, input, *, to: int, saturate: int = 1, round_mode: str = "up"):
        if to not in NUMPY_TYPES:
            raise CgError(f"cannot cast to ONNX type {to} (attribute 'to'); supported: {described(NUMPY_TYPES)}")
        return cast(input, NUMPY_TYPES[to], saturate, round_mode)


@register_op("CastLike")
class CastLike(_Cast):
    """input converted to the element type of target_type"""

    symbol = "cast like"
    local_gradients = ("1", None)

    @staticmethod
    def forward(ctx, input, target_type, *, saturate: int = 1, round_mode: str = "up"):
        return cast(input, target_type.dtype, saturate, round_mode)
