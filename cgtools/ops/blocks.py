"""Ops that move blocks of elements between axes or windows: DepthToSpace, SpaceToDepth, CenterCropPad,
TensorScatter (a key-value cache's write) and Col2Im (the adjoint of im2col: blocks summed back into an image).

Each moves every element to one place (or, Col2Im, adds several into one), so backward moves the gradient
back the same way."""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, ints_of, register_op


def check_blocks(input, blocksize: int, channels: bool):
    """A 4-D NCHW input whose channels (or height and width) split into blocksize × blocksize blocks."""
    sizes = (input.shape[1] // blocksize,) if channels else input.shape[2:]
    if input.ndim != 4 or blocksize < 1 or (input.shape[1] % blocksize ** 2 if channels
                                            else any(s % blocksize for s in input.shape[2:])):
        what = "channels a multiple of blocksize²" if channels else "height and width multiples of blocksize"
        raise CgError(f"expected a 4-D NCHW input with {what} ({blocksize}), found shape {list(input.shape)}")
    return sizes


def depth_to_space_axes(shape, b: int, mode: str):
    """The 6-D view of an NCHW input and the permutation that DepthToSpace applies to it."""
    n, c, h, w = shape
    if mode == "DCR":  # channels as (block row, block column, channel)
        return (n, b, b, c // b ** 2, h, w), (0, 3, 4, 1, 5, 2)
    return (n, c // b ** 2, b, b, h, w), (0, 1, 4, 2, 5, 3)  # CRD: (channel, block row, block column)


def rearranged(x, view, perm, out_shape):
    return x.reshape(view).transpose(perm).reshape(out_shape)


def rearranged_back(grad, view, perm, in_shape):
    """The gradient of `rearranged`: the same moves undone."""
    moved = tuple(view[p] for p in perm)
    return grad.reshape(moved).transpose(np.argsort(perm)).reshape(in_shape)


@register_op("DepthToSpace")
class DepthToSpace(Operation):
    """channels moved into blocksize × blocksize blocks of space (torch.pixel_shuffle in mode CRD)"""

    symbol = "depth→space"

    @staticmethod
    def forward(ctx, input, *, blocksize: int, mode: Literal["DCR", "CRD"] = "DCR"):  # noqa: A002
        check_blocks(input, blocksize, channels=True)
        n, c, h, w = input.shape
        view, perm = depth_to_space_axes(input.shape, blocksize, mode)
        ctx.save(view, perm, input.shape)
        return rearranged(input, view, perm, (n, c // blocksize ** 2, h * blocksize, w * blocksize))

    @staticmethod
    def backward(ctx, grad):
        return (rearranged_back(grad, *ctx),)


@register_op("SpaceToDepth")
class SpaceToDepth(Operation):
    """blocksize × blocksize blocks of space moved into channels: block position first (DCR, DepthToSpace DCR
    undone) or channel first (CRD, torch.pixel_unshuffle)"""

    symbol = "space→depth"

    @staticmethod
    def forward(ctx, input, *, blocksize: int, mode: Literal["DCR", "CRD"] = "DCR"):  # noqa: A002 - ONNX's name
        check_blocks(input, blocksize, channels=False)
        n, c, h, w = input.shape
        b = blocksize
        view = (n, c, h // b, b, w // b, b)
        perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)  # mode since opset 25
        ctx.save(view, perm, input.shape)
        return rearranged(input, view, perm, (n, c * b * b, h // b, w // b))

    @staticmethod
    def backward(ctx, grad):
        return (rearranged_back(grad, *ctx),)


def centered(n: int, target: int) -> tuple[slice, slice]:
    """Along one axis, the part of the input kept and where it goes in the output: centred, the extra element
    of an odd difference cropped (or padded) at the end."""
    if target <= n:
        start = (n - target) // 2
        return slice(start, start + target), slice(0, target)
    start = (target - n) // 2
    return slice(0, n), slice(start, start + n)


@register_op("CenterCropPad")
class CenterCropPad(Operation):
    """input cropped or zero-padded, centred, to `shape` along the given axes (by default all)"""

    symbol = "center crop/pad"

    @staticmethod
    def forward(ctx, input_data, shape, *, axes: list[int] = ()):
        sizes = ints_of(shape)
        dims = [a % input_data.ndim for a in axes] or list(range(input_data.ndim))
        if len(sizes) != len(dims) or min(sizes, default=0) < 0:
            raise CgError(f"expected one size (at least 0) per axis ({len(dims)}), found shape {sizes}")
        out = list(input_data.shape)
        src, dst = [slice(None)] * input_data.ndim, [slice(None)] * input_data.ndim
        for axis, size in zip(dims, sizes):
            out[axis] = size
            src[axis], dst[axis] = centered(input_data.shape[axis], size)
        y = np.zeros(out, input_data.dtype)
        y[tuple(dst)] = input_data[tuple(src)]
        ctx.save(input_data.shape, tuple(src), tuple(dst))
        return y

    @staticmethod
    def backward(ctx, grad):
        shape, src, dst = ctx
        gx = np.zeros(shape, grad.dtype)
        gx[src] = grad[dst]
        return gx, None


def cache_positions(cache_shape, update_shape, write_indices, axis: int, mode: str):
    """For each element of the update, its position along `axis` of the cache: from each batch entry's write
    index on, wrapping around in mode 'circular'."""
    n, s = cache_shape[axis], update_shape[axis]
    start = np.zeros(cache_shape[0], np.int64) if write_indices is None else np.asarray(write_indices, np.int64)
    pos = start.reshape(-1, 1) + np.arange(s)
    if mode == "circular":
        pos %= n
    elif pos.size and pos.max() >= n:
        raise CgError(f"TensorScatter writes position {pos.max()} of a cache of length {n} (mode 'linear')")
    view = [1] * len(cache_shape)
    view[0], view[axis] = len(start), s
    return np.broadcast_to(pos.reshape(view), update_shape)


@register_op("TensorScatter")
class TensorScatter(Operation):
    """past_cache with update written along an axis from each batch entry's write index (a key-value cache)"""

    symbol = "cache write"

    @staticmethod
    def forward(ctx, past_cache, update, write_indices=None, *, axis: int = -2,
                mode: Literal["linear", "circular"] = "linear"):
        axis %= past_cache.ndim
        same = all(a == b for k, (a, b) in enumerate(zip(past_cache.shape, update.shape)) if k != axis)
        if axis == 0 or update.ndim != past_cache.ndim or not same or update.shape[axis] > past_cache.shape[axis]:
            raise CgError(f"TensorScatter cannot write an update of shape {list(update.shape)} along axis {axis} "
                          f"of a cache of shape {list(past_cache.shape)}")
        index = cache_positions(past_cache.shape, update.shape, write_indices, axis, mode)
        y = past_cache.copy()
        np.put_along_axis(y, index, update, axis=axis)
        ctx.save(index, axis)
        return y

    @staticmethod
    def backward(ctx, grad):
        index, axis = ctx
        gcache = grad.copy()
        np.put_along_axis(gcache, index, 0, axis=axis)  # overwritten entries no longer count
        return gcache, np.take_along_axis(grad, index, axis=axis), None


def block_windows(image, block, dilations, pads, strides):
    """For each offset within a block, the slices of the padded image its column entries land on, and the
    number of blocks along each axis."""
    counts = [(n + pb + pe - d * (k - 1) - 1) // s + 1
              for n, k, d, s, pb, pe in zip(image, block, dilations, strides, pads[:len(image)], pads[len(image):])]
    windows = [tuple(slice(o * d, o * d + s * (m - 1) + 1, s) for o, d, s, m in zip(offset, dilations, strides, counts))
               for offset in np.ndindex(*block)]
    return windows, counts


@register_op("Col2Im")
class Col2Im(Operation):
    """columns of blocks (N, C·∏block, L) summed back into images (N, C, *image_shape): torch's fold"""

    symbol = "col2im"

    @staticmethod
    def forward(ctx, input, image_shape, block_shape, *, dilations: list[int] = (), pads: list[int] = (),
                strides: list[int] = ()):  # noqa: A002 - ONNX's name
        image, block = ints_of(image_shape), ints_of(block_shape)
        r = len(image)
        dilations, strides = list(dilations) or [1] * r, list(strides) or [1] * r
        pads = list(pads) or [0] * 2 * r
        windows, counts = block_windows(image, block, dilations, pads, strides)
        size = int(np.prod(block))
        if input.ndim != 3 or len(block) != r or input.shape[1] % size or input.shape[2] != np.prod(counts):
            raise CgError(f"Col2Im expected an input (N, C·{size}, {int(np.prod(counts))}) for blocks {block} "
                          f"over an image {image}, found shape {list(input.shape)}")
        n, c = input.shape[0], input.shape[1] // size
        cols = input.reshape(n, c, size, *counts)
        padded = np.zeros((n, c, *(m + pads[i] + pads[i + r] for i, m in enumerate(image))), input.dtype)
        for k, where in enumerate(windows):
            padded[(slice(None), slice(None), *where)] += cols[:, :, k]
        inner = (slice(None), slice(None), *(slice(pads[i], pads[i] + m) for i, m in enumerate(image)))
        ctx.save(input.shape, padded.shape, inner, windows)
        return padded[inner]

    @staticmethod
    def backward(ctx, grad):
        shape, padded_shape, inner, windows = ctx
        gpadded = np.zeros(padded_shape, grad.dtype)
        gpadded[inner] = grad
        cols = np.stack([gpadded[(slice(None), slice(None), *where)] for where in windows], axis=2)
        return cols.reshape(shape), None, None
