"""Depthwise convolution (one filter per channel: group = C = M), as Conv runs it.

A depthwise filter reads one channel only, so there is no matrix product to give to the BLAS: the work is a
few multiply-adds per element, and what costs is memory. Each channel's padded input is seen flat; a kernel
offset is then a shift along that flat row (outputs land on a grid a little wider than the output and are cut
out at the end). Forward copies each offset's shifted rows side by side, a block of rows at a time, and
multiplies them by the filters in one batched product (a copy per offset instead of im2col's copy of every
window, or a multiply and an add per offset); backward runs a multiply-add per offset. With strides, the
input is first split into its stride phases (x[::2, ::2], x[::2, 1::2], …): each offset reads one phase,
unstrided.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from cgtools.threads import parallel_map

ROWS_ELEMENTS = 1 << 16  # elements of the rows one multiply-add covers: a block that stays in cache
GATHERED_ELEMENTS = 1 << 18  # elements forward copies side by side per block of rows


def is_depthwise(X, W, group: int) -> bool:
    return group > 1 and group == X.shape[1] == W.shape[0] and W.shape[1] == 1


class Grid(NamedTuple):
    """Where a depthwise window reads: the padded input split into one grid per stride phase, each `shape`."""

    strides: tuple  # phase p holds the padded positions p, p + s, p + 2s, … on each axis
    shape: tuple
    out: tuple
    reads: list  # per kernel offset: its phase and its shift along the flat phase grid
    span: int  # how many flat grid positions the outputs cover

    def outputs(self, flat):
        """The outputs among a (rows × phase grid) array's positions."""
        return flat.reshape(flat.shape[0], *self.shape)[(slice(None), *(slice(0, o) for o in self.out))]


@functools.lru_cache(maxsize=256)  # a model's layers come back at every run; working one out takes 0.1 ms
def grid_of(win) -> Grid:
    strides = tuple(win.strides)
    shape = tuple(-(-p // s) for p, s in zip(win.padded, strides))
    steps = [math.prod(shape[a + 1:]) for a in range(len(shape))]
    reads = []
    for offset in np.ndindex(*win.kernel):
        at = [j * d for j, d in zip(offset, win.dilations)]
        phase = int(np.ravel_multi_index([a % s for a, s in zip(at, strides)], strides))
        reads.append((phase, sum(a // s * step for a, s, step in zip(at, strides, steps))))
    span = sum((o - 1) * step for o, step in zip(win.out, steps)) + 1
    return Grid(strides, shape, tuple(win.out), reads, span)


def padded_input(X, grid: Grid, win):
    """X (N × C × …, in the dtype to compute in) inside zeros as wide as the windows read, and beyond, to fill
    every stride phase's grid."""
    xp = np.zeros((*X.shape[:2], *(n * s for n, s in zip(grid.shape, grid.strides))), X.dtype)
    xp[win.inner] = X
    return xp


def split_phases(xp, grid: Grid):
    """padded_input's array as rows × phases × flat phase grid (phase p of an axis: positions p, p + s, …)."""
    rows = xp.shape[0] * xp.shape[1]
    if set(grid.strides) == {1}:
        return xp.reshape(rows, 1, -1)
    n = len(grid.shape)
    split = xp.reshape(rows, *(d for pair in zip(grid.shape, grid.strides) for d in pair))  # rows, n1, s1, n2, s2 …
    phases_first = split.transpose(0, *range(2, 2 + 2 * n, 2), *range(1, 1 + 2 * n, 2))
    return np.ascontiguousarray(phases_first).reshape(rows, math.prod(grid.strides), -1)


def row_blocks(rows: int, per_row: int, elements: int):
    step = max(1, elements // per_row)
    return [slice(r, r + step) for r in range(0, rows, step)]


def filters(W, rows: int, dtype):
    """Each row's filter, flat: the channels' filters repeated for every sample."""
    C = W.shape[0]
    return np.tile(W.reshape(C, -1).astype(dtype, copy=False), (rows // C, 1))


def depthwise_forward(X, W, B, win):
    """X: the input, in the dtype to compute in."""
    N, C = X.shape[:2]
    grid = grid_of(win)
    xq = split_phases(padded_input(X, grid, win), grid)
    w = filters(W, N * C, X.dtype)[:, None, :]
    yf = np.empty((N * C, 1, math.prod(grid.shape)), X.dtype)

    def gathered_product(rows):  # every offset's shifted rows side by side, times the filters
        x = xq[rows]
        cols = np.empty((x.shape[0], len(grid.reads), grid.span), X.dtype)
        for k, (phase, shift) in enumerate(grid.reads):
            cols[:, k] = x[:, phase, shift:shift + grid.span]
        np.matmul(w[rows], cols, out=yf[rows, :, :grid.span])

    parallel_map(gathered_product, row_blocks(N * C, len(grid.reads) * grid.span, GATHERED_ELEMENTS))
    y = grid.outputs(yf[:, 0]).reshape(N, C, *win.out)
    if B is not None:
        y = y + B.astype(X.dtype, copy=False).reshape(C, *(1,) * len(win.out))
    return np.ascontiguousarray(y)


def depthwise_backward(X, W, grad, win, needs_x: bool, needs_w: bool):
    """The gradients of X (each offset's multiply-add run backwards) and of W (each offset's dot product of the
    gradient with the input it read); X as depthwise_forward's."""
    N, C = X.shape[:2]
    grid = grid_of(win)
    xp = padded_input(X, grid, win)
    gf = np.zeros((N * C, math.prod(grid.shape)), xp.dtype)
    grid.outputs(gf)[...] = grad.reshape(N * C, *win.out)
    gx = gw = None
    if needs_x:
        w = filters(W, N * C, xp.dtype)
        gq = np.zeros((N * C, math.prod(grid.strides), gf.shape[1]), xp.dtype)

        def multiply_add_back(rows):
            g, ws, term = gf[rows, :grid.span], w[rows], np.empty((len(w[rows]), grid.span), xp.dtype)
            for k, (phase, shift) in enumerate(grid.reads):
                gq[rows, phase, shift:shift + grid.span] += np.multiply(g, ws[:, k:k + 1], out=term)

        parallel_map(multiply_add_back, row_blocks(N * C, grid.span, ROWS_ELEMENTS))
        gx = merge_phases(gq, grid, xp.shape)[win.inner]
    if needs_w:
        xq = split_phases(xp, grid)
        g = gf[:, :grid.span]

        def dot_products(read):  # of the gradient with what one kernel offset read, row by row
            phase, shift = read
            return np.einsum("rl,rl->r", g, xq[:, phase, shift:shift + grid.span])

        per_row = np.stack(parallel_map(dot_products, grid.reads), axis=1)
        gw = per_row.reshape(N, C, -1).sum(axis=0).reshape(W.shape)
    return gx, gw


def merge_phases(gq, grid: Grid, shape: tuple):
    """split_phases' inverse: rows × phases × flat phase grid back to the padded N × C × …"""
    if gq.shape[1] == 1:
        return gq.reshape(shape)
    n = len(grid.shape)
    split = gq.reshape(gq.shape[0], *grid.strides, *grid.shape)  # rows, s1, s2 …, n1, n2 …
    interleaved = (a for pair in zip(range(1 + n, 1 + 2 * n), range(1, 1 + n)) for a in pair)  # n1, s1, n2, s2 …
    return split.transpose(0, *interleaved).reshape(shape)
