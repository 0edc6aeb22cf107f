"""Normalisations over channel groups and feature axes: GroupNormalization, RMSNormalization, LRN (ONNX semantics)."""

from __future__ import annotations

import math

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import FLOAT_TYPES, described
from cgtools.ops.base import Operation, register_op
from cgtools.ops.conv import work_dtype
from cgtools.ops.norm import channel_shape, standardize, standardize_backward


def stash_dtype(X, stash_type: int):
    """The dtype statistics are computed in: stash_type's, but never less precise than X's."""
    if stash_type not in FLOAT_TYPES:
        raise CgError(f"expected stash_type to be one of {described(FLOAT_TYPES)}, found {stash_type}")
    return np.result_type(X, FLOAT_TYPES[stash_type])


@register_op("RMSNormalization")
class RMSNormalization(Operation):
    """X/√(mean(X²) + ε)·scale, the mean over the axes from `axis` on (opset 23)"""

    symbol = "RMS norm"

    @staticmethod
    def forward(ctx, X, scale, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1):
        if not -X.ndim <= axis < X.ndim:
            raise CgError(f"expected axis in [{-X.ndim}, {X.ndim - 1}] for an input of shape {list(X.shape)}, "
                          f"found {axis}")
        axes = tuple(range(axis % X.ndim, X.ndim))
        x = X.astype(stash_dtype(X, stash_type))
        inv_rms = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + epsilon)
        x_hat = x * inv_rms
        ctx.save(x_hat, inv_rms, scale, axes)
        return (x_hat * scale).astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_rms, scale, axes = ctx
        g = grad * scale  # ∂L/∂x̂; x̂ = x·r with ∂r/∂x = −r³·x/count, so ∂L/∂x = r·(g − x̂·mean(g·x̂))
        gx = inv_rms * (g - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))
        return gx, grad * x_hat  # the engine sums the scale's gradient down to its shape


@register_op("GroupNormalization")
class GroupNormalization(Operation):
    """X standardised over each group of channels (and the spatial axes), then scale·x̂ + bias per channel

    scale and bias hold one value per channel (opset 21) or, in opset 18's form, one per group."""

    symbol = "group norm"

    @staticmethod
    def forward(ctx, X, scale, bias, *, epsilon: float = 1e-5, num_groups: int, stash_type: int = 1):
        N, C = channel_count(X)
        if num_groups < 1 or C % num_groups:
            raise CgError(f"expected num_groups to divide X's {C} channels (X of shape {list(X.shape)}), "
                          f"found {num_groups}")
        for name, v in (("scale", scale), ("bias", bias)):
            if v.shape not in ((C,), (num_groups,)):
                raise CgError(f"expected {name} of shape [{C}] (one value per channel) or [{num_groups}] (one per "
                              f"group, opset 18), found {list(v.shape)}")
        per_group = scale.shape[0] != C
        x = X.astype(stash_dtype(X, stash_type)).reshape(N, num_groups, -1)
        x_hat, _, inv_std = standardize(x, (2,), epsilon)
        x_hat = x_hat.reshape(X.shape)
        s, b = (np.repeat(v, C // num_groups) if per_group else v for v in (scale, bias))
        y = x_hat * s.reshape(channel_shape(X)) + b.reshape(channel_shape(X))
        ctx.save(x_hat, inv_std, s, num_groups, per_group)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, s, groups, per_group = ctx
        N, over = x_hat.shape[0], (0, *range(2, x_hat.ndim))
        g = (grad * s.reshape(channel_shape(x_hat))).reshape(N, groups, -1)
        gx = standardize_backward(g, x_hat.reshape(N, groups, -1), inv_std, (2,)).reshape(x_hat.shape)
        g_scale, g_bias = (grad * x_hat).sum(axis=over), grad.sum(axis=over)
        if per_group:  # each group's value was repeated over its channels
            g_scale, g_bias = g_scale.reshape(groups, -1).sum(1), g_bias.reshape(groups, -1).sum(1)
        return gx, g_scale, g_bias


def channel_count(X):
    if X.ndim < 2:
        raise CgError(f"expected an input of shape N×C×…, found shape {list(X.shape)}")
    return X.shape[0], X.shape[1]


def channel_window_sum(a, before: int, after: int):
    """Σ a[:, c − before … c + after] along the channel axis, the window cut at the edges."""
    C = a.shape[1]
    padded = np.concatenate([np.zeros_like(a[:, :1]), np.cumsum(a, axis=1)], axis=1)
    hi = np.minimum(np.arange(C) + after + 1, C)
    lo = np.maximum(np.arange(C) - before, 0)
    return padded[:, hi] - padded[:, lo]


@register_op("LRN")
class LRN(Operation):
    """local response normalisation: X/(bias + α/size·Σ X²)^β, the sum over `size` neighbouring channels"""

    symbol = "LRN"

    @staticmethod
    def forward(ctx, X, *, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0, size: int):
        channel_count(X)
        if size < 1:
            raise CgError(f"expected size ≥ 1 (how many channels each sum covers), found {size}")
        before, after = (size - 1) // 2, math.ceil((size - 1) / 2)
        x = X.astype(work_dtype(X))
        d = bias + alpha / size * channel_window_sum(x * x, before, after)
        y = x * d ** -beta
        ctx.save(x, d, y, alpha / size, beta, before, after)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, d, y, k, beta, before, after = ctx
        # y_c = x_c·d_c^−β, d_c = bias + k·Σ_window(c) x²: x_i reaches every d_c whose window holds i
        through_d = channel_window_sum(grad * y / d, after, before)  # the window's transpose swaps its sides
        return (grad * d ** -beta - 2 * beta * k * x * through_d,)
