"""Activations and normalisers of neural networks."""

from __future__ import annotations

import numpy as np

from cgtools.ops.base import Operation, register_op


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)  # keeps exp from overflowing
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@register_op("Relu")
class Relu(Operation):
    """ReLU(x) = max(0, x)"""

    symbol = "ReLU"

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return (grad * (ctx[-1] > 0),)


@register_op("LeakyRelu")
class LeakyRelu(Operation):
    """x where x > 0, else alpha·x"""

    symbol = "LeakyReLU"

    @staticmethod
    def forward(ctx, x, *, alpha: float = 0.01):
        positive = x > 0
        ctx.save(positive, alpha)
        return np.where(positive, x, x * alpha)

    @staticmethod
    def backward(ctx, grad):
        positive, alpha = ctx
        return (np.where(positive, grad, grad * alpha),)


# 0.5 as a 0-d array of each float dtype: numpy combines one with an array in about half the time it takes
# to convert a Python float (which matters on small arrays), and the result keeps the array's dtype.
HALVES = {np.dtype(t): np.array(0.5, t) for t in (np.float16, np.float32, np.float64)}


@register_op("Sigmoid")
class Sigmoid(Operation):
    """σ(x) = 1 / (1 + e^-x)"""

    symbol = "σ"

    @staticmethod
    def forward(ctx, x):
        half = HALVES.get(x.dtype, 0.5)
        y = np.tanh(x * half)  # (tanh(x/2) + 1) / 2: no overflow for large |x|, unlike 1 / (1 + exp(-x))
        y *= half
        y += half
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        y = ctx[0]
        return (grad * (y - y * y),)


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


@register_op("Softmax")
class Softmax(Operation):
    """e^x / Σ e^x along axis"""

    symbol = "softmax"

    @staticmethod
    def forward(ctx, x, *, axis: int = -1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.save(y, axis)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, axis = ctx
        return (y * (grad - (grad * y).sum(axis=axis, keepdims=True)),)


@register_op("LogSoftmax")
class LogSoftmax(Operation):
    """log softmax(x) along axis"""

    symbol = "log softmax"

    @staticmethod
    def forward(ctx, x, *, axis: int = -1):
        y = log_softmax(x, axis)
        ctx.save(y, axis)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, axis = ctx
        return (grad - np.exp(y) * grad.sum(axis=axis, keepdims=True),)
