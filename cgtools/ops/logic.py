"""Comparisons and logic: elementwise, bool outputs, no gradients."""

from __future__ import annotations

import numpy as np

from cgtools.ops.base import Operation, register_op


class _Elementwise(Operation):
    """Shared by the comparisons and the binary logic ops: one numpy function, broadcasting, no gradient."""

    infix = True
    fn = staticmethod(np.equal)

    @classmethod
    def forward(cls, ctx, a, b):
        return np.asarray(cls.fn(a, b))


@register_op("Equal")
class Equal(_Elementwise):
    """a == b, elementwise"""

    symbol = "="
    fn = staticmethod(np.equal)


@register_op("Greater")
class Greater(_Elementwise):
    """a > b, elementwise"""

    symbol = ">"
    fn = staticmethod(np.greater)


@register_op("Less")
class Less(_Elementwise):
    """a < b, elementwise"""

    symbol = "<"
    fn = staticmethod(np.less)


@register_op("GreaterOrEqual")
class GreaterOrEqual(_Elementwise):
    """a >= b, elementwise"""

    symbol = "≥"
    fn = staticmethod(np.greater_equal)


@register_op("LessOrEqual")
class LessOrEqual(_Elementwise):
    """a <= b, elementwise"""

    symbol = "≤"
    fn = staticmethod(np.less_equal)


@register_op("And")
class And(_Elementwise):
    """a and b, elementwise on bools"""

    symbol = "∧"
    fn = staticmethod(np.logical_and)


@register_op("Or")
class Or(_Elementwise):
    """a or b, elementwise on bools"""

    symbol = "∨"
    fn = staticmethod(np.logical_or)


@register_op("Xor")
class Xor(_Elementwise):
    """a xor b (exactly one is true), elementwise on bools"""

    symbol = "⊕"
    fn = staticmethod(np.logical_xor)


@register_op("Not")
class Not(Operation):
    """not x, elementwise on bools"""

    symbol = "¬"

    @staticmethod
    def forward(ctx, x):
        return np.logical_not(x)


@register_op("IsNaN")
class IsNaN(Operation):
    """whether each element is NaN"""

    symbol = "isnan"

    @staticmethod
    def forward(ctx, x):
        return np.isnan(x)


@register_op("IsInf")
class IsInf(Operation):
    """whether each element is infinite (+∞ and -∞ each counted unless turned off)"""

    symbol = "isinf"

    @staticmethod
    def forward(ctx, x, *, detect_negative: int = 1, detect_positive: int = 1):
        return np.asarray((np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative)))
