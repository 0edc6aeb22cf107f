"""Activation functions of neural networks: the elementwise ones, and the softmaxes along an axis."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from cgtools.ops.base import Operation, register_op
from cgtools.ops.elementwise import clipped, masked
from cgtools.ops.unary import BLOCK, blockwise, erf


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)  # keeps exp from overflowing
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@register_op("Relu")
class Relu(Operation):
    """ReLU(x) = max(0, x)"""

    symbol = "ReLU"
    local_gradients = ("[{x} > 0]",)

    @staticmethod
    def forward(ctx, x):
        y = clipped(x, 0)  # -0 stays -0, as in torch and onnxruntime
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        return (masked(grad, ~(ctx[-1] <= 0)),)  # at NaN the gradient passes, as in torch


@register_op("LeakyRelu")
class LeakyRelu(Operation):
    """x where x > 0, else alpha·x"""

    symbol = "LeakyReLU"
    local_gradients = ("[{x} > 0] + {alpha}[{x} ≤ 0]",)

    @staticmethod
    def forward(ctx, x, *, alpha: float = 0.01):
        positive = x > 0
        ctx.save(positive, alpha)
        # the larger of x and alpha·x for alpha ≤ 1, else the smaller: np.where is slow on a random mask
        return (np.maximum if alpha <= 1 else np.minimum)(x, x * alpha)

    @staticmethod
    def backward(ctx, grad):
        positive, alpha = ctx
        if 0 <= alpha <= 1:  # the slope, 1 or alpha, as the mask clipped to [alpha, 1]
            slope = positive.astype(grad.dtype).clip(alpha, 1)
            slope *= grad
            return (slope,)
        return (np.where(positive, grad, grad * alpha),)


# 0.5 as a 0-d array of each float dtype: numpy combines one with an array in about half the time it takes
# to convert a Python float (which matters on small arrays), and the result keeps the array's dtype.


def sigmoid(x):
    """1/(1 + e^-x), as torch computes it: to float32's precision also where σ is tiny ((tanh(x/2) + 1)/2, faster
    to overflow-proof, loses every digit there to the sum); e^-x overflowing to inf (x < -88) rightly gives 0.
    Big tensors on cache-sized blocks, float16 in float32."""
    def logistic(block):
        np.negative(block, out=block)
        with np.errstate(over="ignore"):  # per block: the blocks may run on other threads
            np.exp(block, out=block)
        block += 1
        np.reciprocal(block, out=block)

    y = np.array(x, np.result_type(x, np.float32))  # a copy to work in (integers as floats)
    if y.size <= BLOCK:
        logistic(y)  # one block: no need for the blocks' bookkeeping
    else:
        y = blockwise(y.reshape(-1), logistic).reshape(x.shape)
    return y.astype(x.dtype, copy=False) if x.dtype.kind == "f" else y


@register_op("Sigmoid")
class Sigmoid(Operation):
    """σ(x) = 1 / (1 + e^-x)"""

    symbol = "σ"
    local_gradients = ("{Y}(1 − {Y})",)

    @staticmethod
    def forward(ctx, x):
        y = sigmoid(x)
        ctx.append(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        y = ctx[0]
        if grad.dtype != y.dtype or y.ndim == 0:  # (numpy gives scalars, not buffers, for 0-d arrays)
            return (grad * (y - y * y),)
        slope = y * y  # y − y², then times grad, in one buffer
        np.subtract(y, slope, out=slope)
        slope *= grad
        return (slope,)


@register_op("Softplus")
class Softplus(Operation):
    """ln(1 + e^x)"""

    symbol = "softplus"
    local_gradients = ("σ({x})",)

    @staticmethod
    def forward(ctx, x):
        ctx.append(x)
        return np.logaddexp(x.dtype.type(0), x)  # no overflow for large x

    @staticmethod
    def backward(ctx, grad):
        return (grad * (0.5 + 0.5 * np.tanh(0.5 * ctx[0])),)  # σ(x), computed without overflow


def normal_pdf(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


GELU_TANH_SCALE = math.sqrt(2 / math.pi)


@register_op("Gelu")
class Gelu(Operation):
    """x·Φ(x), Φ the standard normal CDF (approximate="tanh": its tanh approximation)"""

    symbol = "GELU"

    @staticmethod
    def forward(ctx, x, *, approximate: Literal["none", "tanh"] = "none"):
        if approximate == "tanh":
            t = np.tanh(GELU_TANH_SCALE * (x + 0.044715 * x ** 3))
            ctx.save(x, t, approximate)
            return 0.5 * x * (1 + t)
        cdf = 0.5 * (1 + erf(x * x.dtype.type(1 / math.sqrt(2))))
        ctx.save(x, cdf, approximate)
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        x, s, approximate = ctx
        if approximate == "tanh":
            dt = (1 - s * s) * GELU_TANH_SCALE * (1 + 3 * 0.044715 * x * x)
            return (grad * (0.5 * (1 + s) + 0.5 * x * dt),)
        return (grad * (s + x * normal_pdf(x)),)


@register_op("Elu")
class Elu(Operation):
    """x where x > 0, else alpha·(e^x - 1)"""

    symbol = "ELU"
    local_gradients = ("[{x} > 0] + ({Y} + {alpha})[{x} ≤ 0]",)

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.0):
        y = elu(x, alpha)
        ctx.save(x, y, alpha)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y, alpha = ctx
        return (np.where(x > 0, grad, grad * (y + alpha)),)  # d/dx alpha·(e^x - 1) = y + alpha


def elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))  # the minimum keeps expm1 from overflowing


@register_op("Selu")
class Selu(Operation):
    """gamma·x where x > 0, else gamma·alpha·(e^x - 1)"""

    symbol = "SELU"
    local_gradients = ("{gamma}[{x} > 0] + ({Y} + {gamma}·{alpha})[{x} ≤ 0]",)

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.6732631921768188, gamma: float = 1.0507010221481323):
        ctx.save(x, alpha, gamma)
        return gamma * elu(x, alpha)

    @staticmethod
    def backward(ctx, grad):
        x, alpha, gamma = ctx
        return (grad * gamma * np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))),)


@register_op("HardSigmoid")
class HardSigmoid(Operation):
    """max(0, min(1, alpha·x + beta))"""

    symbol = "hard σ"
    local_gradients = ("{alpha}[0 < {Y} < 1]",)

    @staticmethod
    def forward(ctx, x, *, alpha: float = 0.2, beta: float = 0.5):
        z = alpha * x
        z += beta
        ctx.save(z, alpha)
        return z.clip(0, 1).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        z, alpha = ctx
        inside = z > 0
        inside &= z < 1
        g = masked(grad, inside)
        g *= alpha
        return (g,)


@register_op("Softmax")
class Softmax(Operation):
    """e^x / Σ e^x along axis"""

    symbol = "softmax"
    local_gradients = ("{Y} ⊙ ({up} − Σ({up} ⊙ {Y}))",)

    @staticmethod
    def forward(ctx, x, *, axis: int = -1):
        # in place and without the methods' Python wrappers: on attention's small tensors the calls are the cost
        y = x - np.maximum.reduce(x, axis=axis, keepdims=True)
        np.exp(y, out=y)
        y /= np.add.reduce(y, axis=axis, keepdims=True)
        ctx.save(y, axis)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, axis = ctx
        g = grad * y
        g = grad - np.add.reduce(g, axis=axis, keepdims=True)
        g *= y
        return (g,)


@register_op("LogSoftmax")
class LogSoftmax(Operation):
    """log softmax(x) along axis"""

    symbol = "log softmax"
    local_gradients = ("{up} − exp({Y})·Σ{up}",)

    @staticmethod
    def forward(ctx, x, *, axis: int = -1):
        y = log_softmax(x, axis)
        ctx.save(y, axis)
        return y

    @staticmethod
    def backward(ctx, grad):
        y, axis = ctx
        return (grad - np.exp(y) * grad.sum(axis=axis, keepdims=True),)
