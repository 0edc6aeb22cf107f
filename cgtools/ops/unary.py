"""Elementwise mathematical functions of one tensor, y = f(x), each beside its derivative."""

from __future__ import annotations

import math

import numpy as np

from cgtools.ops.base import Operation, register_op
from cgtools.threads import parallel_map


@register_op("Neg")
class Neg(Operation):
    """-x"""

    symbol = "−(·)"
    local_gradients = ("−1",)

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
    local_gradients = ("1",)

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
    local_gradients = ("sign({x})",)

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
    local_gradients = ("−{Y}²",)

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
    local_gradients = ("1/(2{Y})",)

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
    local_gradients = ("{Y}",)

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
    local_gradients = ("1/{x}",)

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad / ctx[0],)


_math_erf = np.frompyfunc(math.erf, 1, 1)  # exact to the last bit of a double, but one Python call an element

# erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4] (beyond, erf rounds to ±1 in float32): a rational fit to math.erf with a
# relative error below 3e-9, so that float32 arithmetic (6 ulp at most, 1 on average) decides the accuracy
ERF_P = (1.12837917e+00, 1.85279978e-01, 5.43540040e-02, 3.85647757e-03, 3.80859086e-04, 4.71511327e-06,
         -1.33602531e-08)
ERF_Q = (1.0, 4.97533503e-01, 1.14014008e-01, 1.54798426e-02, 1.31069111e-03, 6.34035192e-05)


BLOCK = 1 << 15  # elements computed at a time: a chain of passes over a block that stays in cache


def blockwise(flat, compute):
    """compute(block) on each cache-sized block of a flat array, in place: a chain of numpy passes then reads
    and writes cache, not memory; the blocks on as many threads as runs may use."""
    parallel_map(lambda start: compute(flat[start:start + BLOCK]), range(0, flat.size, BLOCK))
    return flat


def erf(x):
    """numpy has no erf: float64 is math.erf's, exact; narrower floats are the rational fit's, in float32."""
    if x.dtype == np.float64 or x.dtype.kind != "f":
        return np.asarray(_math_erf(x), x.dtype)

    def rational(block):
        z = block * block
        block *= horner(ERF_P, z)
        block /= horner(ERF_Q, z)
        block.clip(-1.0, 1.0, out=block)  # rounding must not pass ±1

    flat = x.astype(np.float32).reshape(-1)  # a copy, worked on in place
    flat.clip(-4.0, 4.0, out=flat)
    if flat.size <= BLOCK:
        rational(flat)  # one block: no need for the blocks' bookkeeping
    else:
        blockwise(flat, rational)
    return flat.reshape(x.shape).astype(x.dtype, copy=False)


def horner(coefficients, z):
    """The polynomial Σ cᵢ zⁱ at z (the coefficients Python floats: numpy adds those fastest)."""
    total = z * coefficients[-1]
    total += coefficients[-2]
    for c in coefficients[-3::-1]:
        total *= z
        total += c
    return total


@register_op("Erf")
class Erf(Operation):
    """the error function erf(x) = 2/√π ∫₀ˣ e^(-t²) dt"""

    symbol = "erf"
    local_gradients = ("2exp(−{x}²)/√π",)

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
    local_gradients = ("cos({x})",)

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
    local_gradients = ("−sin({x})",)

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
    local_gradients = ("1 − {Y}²",)

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
    local_gradients = ("0",)
    numpy_fn = staticmethod(np.floor)


@register_op("Ceil")
class Ceil(_PiecewiseConstant):
    """⌈x⌉, the smallest integer ≥ x"""

    symbol = "⌈·⌉"
    local_gradients = ("0",)
    numpy_fn = staticmethod(np.ceil)


@register_op("Round")
class Round(_PiecewiseConstant):
    """x rounded to the nearest integer, halves to even"""

    symbol = "round"
    local_gradients = ("0",)
    numpy_fn = staticmethod(np.round)


@register_op("Sign")
class Sign(_PiecewiseConstant):
    """-1, 0 or 1 as x is negative, zero or positive"""

    symbol = "sign"
    local_gradients = ("0",)
    numpy_fn = staticmethod(np.sign)
