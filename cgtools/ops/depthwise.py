"""Depthwise convolution (one filter per channel: group = C = M), as Conv runs it.

A depthwise filter reads one channel only, so there is no matrix product to give to the BLAS: the work is a
few multiply-adds per element, and what costs is memory. Each channel's padded input is seen flat; a kernel
offset is then a shift along that flat row, and each offset is one multiply-add over long contiguous rows
(outputs land on a grid a little wider than the output and are cut out at the end), instead of im2col's copy
of every window. With strides, the input is first split into its stride phases (x[::2, ::2], x[::2, 1::2],
…): each offset reads one phase, unstrided.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cgtools.threads import parallel_map

ROWS_ELEMENTS = 1 << 16  # elements of the rows one multiply-add covers: a block that stays in cache


def is_depthwise(X, W, group: int) -> bool:
    return group > 1 and group == X.shape[1] == W.shape[0] and W.shape[1] == 1


def forward_pays(win) -> bool:
    """Whether a forward pass is faster here than through im2col: unstrided, with long rows (strides add a copy
    of the input; short rows cost a numpy call each for little work, and im2col's copies are then cheap)."""
    return set(win.strides) == {1} and math.prod(win.out) >= FORWARD_ROW


FORWARD_ROW = 1024  # outputs per channel from which depthwise_forward beats im2col


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

    def phases(self, padded: tuple):
        """Each phase's index, where it sits in its grid, and the positions of the padded input it holds."""
        for k, phase in enumerate(np.ndindex(*self.strides)):
            taken = tuple(len(range(p, n, s)) for p, n, s in zip(phase, padded, self.strides))
            yield k, (slice(None), *map(slice, taken)), (..., *(slice(p, None, s) for p, s in zip(phase, self.strides)))


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


def split_phases(xp, grid: Grid, padded: tuple):
    """The padded input (N × C × …) as rows × phases × flat phase grid."""
    rows = xp.shape[0] * xp.shape[1]
    if len(set(grid.strides)) == 1 and grid.strides[0] == 1:
        return xp.reshape(rows, 1, -1)
    xq = np.zeros((rows, math.prod(grid.strides), *grid.shape), xp.dtype)
    for k, inside, held in grid.phases(padded):
        xq[(slice(None), k, *inside[1:])] = xp[held].reshape(rows, *xp[held].shape[2:])
    return xq.reshape(rows, xq.shape[1], -1)


def row_blocks(rows: int, span: int):
    step = max(1, ROWS_ELEMENTS // span)
    return [slice(r, r + step) for r in range(0, rows, step)]


def filters(W, rows: int, dtype):
    """Each row's filter, flat: the channels' filters repeated for every sample."""
    C = W.shape[0]
    return np.tile(W.reshape(C, -1).astype(dtype, copy=False), (rows // C, 1))


def depthwise_forward(xp, W, B, win):
    """xp: the padded input, in the dtype to compute in."""
    N, C = xp.shape[:2]
    grid = grid_of(win)
    xq = split_phases(xp, grid, win.padded)
    w = filters(W, N * C, xp.dtype)
    yf = np.empty((N * C, math.prod(grid.shape)), xp.dtype)

    def multiply_add(rows):
        y, x, ws = yf[rows, :grid.span], xq[rows], w[rows]
        term = np.empty_like(y)
        for k, (phase, shift) in enumerate(grid.reads):
            part = np.multiply(x[:, phase, shift:shift + grid.span], ws[:, k:k + 1], out=term if k else y)
            if k:
                y += part

    parallel_map(multiply_add, row_blocks(N * C, grid.span))
    y = grid.outputs(yf).reshape(N, C, *win.out)
    if B is not None:
        y = y + B.astype(xp.dtype, copy=False).reshape(C, *(1,) * len(win.out))
    return np.ascontiguousarray(y)


def depthwise_backward(xp, W, grad, win, needs_x: bool, needs_w: bool):
    """The gradients of X (each offset's multiply-add run backwards) and of W (each offset's dot product of the
    gradient with the input it read); xp as depthwise_forward's."""
    N, C = xp.shape[:2]
    grid = grid_of(win)
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

        parallel_map(multiply_add_back, row_blocks(N * C, grid.span))
        gx = merge_phases(gq, grid, xp.shape)[win.inner]
    if needs_w:
        xq = split_phases(xp, grid, win.padded)
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
    gp = np.empty(shape, gq.dtype)
    gq = gq.reshape(gq.shape[0], gq.shape[1], *grid.shape)
    for k, inside, held in grid.phases(shape[2:]):
        gp[held] = gq[(slice(None), k, *inside[1:])].reshape(gp[held].shape)
    return gp
