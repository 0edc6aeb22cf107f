"""The layers of convolutional networks: convolution, pooling, normalisation, dropout (ONNX semantics).

Spatial ops take N×C×D1×…×Dn tensors (1-D, 2-D, 3-D, …). Each kernel offset reads one strided slice of the
padded input, so the work is done by a few large numpy operations, never by a Python loop over pixels.
Conv copies every offset's slice into columns (im2col, one copy of a sliding-window view) and multiplies
them by the weights in one matrix product; its backward adds the columns' gradient back where they were
read, offset by offset (col2im). The pools and all backward passes loop over the kernel's offsets, a
handful of iterations. float16 is computed in float32 (numpy has no float16 BLAS).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


class Window(NamedTuple):
    """Where a kernel's windows sit along the spatial axes of an input: the output's element o on an axis
    reads input positions o·stride − begin + j·dilation, for j < kernel."""

    kernel: tuple
    strides: tuple
    dilations: tuple
    begin: tuple  # padding before each axis
    end: tuple  # padding after each axis, as given (ceil_mode's last window may read beyond it)
    out: tuple  # the output's spatial shape
    spatial: tuple  # the input's spatial shape

    @property
    def padded(self) -> tuple:
        """The padded input's spatial shape: the input and whatever padding the windows read."""
        return tuple(max((o - 1) * s + (k - 1) * d + 1, b + i)
                     for o, s, k, d, b, i in zip(self.out, self.strides, self.kernel, self.dilations, self.begin,
                                                 self.spatial))

    @property
    def inner(self) -> tuple:
        """Where the input sits in the padded input."""
        return (..., *(slice(b, b + i) for b, i in zip(self.begin, self.spatial)))

    def offsets(self):
        """For each kernel offset in row-major order, the strided slice of the padded input it reads."""
        for offset in np.ndindex(*self.kernel):
            yield (..., *(slice(j * d, j * d + (o - 1) * s + 1, s)
                          for j, d, o, s in zip(offset, self.dilations, self.out, self.strides)))


def window(spatial, kernel, strides=(), dilations=(), pads=(), auto_pad="NOTSET", ceil_mode=0) -> Window:
    """The Window of ONNX's attributes: explicit pads, or auto_pad's (SAME_* pads so that out = ⌈in/stride⌉,
    the odd one at the end for SAME_UPPER, at the beginning for SAME_LOWER; VALID pads nothing)."""
    n = len(spatial)
    kernel, strides, dilations = tuple(kernel), tuple(strides) or (1,) * n, tuple(dilations) or (1,) * n
    pads = tuple(pads) or (0,) * (2 * n)
    for name, values, size, least in (("kernel_shape", kernel, n, 1), ("strides", strides, n, 1),
                                      ("dilations", dilations, n, 1), ("pads", pads, 2 * n, 0)):
        if len(values) != size or min(values, default=least) < least:
            raise CgError(f"expected {name} to be {size} integers ≥ {least} (the input has {n} spatial axes), "
                          f"found {list(values)}")
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-i // s) for i, s in zip(spatial, strides)]
        total = [max(0, (o - 1) * s + span - i) for o, s, span, i in zip(out, strides, spans, spatial)]
        begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
        end = [t - b for t, b in zip(total, begin)]
    elif auto_pad == "VALID":
        begin = end = [0] * n
        out = [(i - span) // s + 1 for i, span, s in zip(spatial, spans, strides)]
    elif auto_pad == "NOTSET":
        begin, end, out = pads[:n], pads[n:], []
        for i, b, e, span, s in zip(spatial, begin, end, spans, strides):
            room = i + b + e - span
            o = (-(-room // s) if ceil_mode else room // s) + 1
            if ceil_mode and (o - 1) * s >= i + b:  # the last window must start inside the input or its left pad
                o -= 1
            out.append(o)
    else:
        raise CgError(f"expected auto_pad to be one of {', '.join(AUTO_PADS)}, found {auto_pad!r}")
    if min(out, default=1) < 1:
        raise CgError(f"the kernel {list(kernel)}" + (f" dilated by {list(dilations)}" if max(dilations) > 1 else "")
                      + f" does not fit the input's spatial shape {list(spatial)} padded by {list(begin) + list(end)}")
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), tuple(out), tuple(spatial))


def pad(x, win: Window, value):
    """x (any two leading axes, then the spatial ones) inside a border of `value` as wide as win reads."""
    shape = x.shape[:2] + win.padded
    if shape == x.shape:
        return x
    xp = np.full(shape, value, x.dtype)
    xp[win.inner] = x
    return xp


def work_dtype(*arrays):
    """The dtype to compute in: the inputs' own, but float32 for float16 (no BLAS, and sums lose digits)."""
    dtype = np.result_type(*arrays)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


class Lazy:
    """An optional output computed only when a node declares it: the interpreter converts each declared
    output with np.asarray and never touches the others."""

    def __init__(self, make):
        self.make = make

    def __array__(self, dtype=None, copy=None):
        return self.make() if dtype is None else self.make().astype(dtype)


def channel_shape(x):
    """The shape that broadcasts a per-channel vector against N×C×…: C×1×…×1."""
    if x.ndim < 2:
        raise CgError(f"expected an input of shape N×C×…, found shape {list(x.shape)}")
    return (-1,) + (1,) * (x.ndim - 2)


def all_but_channels(x) -> tuple:
    return (0, *range(2, x.ndim))


# ---- convolution ---------------------------------------------------------------------------------------

def im2col(x, win: Window, dtype):
    """The input's columns: C × k1 × … × N × out…, where [c, j…, n] is what kernel offset j… reads of x[n, c]."""
    n = len(win.kernel)
    xt = pad(x.swapaxes(0, 1), win, 0)  # C × N × …: the columns come out in the order the product wants
    if math.prod(win.kernel) == 1:  # 1×1 kernels read the (strided) input itself: no copy when N = 1
        return xt[next(win.offsets())][:, None].astype(dtype, copy=False)
    spans = [(k - 1) * d + 1 for k, d in zip(win.kernel, win.dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(xt, spans, axis=tuple(range(2, 2 + n)))
    windows = windows[(slice(None), slice(None), *(slice(0, (o - 1) * s + 1, s) for o, s in zip(win.out, win.strides)),
                       *(slice(None, None, d) for d in win.dilations))]  # C × N × out… × kernel…
    return np.ascontiguousarray(windows.transpose(0, *range(2 + n, 2 + 2 * n), 1, *range(2, 2 + n)), dtype)


def col2im(cols, win: Window):
    """The gradient of im2col: each offset's columns added back where they were read, as N × C × …"""
    C, _, N = cols.shape[:3]
    gxt = np.zeros((C, N, *win.padded), cols.dtype)
    for k, where in enumerate(win.offsets()):
        gxt[where] += cols[:, k]  # one offset reads each position at most once: no np.add.at needed
    return gxt[win.inner].swapaxes(0, 1)


@register_op("Conv")
class Conv(Operation):
    """convolution of X (N×C×…) with weights W (M×C/group×k…), plus bias B (ONNX's cross-correlation)"""

    symbol = "conv"

    @staticmethod
    def forward(ctx, X, W, B=None, *, auto_pad: str = "NOTSET", dilations: list[int] = (), group: int = 1,
                kernel_shape: list[int] = (), pads: list[int] = (), strides: list[int] = ()):
        if W.ndim != X.ndim or X.ndim < 3:
            raise CgError(f"expected X as N×C×D1×… and W as M×C/group×k1×… of the same rank, found X of shape "
                          f"{list(X.shape)} and W of shape {list(W.shape)}")
        M, C = W.shape[0], X.shape[1]
        if group < 1 or C != W.shape[1] * group or M % group:
            raise CgError(f"with group={group}, X's {C} channels and W's {M} filters must split into {group} "
                          f"groups, each of W's {W.shape[1]} channels; found X of shape {list(X.shape)}, "
                          f"W of shape {list(W.shape)}")
        if kernel_shape and tuple(kernel_shape) != W.shape[2:]:
            raise CgError(f"kernel_shape {list(kernel_shape)} differs from W's spatial shape {list(W.shape[2:])}")
        if B is not None and B.shape != (M,):
            raise CgError(f"expected B of shape [{M}] (one bias per filter), found {list(B.shape)}")
        win = window(X.shape[2:], W.shape[2:], strides, dilations, pads, auto_pad)
        dtype = work_dtype(X, W)
        w = W.astype(dtype, copy=False).reshape(group, M // group, -1)
        b = None if B is None else B.astype(dtype, copy=False).reshape(group, -1, 1)
        parts = []
        for samples in sample_chunks(X, W, win):
            x = X[samples]
            y = np.matmul(w, im2col(x, win, dtype).reshape(group, -1, x.shape[0] * math.prod(win.out)))
            if b is not None:
                y += b
            parts.append(np.ascontiguousarray(y.reshape(M, x.shape[0], *win.out).swapaxes(0, 1)))
        ctx.save(X, W, win, group, dtype)
        y = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        X, W, win, group, dtype = ctx
        M = W.shape[0]
        w = W.astype(dtype, copy=False).reshape(group, M // group, -1)
        gx_parts, gw, gb = [], None, None
        for samples in sample_chunks(X, W, win):
            x = X[samples]
            n = x.shape[0]
            g = grad[samples].astype(dtype, copy=False).swapaxes(0, 1).reshape(group, M // group, -1)
            if ctx.needs_grad[0]:
                cols = np.matmul(w.swapaxes(1, 2), g)  # g × (C/g)·K × n·out
                gx_parts.append(col2im(cols.reshape(X.shape[1], -1, n, *win.out), win))
            if ctx.needs_grad[1]:
                cols = im2col(x, win, dtype).reshape(group, -1, n * math.prod(win.out))
                part = np.matmul(g, cols.swapaxes(1, 2)).reshape(W.shape)
                gw = part if gw is None else gw + part
        gx = (gx_parts[0] if len(gx_parts) == 1 else np.concatenate(gx_parts)) if gx_parts else None
        if len(ctx.needs_grad) > 2 and ctx.needs_grad[2]:
            gb = grad.sum(axis=all_but_channels(grad))
        return gx, gw, gb


COLUMNS_PER_PRODUCT = 1 << 21  # im2col elements per matrix product: large products whose columns stay in cache


def sample_chunks(X, W, win: Window):
    """Slices of the batch to convolve at a time: big batches in chunks, each within COLUMNS_PER_PRODUCT."""
    per_sample = X.shape[1] * math.prod(W.shape[2:]) * math.prod(win.out)
    step = max(1, COLUMNS_PER_PRODUCT // max(per_sample, 1))
    return [slice(n, n + step) for n in range(0, max(X.shape[0], 1), step)]


# ---- pooling -------------------------------------------------------------------------------------------

def spatial_positions(win: Window, axis: int):
    """The input positions the output's windows read along one axis: out × kernel."""
    starts = np.arange(win.out[axis]) * win.strides[axis] - win.begin[axis]
    return starts[:, None] + np.arange(win.kernel[axis]) * win.dilations[axis]


def along(values, axis: int, n: int):
    """A vector laid along spatial axis `axis` of n, to broadcast over the others."""
    return values.reshape((-1,) + (1,) * (n - 1 - axis))


@register_op("MaxPool")
class MaxPool(Operation):
    """the maximum of each window (optional second output Indices: where it was, in the flattened input)"""

    symbol = "max pool"

    @staticmethod
    def forward(ctx, X, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, dilations: list[int] = (),
                kernel_shape: list[int], pads: list[int] = (), storage_order: int = 0, strides: list[int] = ()):
        win = window(X.shape[2:], kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        xp = pad(X, win, -np.inf if X.dtype.kind == "f" else np.iinfo(X.dtype).min)
        offsets = win.offsets()
        y = xp[next(offsets)].copy()
        for where in offsets:
            np.maximum(y, xp[where], out=y)  # NaN propagates, as in torch
        ctx.save(xp, y, win)
        return y, Lazy(lambda: max_indices(argmax_offsets(xp, y, win), win, X.shape, storage_order))

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        xp, y, win = ctx
        best = argmax_offsets(xp, y, win)
        gxp = np.zeros(grad.shape[:2] + win.padded, grad.dtype)
        for k, where in enumerate(win.offsets()):
            gxp[where] += np.where(best == k, grad, 0)
        return (gxp[win.inner],)


def argmax_offsets(xp, y, win: Window):
    """Which kernel offset holds each window's maximum y: the first of tied ones in row-major order (as in
    torch), or the first NaN. Found after the fact, so that forward alone stays one np.maximum per offset."""
    best = np.full(y.shape, -1, np.intp)
    for k, where in enumerate(win.offsets()):
        part = xp[where]
        hit = part == y
        if xp.dtype.kind == "f":
            hit |= np.isnan(part)
        hit &= best < 0
        best[hit] = k
    return best


def max_indices(best, win: Window, shape, storage_order):
    """ONNX's Indices: each maximum's position in the flattened unpadded input, spatial axes row-major (or
    column-major with storage_order=1)."""
    n = len(win.kernel)
    offsets = np.unravel_index(best, win.kernel)
    position = [along(spatial_positions(win, a)[:, 0], a, n) + offsets[a] * win.dilations[a] for a in range(n)]
    order = range(n) if not storage_order else reversed(range(n))
    flat = np.zeros(best.shape, np.int64)
    for a in order:
        flat = flat * shape[2 + a] + position[a]
    planes = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape[:2] + (1,) * n)
    return planes * math.prod(shape[2:]) + flat


def window_counts(win: Window, lo, hi):
    """How many of each window's taps fall in [lo, hi) on every axis: out…, or a number when all agree."""
    n = len(win.kernel)
    count = 1
    for a in range(n):
        taps = spatial_positions(win, a)
        count = count * along(((taps >= lo[a]) & (taps < hi[a])).sum(axis=1), a, n)
    return count.flat[0] if np.ptp(count) == 0 else count


@register_op("AveragePool")
class AveragePool(Operation):
    """the mean of each window (padding counted when count_include_pad=1)"""

    symbol = "avg pool"

    @staticmethod
    def forward(ctx, X, *, auto_pad: str = "NOTSET", ceil_mode: int = 0, count_include_pad: int = 0,
                dilations: list[int] = (), kernel_shape: list[int], pads: list[int] = (), strides: list[int] = ()):
        win = window(X.shape[2:], kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        # Taps beyond the explicit pads (ceil_mode's last window) are never counted.
        if count_include_pad:
            count = window_counts(win, [-b for b in win.begin], [i + e for i, e in zip(win.spatial, win.end)])
        else:
            count = window_counts(win, [0] * len(win.spatial), win.spatial)
        with np.errstate(divide="ignore"):  # a window wholly in the padding averages nothing: NaN
            scale = 1 / np.asarray(count, work_dtype(X))
        xp = pad(X, win, 0)
        offsets = win.offsets()
        y = xp[next(offsets)].astype(work_dtype(X))
        for where in offsets:
            y += xp[where]
        y *= scale
        ctx.save(win, scale)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        win, scale = ctx
        g = grad * scale
        gxp = np.zeros(grad.shape[:2] + win.padded, g.dtype)
        for where in win.offsets():
            gxp[where] += g
        return (gxp[win.inner],)


@register_op("GlobalAveragePool")
class GlobalAveragePool(Operation):
    """the mean over all spatial axes (N×C×… → N×C×1×…)"""

    symbol = "global avg pool"

    @staticmethod
    def forward(ctx, X):
        ctx.append(X.shape)
        return X.mean(axis=tuple(range(2, X.ndim)), keepdims=True)

    @staticmethod
    def backward(ctx, grad):
        shape = ctx[0]
        return (np.broadcast_to(grad / math.prod(shape[2:]), shape),)


@register_op("GlobalMaxPool")
class GlobalMaxPool(Operation):
    """the maximum over all spatial axes (the gradient is split evenly among tied maxima)"""

    symbol = "global max pool"

    @staticmethod
    def forward(ctx, X):
        axes = tuple(range(2, X.ndim))
        y = X.max(axis=axes, keepdims=True)
        ctx.save(X, y, axes)
        return y

    @staticmethod
    def backward(ctx, grad):
        X, y, axes = ctx
        hits = (X == y).astype(grad.dtype)
        return (grad * hits / hits.sum(axis=axes, keepdims=True),)


# ---- normalisation and dropout -------------------------------------------------------------------------

@register_op("BatchNormalization")
class BatchNormalization(Operation):
    """scale·(X − mean)/√(var + ε) + B per channel: the given mean and var, or the batch's (training_mode=1)

    In training mode the optional outputs running_mean and running_var are momentum·input + (1 − momentum)·batch
    statistic (the batch's biased variance, as in ONNX)."""

    symbol = "batch norm"

    @staticmethod
    def forward(ctx, X, scale, B, input_mean, input_var, *, epsilon: float = 1e-5, momentum: float = 0.9,
                training_mode: int = 0):
        shape = channel_shape(X)
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
        count = x_hat.size // inv_std.size
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
    """(x − mean)/√(var + ε) over axes, with the mean and 1/√(var + ε) (axes kept, as length 1)."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    inv_std = 1 / np.sqrt(np.mean(centred * centred, axis=axes, keepdims=True) + epsilon)
    return centred * inv_std, mean, inv_std


def standardize_backward(g, x_hat, inv_std, axes):
    """The gradient through standardize, given g = ∂L/∂x̂: the mean and the deviation depend on every x."""
    return inv_std * (g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True))


STASH_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}  # ONNX TensorProto's float types


@register_op("LayerNormalization")
class LayerNormalization(Operation):
    """(X − mean)/√(var + ε)·Scale + B over the axes from `axis` on (outputs Y, Mean, InvStdDev)"""

    symbol = "layer norm"

    @staticmethod
    def forward(ctx, X, Scale, B=None, *, axis: int = -1, epsilon: float = 1e-5, stash_type: int = 1):
        if not -X.ndim <= axis < X.ndim:
            raise CgError(f"expected axis in [{-X.ndim}, {X.ndim - 1}] for an input of shape {list(X.shape)}, "
                          f"found {axis}")
        if stash_type not in STASH_TYPES:
            raise CgError(f"expected stash_type 1 (float32), 10 (float16) or 11 (float64), found {stash_type}")
        axes = tuple(range(axis % X.ndim, X.ndim))
        # Mean and InvStdDev are computed in stash_type, but never in less precision than X has.
        x_hat, mean, inv_std = standardize(X.astype(np.result_type(X, STASH_TYPES[stash_type])), axes, epsilon)
        y = x_hat * Scale
        if B is not None:
            y += B
        ctx.save(x_hat, inv_std, Scale, axes)
        return y.astype(X.dtype, copy=False), mean, inv_std

    @staticmethod
    def backward(ctx, grad, grad_mean=None, grad_inv_std=None):
        x_hat, inv_std, scale, axes = ctx
        gx, g_scale, gb = np.zeros_like(x_hat), None, None
        if grad is not None:  # the engine sums g_scale and gb down to Scale's and B's shapes
            gx = standardize_backward(grad * scale, x_hat, inv_std, axes)
            g_scale, gb = grad * x_hat, grad
        count = x_hat.size // inv_std.size
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

    @staticmethod
    def forward(ctx, data, ratio_tensor=None, training_mode=None, *, ratio: float = 0.5, seed: int = None):
        # The ratio is an input since opset 12 and an attribute before; either way it only matters in training.
        drop = ratio if ratio_tensor is None else float(np.ravel(ratio_tensor)[0])
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
