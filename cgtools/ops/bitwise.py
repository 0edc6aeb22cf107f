"""Bitwise ops on integers: And, Or, Xor, Not and shifts, elementwise with broadcasting; no gradients."""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.ops.base import Operation, register_op
from cgtools.ops.logic import _Elementwise


@register_op("BitwiseAnd")
class BitwiseAnd(_Elementwise):
    """a & b, bit by bit"""

    symbol = "&"
    fn = staticmethod(np.bitwise_and)


@register_op("BitwiseOr")
class BitwiseOr(_Elementwise):
    """a | b, bit by bit"""

    symbol = "|"
    fn = staticmethod(np.bitwise_or)


@register_op("BitwiseXor")
class BitwiseXor(_Elementwise):
    """a ^ b, bit by bit"""

    symbol = "^"
    fn = staticmethod(np.bitwise_xor)


@register_op("BitwiseNot")
class BitwiseNot(Operation):
    """~x, every bit flipped"""

    symbol = "~"

    @staticmethod
    def forward(ctx, x):
        return np.invert(x)


@register_op("BitShift")
class BitShift(Operation):
    """x shifted by y bits, left or right (a shift of at least the width, or negative, gives 0, or −1 for a
    negative x shifted right)"""

    symbol = "shift"

    @staticmethod
    def forward(ctx, x, y, *, direction: Literal["LEFT", "RIGHT"]):
        x, y = np.broadcast_arrays(x, y)
        valid = (y >= 0) & (y < np.iinfo(x.dtype).bits)
        shift = np.where(valid, y, 0).astype(x.dtype)  # numpy leaves out-of-range shifts undefined
        if direction == "RIGHT":
            return np.where(valid, np.right_shift(x, shift), np.where(x < 0, -1, 0).astype(x.dtype))
        unsigned = np.dtype(f"u{x.dtype.itemsize}")  # a signed left shift wraps as the unsigned one does
        shifted = np.left_shift(x.view(unsigned) if x.dtype.kind == "i" else x, shift.astype(unsigned))
        return np.where(valid, shifted.view(x.dtype), 0).astype(x.dtype)
