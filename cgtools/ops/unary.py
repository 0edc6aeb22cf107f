"""Elementwise mathematical functions of one tensor, y = f(x), each beside its derivative."""

from __future__ import annotations

import math

import numpy as np

from cgtools.ops.base import Operation, register_op


@register_op("Neg")
class Neg(Operation):
    """-x"""

    symbol = "−(·)"

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return (-grad,)


@register_op("Identity")
class Identity(Operation):
    """x, unchanged"""

    symbol = "id"

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        return (grad,)


@register_op("Abs")
class Abs(Operation):
    """|x|"""

    symbol = "|·|"

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad * np.sign(ctx[0]),)


@register_op("Reciprocal")
class Reciprocal(Operation):
    """1 / x"""

    symbol = "1/(·)"

    @staticmethod
    def forward(ctx, x):
        y = np.reciprocal(x)
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        y = ctx[0]
        return (grad * (-y * y),)


@register_op("Sqrt")
class Sqrt(Operation):
    """√x"""

    symbol = "√"

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return (grad / (2 * ctx[0]),)


@register_op("Exp")
class Exp(Operation):
    """e^x"""

    symbol = "exp"

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx[0],)


@register_op("Log")
class Log(Operation):
    """natural logarithm ln x"""

    symbol = "log"

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad / ctx[0],)


_math_erf = np.frompyfunc(math.erf, 1, 1)  # numpy has no erf; math.erf is exact to the last bit of a double


def erf(x):
    return np.asarray(_math_erf(x), x.dtype)


@register_op("Erf")
class Erf(Operation):
    """the error function erf(x) = 2/√π ∫₀ˣ e^(-t²) dt"""

    symbol = "erf"

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return erf(x)

    @staticmethod
    def backward(ctx, grad):
        x = ctx[0]
        return (grad * (2 / math.sqrt(math.pi) * np.exp(-x * x)),)


@register_op("Sin")
class Sin(Operation):
    """sine"""

    symbol = "sin"

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad * np.cos(ctx[0]),)


@register_op("Cos")
class Cos(Operation):
    """cosine"""

    symbol = "cos"

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad * -np.sin(ctx[0]),)


@register_op("Tanh")
class Tanh(Operation):
    """hyperbolic tangent"""

    symbol = "tanh"

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        y = ctx[0]
        return (grad - grad * y * y,)


# The piecewise-constant functions: their gradient is zero (as torch's), also at their jumps.

class _PiecewiseConstant(Operation):
    """Shared by Floor, Ceil, Round and Sign: `numpy_fn` forward, a zero gradient backward."""

    numpy_fn = staticmethod(np.floor)

    @classmethod
    def forward(cls, ctx, x):
        return cls.numpy_fn(x)

    @staticmethod
    def backward(ctx, grad):
        return (np.zeros_like(grad),)


@register_op("Floor")
class Floor(_PiecewiseConstant):
    """⌊x⌋, the largest integer ≤ x"""

    symbol = "⌊·⌋"
    numpy_fn = staticmethod(np.floor)


@register_op("Ceil")
class Ceil(_PiecewiseConstant):
    """⌈x⌉, the smallest integer ≥ x"""

    symbol = "⌈·⌉"
    numpy_fn = staticmethod(np.ceil)


@register_op("Round")
class Round(_PiecewiseConstant):
    """x rounded to the nearest integer, halves to even"""

    symbol = "round"
    numpy_fn = staticmethod(np.round)


@register_op("Sign")
class Sign(_PiecewiseConstant):
    """-1, 0 or 1 as x is negative, zero or positive"""

    symbol = "sign"
    numpy_fn = staticmethod(np.sign)
