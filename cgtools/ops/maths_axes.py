"""Maths along an axis: running products (CumProd), Hardmax, the normalizations by norm (LpNormalization) and by
variance (MeanVarianceNormalization), and ReduceLogSum."""

from __future__ import annotations

import numpy as np

from cgtools.ops.base import Operation, register_op
from cgtools.ops.reduce import _Reduce, running_axis


def cumprod(x, axis, exclusive, reverse):
    if reverse:
        x = np.flip(x, axis)
    y = np.cumprod(x, axis=axis, dtype=x.dtype)
    if exclusive:  # each element leaves itself out: the products move one along, a one comes first
        head = (slice(None),) * axis
        y = np.concatenate([np.ones_like(y[head + (slice(0, 1),)]), y[head + (slice(0, -1),)]], axis)
    return np.flip(y, axis) if reverse else y


def cumprod_grad(x, grad, exclusive):
    """The gradient of cumprod along axis 0, exact where x has zeros (unlike dividing y by x): element i's is
    the product of the elements before it times S_i = Σ_{j ≥ i} grad_j · Π_{i < k ≤ j} x_k, a recurrence run
    from the end."""
    before = cumprod(x, 0, True, False)
    out = np.empty_like(grad)
    s = np.zeros_like(grad[0])
    for i in reversed(range(len(x))):
        if exclusive:  # y_j leaves x_j out: S_i runs over j > i
            out[i] = before[i] * s
            s = grad[i] + x[i] * s
        else:
            s = grad[i] + s
            out[i] = before[i] * s
            s = x[i] * s
    return out


@register_op("CumProd")
class CumProd(Operation):
    """running products of x along an axis (exclusive: each leaves itself out; reverse: from the end)"""

    symbol = "cumprod"

    @staticmethod
    def forward(ctx, x, axis, *, exclusive: int = 0, reverse: int = 0):
        axis = running_axis(x, axis)
        ctx.save(x, axis, exclusive, reverse)
        return cumprod(x, axis, exclusive, reverse)

    @staticmethod
    def backward(ctx, grad):
        x, axis, exclusive, reverse = ctx
        if x.size == 0:
            return np.zeros_like(grad), None
        moved = [np.moveaxis(np.flip(a, axis) if reverse else a, axis, 0) for a in (x, grad)]
        g = np.moveaxis(cumprod_grad(*moved, exclusive), 0, axis)
        return (np.flip(g, axis) if reverse else g), None


@register_op("Hardmax")
class Hardmax(Operation):
    """1 where x is largest along an axis (the first of ties), else 0"""

    symbol = "hardmax"

    @staticmethod
    def forward(ctx, x, *, axis: int = -1):
        first = np.expand_dims(np.argmax(x, axis=axis), axis)
        y = np.zeros_like(x)
        np.put_along_axis(y, first, 1, axis)
        return y

    @staticmethod
    def backward(ctx, grad):
        return (np.zeros_like(grad),)  # piecewise constant: zero, as torch's for one_hot(argmax)


@register_op("LpNormalization")
class LpNormalization(Operation):
    """x / ‖x‖ₚ along an axis (p = 1 or 2; a zero norm gives 0)"""

    symbol = "x/‖x‖"

    @staticmethod
    def forward(ctx, x, *, axis: int = -1, p: int = 2):
        norm = (np.abs(x).sum(axis, keepdims=True) if p == 1 else np.sqrt((x * x).sum(axis, keepdims=True)))
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(norm == 0, 0, x / norm).astype(x.dtype, copy=False)
            ctx.save(x, norm, y, axis, p)
            return y

    @staticmethod
    def backward(ctx, grad):
        x, norm, y, axis, p = ctx
        # d(x/n) = dx/n − x·dn/n², with dn/dx = sign(x) for p = 1 and x/n for p = 2
        dn = np.sign(x) if p == 1 else y
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (grad - dn * (grad * y).sum(axis, keepdims=True)) / norm
        return (np.where(norm == 0, 0, g),)


@register_op("MeanVarianceNormalization")
class MeanVarianceNormalization(Operation):
    """(x − mean) / (standard deviation + 1e-9) over axes (by default all but the channels)"""

    symbol = "MVN"

    @staticmethod
    def forward(ctx, x, *, axes: list[int] = [0, 2, 3]):  # noqa: B006 - never mutated; ONNX's default
        axes = tuple(a % x.ndim for a in axes)
        d = x - x.mean(axes, keepdims=True)
        std = np.sqrt((d * d).mean(axes, keepdims=True))
        scale = (std + 1e-9).astype(x.dtype, copy=False)  # ONNX's function body adds 1e-9
        ctx.save(d, std, scale, axes)
        return d / scale

    @staticmethod
    def backward(ctx, grad):
        d, std, scale, axes = ctx
        g = (grad - grad.mean(axes, keepdims=True)) / scale
        with np.errstate(divide="ignore", invalid="ignore"):
            through_std = np.where(std == 0, 0, (grad * d).mean(axes, keepdims=True) / (scale * scale * std))
        return (g - d * through_std,)


@register_op("ReduceLogSum")
class ReduceLogSum(_Reduce):
    """ln Σ x over axes"""

    symbol = "log Σ"
    local_gradients = ("exp(−{Y})·expand({up})", None)

    @staticmethod
    def numpy_reduce(x, axis, keepdims):
        with np.errstate(divide="ignore"):  # the sum of nothing is 0: −∞
            return np.log(np.sum(x, axis=axis, keepdims=keepdims))

    @staticmethod
    def local_grad(data, y, grad, dims):
        return np.broadcast_to(grad / np.exp(y), data.shape)
