"""Normalisation layers (batch, layer, instance) and dropout, on N×C×… tensors (ONNX semantics)."""

from __future__ import annotations

import math

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import FLOAT_TYPES, described
from cgtools.ops.base import Lazy, Operation, register_op
from cgtools.ops.conv import all_but_channels, work_dtype


def channel_shape(x):
    """The shape that broadcasts a per-channel vector against N×C×…: C×1×…×1."""
    if x.ndim < 2:
        raise CgError(f"expected an input of shape N×C×…, found shape {list(x.shape)}")
    return (-1,) + (1,) * (x.ndim - 2)


@register_op("BatchNormalization")
class BatchNormalization(Operation):
    """scale·(X − mean)/√(var + ε) + B per channel: the given mean and var, or the batch's (training_mode=1)

    In training mode the optional outputs running_mean and running_var are momentum·input + (1 − momentum)·batch
    statistic (the batch's biased variance, as in ONNX)."""

    symbol = "batch norm"
    outputs = ("Y", "running_mean", "running_var")

    @staticmethod
    def forward(ctx, X, scale, B, input_mean, input_var, *, epsilon: float = 1e-5, momentum: float = 0.9,
                training_mode: int = 0):
        shape = channel_shape(X)
        for name, v in (("scale", scale), ("B", B), ("input_mean", input_mean), ("input_var", input_var)):
            if v.shape != X.shape[1:2]:
                raise CgError(f"expected {name} of shape [{X.shape[1]}] (one value per channel of X, of shape "
                              f"{list(X.shape)}), found {list(v.shape)}")
        dtype = work_dtype(X, scale, B, input_mean, input_var)
        if training_mode:
            axes = all_but_channels(X)
            x = X.astype(dtype, copy=False)
            x_hat, mean, inv_std = standardize(x, axes, epsilon)
            y = x_hat * scale.reshape(shape)
            y += B.reshape(shape)
            running_mean = input_mean * momentum + mean.reshape(-1) * (1 - momentum)
            running_var = input_var * momentum + x.var(axis=axes) * (1 - momentum)  # ONNX: the biased variance
            ctx.save(True, x_hat, inv_std, scale, momentum)
            return (y.astype(X.dtype, copy=False), running_mean.astype(input_mean.dtype, copy=False),
                    running_var.astype(input_var.dtype, copy=False))
        inv = 1 / np.sqrt(input_var.astype(dtype) + epsilon)
        a = scale * inv  # y = a·x + (B − a·mean): two passes over X
        y = X * a.reshape(shape)
        y += (B - a * input_mean).reshape(shape)
        ctx.save(False, X, scale, input_mean, inv, a)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad, grad_running_mean=None, grad_running_var=None):
        if ctx[0]:  # training_mode
            return BatchNormalization.training_backward(ctx, grad, grad_running_mean, grad_running_var)
        _, X, scale, mean, inv, a = ctx
        shape, axes, needs = channel_shape(X), all_but_channels(X), ctx.needs_grad
        gx = grad * a.reshape(shape) if needs[0] else None
        gb = grad.sum(axis=axes)
        g_scale = g_var = None
        if needs[1] or needs[4]:
            g_centred = (grad * (X - mean.reshape(shape))).sum(axis=axes)  # Σ grad·(x − mean) per channel
            g_scale = g_centred * inv
            g_var = g_centred * scale * -0.5 * inv ** 3
        return gx, g_scale, gb, -gb * a, g_var

    @staticmethod
    def training_backward(ctx, grad, grad_running_mean, grad_running_var):
        _, x_hat, inv_std, scale, momentum = ctx
        shape, axes = channel_shape(x_hat), all_but_channels(x_hat)
        count = math.prod(x_hat.shape[a] for a in axes)
        gx, g_scale, gb, g_mean, g_var = np.zeros_like(x_hat), None, None, None, None
        if grad is not None:
            gx = standardize_backward(grad * scale.reshape(shape), x_hat, inv_std, axes)
            g_scale, gb = (grad * x_hat).sum(axis=axes), grad.sum(axis=axes)
        if grad_running_mean is not None:  # running_mean = momentum·input_mean + (1 − momentum)·mean(x)
            g_mean = momentum * grad_running_mean
            gx += ((1 - momentum) / count * grad_running_mean).reshape(shape)
        if grad_running_var is not None:  # running_var = momentum·input_var + (1 − momentum)·mean((x − x̄)²)
            g_var = momentum * grad_running_var
            gx += (2 * (1 - momentum) / count * grad_running_var).reshape(shape) * x_hat / inv_std
        return gx, g_scale, gb, g_mean, g_var


def standardize(x, axes, epsilon):
    """(x − mean)/√(var + ε) over axes, with the mean and 1/√(var + ε) (axes kept, as length 1). The means
    are np.mean's own sum and division, without its Python wrapper (a layer norm runs on small tensors too)."""
    count = math.prod(x.shape[a] for a in axes)
    mean = np.add.reduce(x, axis=axes, keepdims=True)
    mean /= count  # in place, as every step here: on small tensors numpy's calls cost more than the arithmetic
    centred = x - mean
    variance = np.add.reduce(np.square(centred), axis=axes, keepdims=True)
    variance /= count
    variance += epsilon
    inv_std = np.reciprocal(np.sqrt(variance, out=variance), out=variance)
    centred *= inv_std
    return centred, mean, inv_std


def standardize_backward(g, x_hat, inv_std, axes):
    """The gradient through standardize, given g = ∂L/∂x̂: the mean and the deviation depend on every x."""
    return inv_std * (g - mean_over(g, axes) - x_hat * mean_over(g * x_hat, axes))


def mean_over(x, axes):
    """x.mean(axes, keepdims=True) without np.mean's Python wrapper, which costs more than the sum on small x."""
    mean = np.add.reduce(x, axis=axes, keepdims=True)
    mean /= math.prod(x.shape[a] for a in axes)
    return mean


@register_op("LayerNormalization")
class LayerNormalization(Operation):
    """(X − mean)/√(var + ε)·Scale + B over the axes from `axis` on (outputs Y, Mean, InvStdDev)"""

    symbol = "layer norm"
    outputs = ("Y", "Mean", "InvStdDev")

    @staticmethod
    def forward(ctx, X, Scale, B=None, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1):
        if not -X.ndim <= axis < X.ndim:
            raise CgError(f"expected axis in [{-X.ndim}, {X.ndim - 1}] for an input of shape {list(X.shape)}, "
                          f"found {axis}")
        if stash_type not in FLOAT_TYPES:
            raise CgError(f"expected stash_type to be one of {described(FLOAT_TYPES)}, found {stash_type}")
        axes = tuple(range(axis % X.ndim, X.ndim))
        # Mean and InvStdDev are computed in stash_type, but never in less precision than X has.
        x_hat, mean, inv_std = standardize(X.astype(np.result_type(X, FLOAT_TYPES[stash_type]), copy=False), axes,
                                           epsilon)
        y = x_hat * Scale
        if B is not None:
            y += B
        ctx.save(x_hat, inv_std, Scale, axes)
        return y.astype(X.dtype, copy=False), mean, inv_std

    @staticmethod
    def backward(ctx, grad, grad_mean=None, grad_inv_std=None):
        x_hat, inv_std, scale, axes = ctx
        gx, g_scale, gb = None, None, None
        if grad is not None:  # the engine sums g_scale and gb down to Scale's and B's shapes
            gx = standardize_backward(grad * scale, x_hat, inv_std, axes)
            g_scale, gb = grad * x_hat, grad
        else:
            gx = np.zeros_like(x_hat)
        count = math.prod(x_hat.shape[a] for a in axes)
        if grad_mean is not None:  # ∂mean/∂x = 1/count
            gx += grad_mean / count
        if grad_inv_std is not None:  # ∂(1/σ)/∂x = −x̂/(σ²·count)
            gx -= grad_inv_std * inv_std * inv_std / count * x_hat
        return gx, g_scale, gb


@register_op("InstanceNormalization")
class InstanceNormalization(Operation):
    """scale·(x − mean)/√(var + ε) + B per channel, mean and var over each sample's spatial axes"""

    symbol = "instance norm"

    @staticmethod
    def forward(ctx, input, scale, B, *, epsilon: float = 1e-5):
        shape, axes = channel_shape(input), tuple(range(2, input.ndim))
        x_hat, _, inv_std = standardize(input.astype(work_dtype(input)), axes, epsilon)
        y = x_hat * scale.reshape(shape)
        y += B.reshape(shape)
        ctx.save(x_hat, inv_std, scale.reshape(shape), axes)
        return y.astype(input.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, scale, axes = ctx
        over = (0, *axes)
        gx = standardize_backward(grad * scale, x_hat, inv_std, axes) if ctx.needs_grad[0] else None
        return gx, (grad * x_hat).sum(axis=over), grad.sum(axis=over)


@register_op("Dropout")
class Dropout(Operation):
    """data unchanged in inference; in training, random elements zeroed and the rest scaled by 1/(1 − ratio)"""

    symbol = "dropout"
    outputs = ("output", "mask")

    attribute_forms = {"ratio": ("ratio", "float")}  # an input since opset 12

    @staticmethod
    def forward(ctx, data, ratio=None, training_mode=None, *, seed: int = None):
        # the ratio only matters in training
        drop = 0.5 if ratio is None else float(np.ravel(ratio)[0])
        if training_mode is None or not np.ravel(training_mode).any() or drop == 0:
            ctx.append(None)
            return data, Lazy(lambda: np.ones(data.shape, bool))
        # as ONNX draws it: keep where uniform(0, 1) >= ratio, from a generator seeded by `seed` (if given)
        keep = np.random.RandomState(seed).uniform(0, 1.0, data.shape) >= drop
        scale = np.asarray(1.0 / (1.0 - drop), data.dtype)
        ctx.append(keep * scale)
        return (data * keep * scale).astype(data.dtype, copy=False), keep

    @staticmethod
    def backward(ctx, grad, grad_mask=None):
        kept = ctx[0]
        return (grad if kept is None else grad * kept), None, None
