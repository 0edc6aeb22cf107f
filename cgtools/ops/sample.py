"""GridSample and AffineGrid: sampling a tensor at the (normalised) points of a grid, and making such grids.

GridSample reads each output point from a few input taps per spatial axis (1 nearest, 2 linear, 4 cubic);
the taps of all axes are combined one combination at a time (at most 4³), each a gather of every channel.
Backward scatters the gradient back to the taps and, through the weights' slopes, to the grid.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, ints_of, register_op
from cgtools.ops.conv import work_dtype
from cgtools.ops.resize import cubic_kernel

CUBIC_A = -0.75


def reflect(x, lo: float, hi: float):
    """x folded back into [lo, hi] as a mirror would, and the slope of that fold (±1)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo), np.zeros_like(x)
    below, above = x < lo, x > hi
    dx = np.where(below, lo - x, np.where(above, x - hi, 0.0))
    folds = np.floor(dx / span)
    rest = dx - folds * span
    even = folds % 2 == 0
    folded = np.where(below, np.where(even, lo + rest, hi - rest), np.where(even, hi - rest, lo + rest))
    slope = np.where(below | above, np.where(even, -1.0, 1.0), 1.0)
    return np.where(below | above, folded, x), slope


def cubic_slope(t):
    """d/dt of Keys' cubic kernel at signed distance t."""
    x, a = np.abs(t), CUBIC_A
    near = 3 * (a + 2) * x * x - 2 * (a + 3) * x
    far = 3 * a * x * x - 10 * a * x + 8 * a
    return np.sign(t) * np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def axis_taps(x, size: int, mode: str, padding_mode: str, align_corners: int):
    """For one spatial axis of `size`, given the unnormalised points x: each tap's input index, weight, the
    weight's slope along x, and the slope of x after padding_mode's clamp or fold (all tap-first arrays)."""
    lo, hi = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
    if mode == "nearest":
        x = np.rint(x)  # half to even, before the padding, as ONNX does
    slope = np.ones_like(x)
    if padding_mode == "border":
        outside = (x < lo) | (x > hi)
        x, slope = np.where(outside, np.clip(x, 0, size - 1), x), np.where(outside, 0.0, 1.0)
    elif padding_mode == "reflection":
        x, slope = reflect(x, lo, hi)
    if mode == "nearest":
        index, w, dw = np.trunc(x)[None].astype(np.int64), np.ones((1, *x.shape)), np.zeros((1, *x.shape))
    else:
        left = np.floor(x)
        offsets = np.arange(2) if mode == "linear" else np.arange(-1, 3)
        index = (left[None] + offsets.reshape(-1, *[1] * x.ndim)).astype(np.int64)
        t = x[None] - index  # signed distance of x from each tap
        if mode == "linear":
            w, dw = 1 - np.abs(t), np.broadcast_to(np.array([-1.0, 1.0]).reshape(-1, *[1] * x.ndim), t.shape)
        else:
            w, dw = cubic_kernel(np.abs(t), CUBIC_A), cubic_slope(t)
    if padding_mode == "zeros":
        inside = (index >= 0) & (index < size)
        w, dw = w * inside, dw * inside
    elif padding_mode == "reflection":
        index = np.trunc(reflect(index.astype(np.float64), lo, hi)[0]).astype(np.int64)
    return np.clip(index, 0, size - 1), w, dw, slope


def unnormalised(grid, sizes, align_corners: int):
    """The grid's points (−1 … 1, the last axis x, y, z: the spatial axes reversed) as input positions, one
    array per spatial axis in X's order, with d position / d grid value."""
    points, scales = [], []
    for a, size in enumerate(sizes):
        g = grid[..., len(sizes) - 1 - a]
        scale = (size - 1) / 2 if align_corners else size / 2
        points.append((g + 1) * scale - (0 if align_corners else 0.5))
        scales.append(scale)
    return points, scales


@register_op("GridSample")
class GridSample(Operation):
    """X (N×C×D…) sampled at the grid's points (N×out…×n, normalised to −1 … 1): nearest, linear or cubic"""

    symbol = "grid sample"

    @staticmethod
    def forward(ctx, X, grid, *, align_corners: int = 0,
                mode: Literal["linear", "nearest", "cubic", "bilinear", "bicubic"] = "linear",
                padding_mode: Literal["zeros", "border", "reflection"] = "zeros"):
        n = X.ndim - 2
        if n < 1 or grid.ndim != X.ndim or grid.shape[0] != X.shape[0] or grid.shape[-1] != n:
            raise CgError(f"expected X as N×C×D1×…×Dn and grid as N×out1×…×outn×n, found X of shape "
                          f"{list(X.shape)} and grid of shape {list(grid.shape)}")
        mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)  # opset 16's names
        dtype = work_dtype(X, grid)
        points, scales = unnormalised(grid.astype(dtype), X.shape[2:], align_corners)
        taps = [axis_taps(x, size, mode, padding_mode, align_corners) for x, size in zip(points, X.shape[2:])]
        xt = np.moveaxis(X.astype(dtype, copy=False), 1, -1)  # N×D…×C: a gather takes every channel
        batch = np.arange(X.shape[0]).reshape(-1, *[1] * n)
        y = 0
        for combo in itertools.product(*(range(len(t[0])) for t in taps)):
            weight = np.prod([t[1][k] for t, k in zip(taps, combo)], axis=0)
            y = y + weight[..., None] * xt[(batch, *(t[0][k] for t, k in zip(taps, combo)))]
        ctx.save(X, xt, taps, scales, batch)
        return np.moveaxis(y, -1, 1).astype(X.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        X, xt, taps, scales, batch = ctx
        g = np.moveaxis(grad, 1, -1)
        gxt = np.zeros_like(xt) if ctx.needs_grad[0] else None
        g_points = [0.0] * len(taps)
        for combo in itertools.product(*(range(len(t[0])) for t in taps)):
            where = (batch, *(t[0][k] for t, k in zip(taps, combo)))
            weights = [t[1][k] for t, k in zip(taps, combo)]
            if gxt is not None:
                np.add.at(gxt, where, np.prod(weights, axis=0)[..., None] * g)
            if ctx.needs_grad[1]:
                along_value = (g * xt[where]).sum(axis=-1)
                for a, (t, k) in enumerate(zip(taps, combo)):
                    others = np.prod([w for b, w in enumerate(weights) if b != a], axis=0) if len(taps) > 1 else 1
                    g_points[a] = g_points[a] + along_value * t[2][k] * others
        g_grid = None
        if ctx.needs_grad[1]:  # the grid's last axis lists the spatial axes in reverse
            g_grid = np.stack([g_points[a] * taps[a][3] * scales[a] for a in reversed(range(len(taps)))], axis=-1)
        return (None if gxt is None else np.moveaxis(gxt, -1, 1)), g_grid


@register_op("AffineGrid")
class AffineGrid(Operation):
    """the sampling grid (N×H×W×2, or N×D×H×W×3) of the affine maps theta (N×2×3 or N×3×4) of size's plane"""

    symbol = "affine grid"

    @staticmethod
    def forward(ctx, theta, size, *, align_corners: int = 0):
        shape = ints_of(size)
        n = len(shape) - 2
        if n not in (2, 3) or theta.shape != (shape[0], n, n + 1):
            raise CgError(f"expected size [N, C, H, W] or [N, C, D, H, W] and theta of shape N×2×3 or N×3×4 to "
                          f"match, found size {shape} and theta of shape {list(theta.shape)}")
        # each axis's points: −1 … 1 at the corners (align_corners) or at the pixels' centres
        axes = [np.linspace(-1, 1, d) if align_corners else (np.arange(d) * 2 + 1) / d - 1 for d in shape[2:]]
        mesh = np.meshgrid(*axes, indexing="ij")
        base = np.stack([*reversed(mesh), np.ones(shape[2:])], axis=-1).reshape(-1, n + 1)  # x, y(, z), 1
        base = base.astype(theta.dtype)
        ctx.save(base)
        return (base @ theta.swapaxes(1, 2)).reshape(shape[0], *shape[2:], n)

    @staticmethod
    def backward(ctx, grad):
        base = ctx[0]
        g = grad.reshape(grad.shape[0], -1, grad.shape[-1])
        return g.swapaxes(1, 2) @ base, None
