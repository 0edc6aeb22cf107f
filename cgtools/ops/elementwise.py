"""Elementwise arithmetic of several inputs, with numpy broadcasting (the engine unbroadcasts gradients)."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op


@register_op("Add")
class Add(Operation):
    """a + b"""

    symbol = "+"
    infix = True
    local_gradients = ("1", "1")

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


@register_op("Sub")
class Sub(Operation):
    """a - b"""

    symbol = "−"
    infix = True
    local_gradients = ("1", "−1")

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


@register_op("Mul")
class Mul(Operation):
    """a * b"""

    symbol = "×"
    infix = True
    local_gradients = ("{b}", "{a}")

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx
        return grad * b, grad * a


@register_op("Div")
class Div(Operation):
    """a / b"""

    symbol = "÷"
    infix = True
    local_gradients = ("1/{b}", "−{a}/{b}²")

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":  # ONNX: integers divide truncating toward zero
            return (np.sign(a) * np.sign(b) * (np.abs(a) // np.abs(b))).astype(np.result_type(a, b))
        y = a / b
        ctx.save(b, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        b, y = ctx
        ga = grad / b
        return ga, -ga * y


@register_op("Pow")
class Pow(Operation):
    """x ** exponent"""

    symbol = "pow"
    local_gradients = ("{exponent}·{x}^({exponent} − 1)", "{Y}·ln {x}")

    @classmethod
    def local_gradient(cls, slot, terms, constants):
        """By a constant exponent n: n·x^(n−1) written out, 2x for n = 2, 1 for n = 1."""
        n = constants.get("exponent")
        if slot != 0 or n is None:
            return super().local_gradient(slot, terms, constants)
        if n in (0, 1):
            return str(int(n))
        power = "" if n == 2 else f"^{n - 1:g}" if float(n).is_integer() else f"^({n - 1:g})"
        coefficient = "−" if n == -1 else f"{n:g}"
        times = "" if len(terms["x"]) == 1 or n == -1 else "·"  # 2d, but 2·hidden
        return (coefficient + times + terms["x"] + power).replace("-", "−")

    @staticmethod
    def forward(ctx, x, exponent):
        y = np.power(x, exponent).astype(x.dtype, copy=False)
        ctx.save(x, exponent, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, p, y = ctx
        gx = gp = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs_grad[0]:  # p x^(p-1), taken as 0 where p = 0 (as PyTorch does)
                gx = np.where(p == 0, 0, grad * p * np.power(x, p - 1)).astype(x.dtype, copy=False)
            if ctx.needs_grad[1]:  # x^p ln x, taken as 0 where x = 0 and p >= 0 (as PyTorch does)
                gp = np.where((x == 0) & (p >= 0), 0, grad * y * np.log(x)).astype(y.dtype, copy=False)
        return gx, gp


@register_op("Where")
class Where(Operation):
    """x where condition holds, else y"""

    symbol = "where"
    local_gradients = (None, "[{condition}]", "[¬{condition}]")

    @staticmethod
    def forward(ctx, condition, x, y):
        ctx.append(condition)
        return np.where(condition, x, y)

    @staticmethod
    def backward(ctx, grad):
        cond = ctx[0]
        zero = np.zeros((), grad.dtype)
        return None, np.where(cond, grad, zero), np.where(cond, zero, grad)


class _Extremum(Operation):
    """Shared by Max and Min: the gradient goes to the inputs that hold the extremum, split evenly on ties."""

    pick = staticmethod(np.maximum)

    @classmethod
    def forward(cls, ctx, *inputs):
        y = inputs[0]
        for x in inputs[1:]:
            y = cls.pick(y, x)
        ctx.save(y, *inputs)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, *inputs = ctx
        hits = [x == y for x in inputs]
        ties = sum(h.astype(grad.dtype) for h in hits)
        return [grad * h / ties for h in hits]


@register_op("Max")
class Max(_Extremum):
    """elementwise maximum of the inputs"""

    symbol = "max"
    local_gradients = ("[{inputs} = {Y}]",)

    pick = staticmethod(np.maximum)


@register_op("Min")
class Min(_Extremum):
    """elementwise minimum of the inputs"""

    symbol = "min"
    local_gradients = ("[{inputs} = {Y}]",)

    pick = staticmethod(np.minimum)


@register_op("Clip")
class Clip(Operation):
    """x limited to [min, max] (either bound optional)"""

    symbol = "clip"
    local_gradients = ("[{min} ≤ {x} ≤ {max}]", "[{x} < {min}]", "[{x} > {max}]")

    @classmethod
    def local_gradient(cls, slot, terms, constants):
        """x's with the bounds given: [x ≥ min] without max, [x ≤ max] without min."""
        if slot == 0 and not terms["max"]:
            return f"[{terms['x']} ≥ {terms['min']}]" if terms["min"] else "1"
        if slot == 0 and not terms["min"]:
            return f"[{terms['x']} ≤ {terms['max']}]"
        return super().local_gradient(slot, terms, constants)

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        min, max = scalar_bound(min, "min"), scalar_bound(max, "max")
        ctx.save(x, min, max)
        return np.asarray(clipped(x, min, max)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, lo, hi = ctx
        if lo is None and hi is None:
            return grad, None, None
        inside = x <= hi if lo is None else x >= lo
        if lo is not None and hi is not None:
            inside &= x <= hi
        # A bound given as a float input (not a constant) gets the gradient of the elements it clipped, as
        # torch.clamp gives it; when min >= max, max decides y, so (as in torch) min gets none.
        glo = ghi = None
        if lo is not None and ctx.needs_grad[1]:
            glo = grad * ((x < lo) if hi is None else (x < lo) & (lo < hi))
        if hi is not None and ctx.needs_grad[2]:
            ghi = grad * ((x > hi) if lo is None else (x > hi) | (hi < lo))
        return masked(grad, inside), glo, ghi


def clipped(x, lo=None, hi=None):
    """x limited to [lo, hi] (None: unbounded) in one clip, twice as fast as np.maximum alone on float32 and
    as ONNX and torch have it: NaN stays NaN, -0 stays -0, and hi wins where lo > hi. The method, not np.clip,
    whose Python wrapper costs more than the work on small tensors."""
    if x.dtype.kind == "f":  # an infinite bound, as clip is slow with None
        lo = -np.inf if lo is None else lo
        hi = np.inf if hi is None else hi
        return x.clip(lo, hi)
    y = x if lo is None else np.maximum(x, lo)
    return y if hi is None else np.minimum(y, hi)


def masked(grad, mask):
    """grad where mask holds, else 0 (NaN stays NaN, as grad · mask): the mask made floats first, since numpy
    multiplies by a bool array at half the speed."""
    out = mask.astype(grad.dtype)
    out *= grad
    return out


def scalar_bound(bound, name):
    """A bound of Clip as the scalar ONNX says it is (a one-element tensor is taken as its element)."""
    if bound is None or bound.ndim == 0:
        return bound
    if bound.size != 1:
        raise CgError(f"expected {name} to be a scalar (the same bound for every element), found shape "
                      f"{list(bound.shape)}")
    return bound.reshape(())


@register_op("Sum")
class Sum(Operation):
    """the elementwise sum of the inputs"""

    symbol = "sum"
    local_gradients = ("1",)

    @staticmethod
    def forward(ctx, *inputs):
        ctx.append(len(inputs))
        return sum(inputs[1:], inputs[0])

    @staticmethod
    def backward(ctx, grad):
        return [grad] * ctx[0]


@register_op("Mean")
class Mean(Operation):
    """the elementwise mean of the inputs"""

    symbol = "mean"
    local_gradients = ("1/{n}",)

    @staticmethod
    def forward(ctx, *inputs):
        ctx.append(len(inputs))
        return (sum(inputs[1:], inputs[0]) / len(inputs)).astype(inputs[0].dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return [grad / ctx[0]] * ctx[0]
