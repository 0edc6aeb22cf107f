"""BitCast: a tensor's bytes read as another element type of the same width (float32 ↔ int32, bool → uint8 …);
no gradient."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, described
from cgtools.ops.base import NoGradient, register_op

# Types narrower than a byte, which numpy holds one to a byte: their bits are not a byte's
SUB_BYTE = frozenset({"int2", "uint2", "int4", "uint4", "float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn"})


@register_op("BitCast")
class BitCast(NoGradient):  # the same bits read another way: no smooth map between the two values
    """input's bits read as the element type `to` (an ONNX type code of the same width); no gradient"""

    symbol = "bitcast"
    keeps_dtypes = True  # reinterprets the input's own bytes: never run in float32 (ops.base.bound_forward)

    @staticmethod
    def forward(ctx, input, *, to: int):  # noqa: A002 - ONNX's name
        if to not in NUMPY_TYPES:
            raise CgError(f"cannot bitcast to ONNX type {to} (attribute 'to'); supported: {described(NUMPY_TYPES)}")
        dtype = np.dtype(NUMPY_TYPES[to])
        if dtype.itemsize != input.dtype.itemsize or SUB_BYTE & {dtype.name, input.dtype.name}:
            raise CgError(f"BitCast needs types of one width: {input.dtype} ({8 * input.dtype.itemsize} bits) "
                          f"to {dtype} ({8 * dtype.itemsize} bits)", where="attrs.to")
        return (input if input.flags.c_contiguous else input.copy()).view(dtype)
