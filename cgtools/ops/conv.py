"""Convolution and pooling over the spatial axes of N×C×D1×…×Dn tensors (ONNX semantics).

Spatial axes may be 1-D, 2-D, 3-D, …. Each kernel offset reads one strided slice of the
padded input, so the work is done by a few large numpy operations, never by a Python loop over pixels.
Conv copies every offset's slice into columns (im2col, one copy of a sliding-window view) and multiplies
them by the weights in one matrix product; its backward adds the columns' gradient back where they were
read, offset by offset (col2im). A depthwise Conv (one filter per channel) runs in cgtools/ops/depthwise.py.
The pools and all backward passes loop over the kernel's offsets, a handful of iterations. float16 is
computed in float32 (numpy has no float16 BLAS).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Lazy, Operation, register_op
from cgtools.ops.depthwise import depthwise_backward, depthwise_forward, is_depthwise
from cgtools.ops.elementwise import masked

# How the windows are padded: by the explicit pads (NOTSET), so that out = ⌈in/stride⌉ (SAME_*), or not at all
AutoPad = Literal["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]


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
    else:  # NOTSET
        begin, end, out = pads[:n], pads[n:], []
        for i, b, e, span, s in zip(spatial, begin, end, spans, strides):
            room = i + b + e - span
            o = (-(-room // s) if ceil_mode else room // s) + 1
            if ceil_mode and (o - 1) * s >= i + b:  # the last window must start inside the input or its left pad
                o -= 1
            out.append(o)
    if min(out, default=1) < 1:
        raise CgError(f"the kernel {list(kernel)}" + (f" dilated by {list(dilations)}" if max(dilations) > 1 else "")
                      + f" does not fit the input's spatial shape {list(spatial)} padded by {list(begin) + list(end)}")
    return Window(kernel, strides, dilations, tuple(begin), tuple(end), tuple(out), tuple(spatial))


def pad(x, win: Window, value):
    """x (any two leading axes, then the spatial ones) inside a border of `value` as wide as win reads."""
    shape = x.shape[:2] + win.padded
    if shape == x.shape:
        return x
    xp = np.zeros(shape, x.dtype) if value == 0 else np.full(shape, value, x.dtype)
    xp[win.inner] = x
    return xp


def work_dtype(*arrays):
    """The dtype to compute in: the inputs' own, but float32 for float16 (no BLAS, and sums lose digits)."""
    dtype = np.result_type(*arrays)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


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
    if win.out == win.spatial == win.padded:  # a 1×1 kernel read every position once, in place: the columns are it
        return cols[:, 0].swapaxes(0, 1)
    gxt = np.zeros((C, N, *win.padded), cols.dtype)
    for k, where in enumerate(win.offsets()):
        gxt[where] += cols[:, k]  # one offset reads each position at most once: no np.add.at needed
    return gxt[win.inner].swapaxes(0, 1)


@register_op("Conv")
class Conv(Operation):
    """convolution of X (N×C×…) with weights W (M×C/group×k…), plus bias B (ONNX's cross-correlation)"""

    symbol = "conv"
    local_gradients = ("convᵀ({up}, {W})", "conv({X}, {up})", "1")

    @staticmethod
    def forward(ctx, X, W, B=None, *, auto_pad: AutoPad = "NOTSET", dilations: list[int] = (), group: int = 1,
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
        ctx.save(X, W, win, group, dtype)
        if is_depthwise(X, W, group):
            return depthwise_forward(X.astype(dtype, copy=False), W, B, win).astype(X.dtype, copy=False)
        w = W.astype(dtype, copy=False).reshape(group, M // group, -1)
        b = None if B is None else B.astype(dtype, copy=False).reshape(group, -1, 1)
        parts = []
        for samples in sample_chunks(X, W, win):
            x = X[samples]
            y = np.matmul(w, im2col(x, win, dtype).reshape(group, -1, x.shape[0] * math.prod(win.out)))
            if b is not None:
                y += b
            parts.append(np.ascontiguousarray(y.reshape(M, x.shape[0], *win.out).swapaxes(0, 1)))
        y = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        X, W, win, group, dtype = ctx
        gb = grad.sum(axis=all_but_channels(grad)) if len(ctx.needs_grad) > 2 and ctx.needs_grad[2] else None
        if is_depthwise(X, W, group):
            gx, gw = depthwise_backward(X.astype(dtype, copy=False), W, grad.astype(dtype, copy=False), win,
                                        *ctx.needs_grad[:2])
            return gx, gw, gb
        M = W.shape[0]
        w = W.astype(dtype, copy=False).reshape(group, M // group, -1)
        gx_parts, gw = [], None
        for samples in sample_chunks(X, W, win):
            x = X[samples]
            n = x.shape[0]
            g = grad[samples].astype(dtype, copy=False).swapaxes(0, 1).reshape(group, M // group, -1)
            if ctx.needs_grad[0]:
                cols = np.matmul(w.swapaxes(1, 2), g)  # g × (C/g)·K × n·out
                gx_parts.append(col2im(cols.reshape(X.shape[1], math.prod(win.kernel), n, *win.out), win))
            if ctx.needs_grad[1]:
                cols = im2col(x, win, dtype).reshape(group, -1, n * math.prod(win.out))
                part = np.matmul(g, cols.swapaxes(1, 2)).reshape(W.shape)
                gw = part if gw is None else gw + part
        gx = (gx_parts[0] if len(gx_parts) == 1 else np.concatenate(gx_parts)) if gx_parts else None
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
    outputs = ("Y", "Indices")

    @staticmethod
    def forward(ctx, X, *, auto_pad: AutoPad = "NOTSET", ceil_mode: int = 0, dilations: list[int] = (),
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
        if grad is None:  # only Indices is used downstream: it passes no gradient back
            return (np.zeros_like(xp[win.inner]),)
        if tiles(xp, win):
            return (tiled_max_backward(xp, grad, win)[win.inner],)
        best = argmax_offsets(xp, y, win)
        gxp = np.zeros(grad.shape[:2] + win.padded, grad.dtype)
        finite = np.isfinite(grad).all()  # then grad times a mask, several times faster than np.where
        for k, where in enumerate(win.offsets()):
            gxp[where] += masked(grad, best == k) if finite else np.where(best == k, grad, 0)
        return (gxp[win.inner],)


def tiles(xp, win: Window) -> bool:
    """Whether the windows tile the padded input exactly: side by side, undilated, covering all of it."""
    return (win.strides == win.kernel and set(win.dilations) == {1}
            and xp.shape[2:] == tuple(o * k for o, k in zip(win.out, win.kernel)))


def tiled_max_backward(xp, grad, win: Window):
    """MaxPool's gradient when the windows tile the input: each window seen as one axis, its maximum found by
    argmax (the first of tied ones, or the first NaN, as torch), the gradient put there."""
    n = len(win.kernel)
    split = xp.shape[:2] + tuple(d for o, k in zip(win.out, win.kernel) for d in (o, k))
    order = (0, 1, *range(2, 2 + 2 * n, 2), *range(3, 2 + 2 * n, 2))  # N, C, out…, kernel…
    windows = xp.reshape(split).transpose(order).reshape(*xp.shape[:2], *win.out, math.prod(win.kernel))
    gw = np.zeros(windows.shape, grad.dtype)
    np.put_along_axis(gw, windows.argmax(axis=-1)[..., None], grad[..., None], axis=-1)
    back = np.argsort(order)
    return gw.reshape(*xp.shape[:2], *win.out, *win.kernel).transpose(back).reshape(xp.shape)


def argmax_offsets(xp, y, win: Window):
    """Which kernel offset holds each window's maximum y: the first of tied ones in row-major order (as in
    torch), or the first NaN. Found after the fact, so that forward alone stays one np.maximum per offset;
    as the largest of (offsets − k)·[offset k holds it], numpy's boolean assignments being slow."""
    count = math.prod(win.kernel)
    rank = np.zeros(y.shape, np.uint8 if count < 256 else np.intp)
    for k, where in enumerate(win.offsets()):
        part = xp[where]
        hit = part == y
        if xp.dtype.kind == "f":
            hit |= np.isnan(part)
        np.maximum(rank, hit * rank.dtype.type(count - k), out=rank)
    return count - rank.astype(np.intp)


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
    def forward(ctx, X, *, auto_pad: AutoPad = "NOTSET", ceil_mode: int = 0, count_include_pad: int = 0,
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
    local_gradients = ("expand({up})/{n}",)

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
