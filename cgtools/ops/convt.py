"""Transposed convolution, Lp pooling and max unpooling over the spatial axes of N×C×D1×…×Dn tensors (ONNX).

ConvTranspose is Conv's backward with respect to its input, run forward: each input pixel spreads its weights
over the output (one matrix product, then col2im), and its own backward is a convolution (im2col, then a
product). The Window of conv.py describes both: the transposed output plays the convolution's input.
"""

from __future__ import annotations

import math

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, ints_of, register_op
from cgtools.ops.conv import AutoPad, Window, all_but_channels, col2im, im2col, pad, window, work_dtype


def transposed_layout(X, W, strides, dilations, pads, output_padding, output_shape, auto_pad):
    """The Window whose convolution ConvTranspose inverts (its `spatial` the whole, uncropped output), and the
    padding cropped off each axis's beginning and end: given, or fitted to output_shape (or SAME_*'s in·stride),
    the odd one at the end for SAME_UPPER, at the beginning otherwise."""
    n = X.ndim - 2
    strides, dilations = tuple(strides) or (1,) * n, tuple(dilations) or (1,) * n
    output_padding = tuple(output_padding) or (0,) * n
    spans = [(k - 1) * d + 1 for k, d in zip(W.shape[2:], dilations)]
    if len(strides) != n or len(dilations) != n or len(output_padding) != n:
        raise CgError(f"expected strides, dilations and output_padding of {n} integers (X has {n} spatial axes), "
                      f"found {list(strides)}, {list(dilations)}, {list(output_padding)}")
    full = [s * (i - 1) + p + span for s, i, p, span in zip(strides, X.shape[2:], output_padding, spans)]
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        wanted = list(output_shape)[-n:] if output_shape else [i * s for i, s in zip(X.shape[2:], strides)]
        total = [f - w for f, w in zip(full, wanted)]
        begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
        end = [t - b for t, b in zip(total, begin)]
    else:
        pads = tuple(pads) or (0,) * (2 * n)
        if len(pads) != 2 * n:
            raise CgError(f"expected pads of {2 * n} integers (X has {n} spatial axes), found {list(pads)}")
        if auto_pad == "VALID":
            pads = (0,) * (2 * n)
        begin, end = list(pads[:n]), list(pads[n:])
    win = Window(tuple(W.shape[2:]), strides, dilations, (0,) * n, (0,) * n, tuple(X.shape[2:]), tuple(full))
    return win, begin, end


def crop(y, begin, end):
    """y's spatial axes without `begin` and `end` elements at their ends (a negative count adds zeros)."""
    shape = y.shape[:2] + tuple(f - b - e for f, b, e in zip(y.shape[2:], begin, end))
    if min(shape[2:], default=1) < 1:
        raise CgError(f"the padding {list(begin) + list(end)} leaves no output of {list(y.shape[2:])}")
    out = np.zeros(shape, y.dtype)
    src = tuple(slice(max(b, 0), min(f, f - e)) for b, e, f in zip(begin, end, y.shape[2:]))
    dst = tuple(slice(max(-b, 0), max(-b, 0) + s.stop - s.start) for b, s in zip(begin, src))
    out[(..., *dst)] = y[(..., *src)]
    return out, (src, dst, y.shape)  # where backward takes the gradient back


@register_op("ConvTranspose")
class ConvTranspose(Operation):
    """transposed convolution of X (N×C×…) with W (C×M/group×k…), plus bias B: Conv's input gradient"""

    symbol = "conv transpose"

    @staticmethod
    def forward(ctx, X, W, B=None, *, auto_pad: AutoPad = "NOTSET", dilations: list[int] = (), group: int = 1,
                kernel_shape: list[int] = (), output_padding: list[int] = (), output_shape: list[int] = (),
                pads: list[int] = (), strides: list[int] = ()):
        C = X.shape[1] if X.ndim >= 3 else -1
        if W.ndim != X.ndim or X.ndim < 3 or group < 1 or W.shape[0] != C or C % group:
            raise CgError(f"expected X as N×C×D1×… and W as C×M/group×k1×… of the same rank, C split into group="
                          f"{group} groups; found X of shape {list(X.shape)} and W of shape {list(W.shape)}")
        if kernel_shape and tuple(kernel_shape) != W.shape[2:]:
            raise CgError(f"kernel_shape {list(kernel_shape)} differs from W's spatial shape {list(W.shape[2:])}")
        M = W.shape[1] * group
        if B is not None and B.shape != (M,):
            raise CgError(f"expected B of shape [{M}] (one bias per output channel), found {list(B.shape)}")
        win, begin, end = transposed_layout(X, W, strides, dilations, pads, output_padding, output_shape, auto_pad)
        dtype, N = work_dtype(X, W), X.shape[0]
        w = W.astype(dtype, copy=False).reshape(group, C // group, -1)  # per group: C/g × (M/g)·K
        x = X.astype(dtype, copy=False).swapaxes(0, 1).reshape(group, C // group, -1)  # C/g × N·in
        cols = np.matmul(w.swapaxes(1, 2), x)  # (M/g)·K × N·in per group
        y = col2im(cols.reshape(M, math.prod(win.kernel), N, *win.out), win)
        y, where = crop(y, begin, end)
        if B is not None:
            y += B.astype(dtype).reshape((-1,) + (1,) * (X.ndim - 2))
        ctx.save(X, W, win, group, dtype, where)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        X, W, win, group, dtype, (src, dst, full_shape) = ctx
        C, N = X.shape[1], X.shape[0]
        g = np.zeros(full_shape, dtype)
        g[(..., *src)] = grad[(..., *dst)]
        cols = im2col(g, win, dtype).reshape(group, -1, N * math.prod(win.out))  # (M/g)·K × N·in per group
        gx = gw = None
        if ctx.needs_grad[0]:
            w = W.astype(dtype, copy=False).reshape(group, C // group, -1)
            gx = np.matmul(w, cols).reshape(C, N, *win.out).swapaxes(0, 1)
        if ctx.needs_grad[1]:
            x = X.astype(dtype, copy=False).swapaxes(0, 1).reshape(group, C // group, -1)
            gw = np.matmul(x, cols.swapaxes(1, 2)).reshape(W.shape)
        gb = grad.sum(axis=all_but_channels(grad)) if len(ctx.needs_grad) > 2 and ctx.needs_grad[2] else None
        return gx, gw, gb


@register_op("LpPool")
class LpPool(Operation):
    """the p-norm of each window, (Σ |x|^p)^(1/p), the padding counted as zeros"""

    symbol = "Lp pool"

    @staticmethod
    def forward(ctx, X, *, auto_pad: AutoPad = "NOTSET", ceil_mode: int = 0, dilations: list[int] = (),
                kernel_shape: list[int], p: int = 2, pads: list[int] = (), strides: list[int] = ()):
        if p < 1:
            raise CgError(f"expected p ≥ 1 (the norm's power), found {p}")
        win = window(X.shape[2:], kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
        xp = pad(X.astype(work_dtype(X)), win, 0)
        offsets = win.offsets()
        total = np.abs(xp[next(offsets)]) ** p
        for where in offsets:
            total += np.abs(xp[where]) ** p
        y = total ** (1 / p)
        ctx.save(xp, y, win, p)
        return y.astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        xp, y, win, p = ctx
        # ∂y/∂x = sign(x)·(|x|/y)^(p−1) for each x in the window; nothing flows from a window of zeros
        g = np.where(y > 0, grad, 0) / np.where(y > 0, y, 1) ** (p - 1)
        gxp = np.zeros(grad.shape[:2] + win.padded, g.dtype)
        for where in win.offsets():
            x = xp[where]
            gxp[where] += g * np.sign(x) * np.abs(x) ** (p - 1)
        return (gxp[win.inner],)


@register_op("MaxUnpool")
class MaxUnpool(Operation):
    """MaxPool undone: each X value put back where Indices (MaxPool's second output) says, zeros elsewhere"""

    symbol = "max unpool"

    @staticmethod
    def forward(ctx, X, I, output_shape=None, *, kernel_shape: list[int], pads: list[int] = (),
                strides: list[int] = ()):
        n = X.ndim - 2
        strides, pads = tuple(strides) or (1,) * n, tuple(pads) or (0,) * (2 * n)
        if len(kernel_shape) != n or len(strides) != n or len(pads) != 2 * n:
            raise CgError(f"expected kernel_shape, strides and pads for X's {n} spatial axes, found "
                          f"{list(kernel_shape)}, {list(strides)}, {list(pads)}")
        if I.shape != X.shape:
            raise CgError(f"expected I of X's shape {list(X.shape)}, found {list(I.shape)}")
        pooled = [(i - 1) * s - pads[a] - pads[n + a] + k
                  for a, (i, s, k) in enumerate(zip(X.shape[2:], strides, kernel_shape))]
        shape = X.shape[:2] + tuple(pooled)  # the shape the indices count in
        index = np.ravel(I).astype(np.intp)
        if index.size and (index.min() < 0 or index.max() >= math.prod(shape)):
            raise CgError(f"expected indices in [0, {math.prod(shape)}) (the unpooled shape {list(shape)}), "
                          f"found {index.min()} to {index.max()}")
        flat = np.zeros(math.prod(shape), X.dtype)
        flat[index] = np.ravel(X)
        wanted = tuple(ints_of(output_shape)) or shape
        y = np.zeros(wanted, X.dtype)
        common = tuple(slice(0, min(a, b)) for a, b in zip(shape, wanted))  # output_shape may cut or pad it
        y[common] = flat.reshape(shape)[common]
        ctx.save(index, shape, common, X.shape)
        return y

    @staticmethod
    def backward(ctx, grad):
        index, shape, common, x_shape = ctx
        g = np.zeros(shape, grad.dtype)
        g[common] = grad[common]
        return g.reshape(-1)[index].reshape(x_shape), None, None
