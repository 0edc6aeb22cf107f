"""Depthwise convolution (one filter per channel: group = C = M), as Conv runs it.

A depthwise filter reads one channel only, so there is no matrix product to give to the BLAS: the work is a
few multiply-adds per element, and what costs is memory. Each channel's padded input is seen flat; a kernel
offset is then a shift along that flat row (outputs land on a grid a little wider than the output and are cut
out at the end). Forward copies each offset's shifted rows side by side, a block of rows at a time, and
multiplies them by the filters in one batched product (a copy per offset instead of im2col's copy of every
window, or a multiply and an add per offset); backward does the same with the gradient's rows shifted the
other way (X's gradient) and with the input's rows times the gradient (W's). With strides, the input is first
split into its stride phases (x[::2, ::2], x[::2, 1::2], …): each offset reads one phase, unstrided.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from cgtools.threads import parallel_map

GATHERED_ELEMENTS = 1 << 18  # elements copied side by side per block of rows: a block that stays in cache


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


def phases_of(x, grid: Grid, win):
    """Rows of the input (rows × spatial…) padded with zeros as wide as the windows read (and beyond, to fill
    every stride phase's grid), as rows × phases × flat phase grid (phase p of an axis: positions p, p + s, …)."""
    whole = tuple(n * s for n, s in zip(grid.shape, grid.strides))
    xp = np.zeros((x.shape[0], *whole), x.dtype)
    xp[win.inner] = x
    if set(grid.strides) == {1}:
        return xp.reshape(x.shape[0], 1, -1)
    n = len(grid.shape)
    split = xp.reshape(x.shape[0], *(d for pair in zip(grid.shape, grid.strides) for d in pair))  # n1, s1, n2, s2 …
    phases_first = split.transpose(0, *range(2, 2 + 2 * n, 2), *range(1, 1 + 2 * n, 2))
    return np.ascontiguousarray(phases_first).reshape(x.shape[0], math.prod(grid.strides), -1)


def merged_phases(gq, grid: Grid, win):
    """phases_of's inverse, for a gradient: rows × phases × flat phase grid back to rows × spatial…, phase by
    phase (one transposing copy would run its innermost loop over a phase axis of 2 or 3)."""
    whole = tuple(n * s for n, s in zip(grid.shape, grid.strides))
    if gq.shape[1] == 1:
        return gq.reshape(gq.shape[0], *whole)[win.inner]
    gp = np.empty((gq.shape[0], *whole), gq.dtype)
    split = gq.reshape(gq.shape[0], -1, *grid.shape)
    for k, phase in enumerate(np.ndindex(*grid.strides)):
        gp[(slice(None), *(slice(p, None, s) for p, s in zip(phase, grid.strides)))] = split[:, k]
    return gp[win.inner]


def row_blocks(rows: int, per_row: int, elements: int):
    step = max(1, elements // per_row)
    return [slice(r, r + step) for r in range(0, rows, step)]


def filters(W, rows: int, dtype):
    """Each row's filter, flat: the channels' filters repeated for every sample."""
    C = W.shape[0]
    return np.tile(W.reshape(C, -1).astype(dtype, copy=False), (rows // C, 1))


def gathered(x, reads, span: int):
    """rows × offsets × span: what each read (a phase of x, a shift along it) sees, side by side."""
    cols = np.empty((x.shape[0], len(reads), span), x.dtype)
    for k, (phase, shift) in enumerate(reads):
        cols[:, k] = x[:, phase, shift:shift + span]
    return cols


# Every step works on one block of rows (sample × channel) from the input to the result: its padded copy, its
# phases and its side-by-side reads stay in cache, and are small enough for the allocator to reuse from block
# to block (input-sized temporaries cost page faults, as much as the arithmetic).


def depthwise_forward(X, W, B, win):
    """X: the input, in the dtype to compute in."""
    N, C = X.shape[:2]
    rows, grid = N * C, grid_of(win)
    x, w = X.reshape(rows, *X.shape[2:]), filters(W, rows, X.dtype)[:, None, :]
    y = np.empty((rows, *win.out), X.dtype)

    def gathered_product(rs):
        yf = np.empty((len(w[rs]), 1, math.prod(grid.shape)), X.dtype)
        np.matmul(w[rs], gathered(phases_of(x[rs], grid, win), grid.reads, grid.span), out=yf[:, :, :grid.span])
        y[rs] = grid.outputs(yf[:, 0])

    parallel_map(gathered_product, row_blocks(rows, len(grid.reads) * math.prod(grid.shape), GATHERED_ELEMENTS))
    y = y.reshape(N, C, *win.out)
    if B is not None:
        y += B.astype(X.dtype, copy=False).reshape(C, *(1,) * len(win.out))
    return y


def depthwise_backward(X, W, grad, win, needs_x: bool, needs_w: bool):
    """The gradients of X and W, a block of rows at a time. X's, phase by phase: each position gets the
    gradient of the outputs that read it, times the offset's weight, all its offsets' shifted gradient rows
    side by side times the filters (as forward, the shifts turned around); W's: each offset's shifted input
    rows side by side times the gradient. X as depthwise_forward's."""
    N, C = X.shape[:2]
    rows, grid = N * C, grid_of(win)
    size, reach = math.prod(grid.shape), max(shift for _, shift in grid.reads)
    x, g, w = X.reshape(rows, *X.shape[2:]), grad.reshape(rows, *win.out), filters(W, rows, X.dtype)
    gx = np.empty(x.shape, X.dtype) if needs_x else None
    gw = np.empty((rows, len(grid.reads), 1), X.dtype) if needs_w else None
    by_phase = [(p, [k for k, (phase, _) in enumerate(grid.reads) if phase == p])
                for p in range(math.prod(grid.strides))]

    def block(rs):
        gp = np.zeros((len(w[rs]), 1, reach + size), X.dtype)  # the gradient on the grid, after `reach` zeros
        grid.outputs(gp[:, 0, reach:])[...] = g[rs]
        if needs_x:
            gq = np.zeros((len(w[rs]), len(by_phase), size), X.dtype)
            for phase, ks in filter(lambda pk: pk[1], by_phase):
                back = [(0, reach - grid.reads[k][1]) for k in ks]
                np.matmul(w[rs][:, None, ks], gathered(gp, back, size), out=gq[:, phase:phase + 1])
            gx[rs] = merged_phases(gq, grid, win)
        if needs_w:
            reads = gathered(phases_of(x[rs], grid, win), grid.reads, grid.span)
            np.matmul(reads, gp[:, 0, reach:reach + grid.span, None], out=gw[rs])

    if needs_x or needs_w:
        parallel_map(block, row_blocks(rows, len(grid.reads) * size, GATHERED_ELEMENTS))
    return (None if gx is None else gx.reshape(X.shape),
            None if gw is None else gw.reshape(N, C, -1).sum(axis=0).reshape(W.shape))
