"""Ops that cut, pad, repeat and index tensors: Split, Slice, Expand, Pad, Tile, GatherElements, ScatterND, Trilu.

Their gradients carry each element's gradient back to where it came from, adding up where one element went
to several places."""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, ints_of, register_op


def along(axis: int, index) -> tuple:
    """An index that applies `index` to one axis and takes every element of the axes before it."""
    return (slice(None),) * axis + (index,)


@register_op("Split")
class Split(Operation):
    """input cut into consecutive parts along an axis: of the sizes `split`, or `num_outputs` equal parts"""

    symbol = "split"
    outputs = ("outputs…",)

    attribute_forms = {"split": ("split", "ints")}  # an input since opset 13

    @staticmethod
    def forward(ctx, input, split=None, *, axis: int = 0, num_outputs: int = 0):
        axis %= input.ndim
        n = input.shape[axis]
        sizes = ints_of(split)
        if not sizes:
            if num_outputs < 1:
                raise CgError("Split needs the sizes of the parts (input or attribute 'split') or their number "
                              "(attribute 'num_outputs')")
            part = -(-n // num_outputs)  # as equal as can be, the last part smaller (ONNX opset 18)
            sizes = [part] * (num_outputs - 1) + [n - part * (num_outputs - 1)]
        if sum(sizes) != n or min(sizes) < 0:
            raise CgError(f"cannot split an axis of length {n} into parts of sizes {sizes}")
        bounds = [0, *itertools.accumulate(sizes)]
        ctx.save(input.shape, axis, bounds)
        return tuple(input[along(axis, slice(a, b))] for a, b in zip(bounds, bounds[1:]))  # views, as np.split's

    @staticmethod
    def backward(ctx, *grads):
        shape, axis, bounds = ctx
        gx = np.zeros(shape, next(g for g in grads if g is not None).dtype)
        for k, g in enumerate(grads):
            if g is not None:  # an unused part passes no gradient back: zeros there
                gx[along(axis, slice(bounds[k], bounds[k + 1]))] = g
        return gx, None


def clamp(v, lo, hi):
    return min(max(v, lo), hi)


def slice_index(shape, starts, ends, axes, steps) -> tuple:
    """The numpy index of an ONNX Slice. Python's slice clamps differently for negative steps (ONNX clamps
    the start into [0, n-1], so a start before the first element still takes it), hence explicit bounds."""
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        n = shape[axis]
        if step == 0:
            raise CgError("Slice steps cannot be 0")
        start += n if start < 0 else 0
        end += n if end < 0 else 0
        if step > 0:
            start, end = clamp(start, 0, n), clamp(end, 0, n)
        else:
            start, end = clamp(start, 0, n - 1), clamp(end, -1, n - 1)
        index[axis] = slice(start, None if end < 0 else end, step)  # end -1: down to and including element 0
    return tuple(index)


@register_op("Slice")
class Slice(Operation):
    """data[starts:ends:steps] along the given axes (by default the first ones); steps may be negative"""

    symbol = "slice"
    local_gradients = ("pad({up})", None)

    attribute_forms = {"starts": ("starts", "ints"), "ends": ("ends", "ints"), "axes": ("axes", "ints")}  # opset < 10

    @staticmethod
    def forward(ctx, data, starts=None, ends=None, axes=None, steps=None):
        begin, end = ints_of(starts), ints_of(ends)
        if not begin and starts is None:
            raise CgError("Slice needs starts and ends, as inputs (or, in opsets before 10, attributes)")
        if len(begin) != len(end):
            raise CgError(f"Slice needs as many ends as starts, found {len(end)} and {len(begin)}")
        dims = [a % max(data.ndim, 1) for a in ints_of(axes)] or list(range(len(begin)))
        strides = ints_of(steps) or [1] * len(begin)
        if len(dims) != len(begin) or len(strides) != len(begin) or max(dims, default=0) >= data.ndim:
            raise CgError(f"Slice needs one axis (of the data's {data.ndim}) and one step per start; found "
                          f"{len(begin)} starts, axes {ints_of(axes)} and steps {ints_of(steps)}")
        index = slice_index(data.shape, begin, end, dims, strides)
        ctx.save(data.shape, index)
        return data[index]

    @staticmethod
    def backward(ctx, grad):
        shape, index = ctx
        gx = np.zeros(shape, grad.dtype)
        gx[index] = grad  # a slice takes each element at most once
        return (gx,) + (None,) * (len(ctx.needs_grad) - 1)


@register_op("Expand")
class Expand(Operation):
    """input broadcast against `shape` (numpy's rules, so a 1 in shape keeps the input's dimension)"""

    symbol = "expand"
    local_gradients = ("1", None)

    @staticmethod
    def forward(ctx, input, shape):
        out = np.broadcast_shapes(input.shape, tuple(ints_of(shape)))
        return np.array(np.broadcast_to(input, out))  # a copy: broadcast views are read-only

    @staticmethod
    def backward(ctx, grad):
        return grad, None  # the engine sums the gradient back over the broadcast axes


def pad_widths(ndim, pads, axes) -> list[tuple[int, int]]:
    """ONNX pads [begin of each axis…, end of each axis…] as numpy's [(begin, end) per axis]."""
    axes = [a % ndim for a in axes] if axes else list(range(ndim))
    if len(pads) != 2 * len(axes):
        raise CgError(f"expected 2 pads per padded axis, {2 * len(axes)} in all, found {len(pads)}")
    widths = [(0, 0)] * ndim
    for i, axis in enumerate(axes):
        widths[axis] = (pads[i], pads[i + len(axes)])
    return widths


def fold_back(grad, axis, source, n):
    """The gradient along one axis carried back onto the n elements that `source` (output position -> input
    position) copied from: add.at adds up the gradients of an element's copies."""
    g = np.zeros(grad.shape[:axis] + (n,) + grad.shape[axis + 1:], grad.dtype)
    np.add.at(g, along(axis, source), grad)
    return g


@register_op("Pad")
class Pad(Operation):
    """data padded at both ends of axes (a negative pad crops): with a constant, a reflection, the edge, a wrap"""

    symbol = "pad"

    attribute_forms = {"pads": ("pads", "ints"), "value": ("constant_value", "float")}  # inputs since opset 11

    @staticmethod
    def forward(ctx, data, pads=None, constant_value=None, axes=None, *,
                mode: Literal["constant", "reflect", "edge", "wrap"] = "constant"):
        widths = pad_widths(data.ndim, ints_of(pads), ints_of(axes))
        crop = tuple(slice(-min(b, 0), n + min(e, 0)) for (b, e), n in zip(widths, data.shape))
        grow = [(max(b, 0), max(e, 0)) for b, e in widths]
        x = data[crop]
        ctx.save(data.shape, crop, grow, x.shape, mode)
        if mode != "constant":
            return np.pad(x, grow, mode=mode)
        fill = 0.0 if constant_value is None or constant_value.size == 0 else np.ravel(constant_value)[0]
        return np.pad(x, grow, constant_values=fill)

    @staticmethod
    def backward(ctx, grad):
        shape, crop, grow, cropped, mode = ctx
        gconst = None
        if mode == "constant":
            inner = grad[tuple(slice(b, b + n) for (b, _), n in zip(grow, cropped))]
            if len(ctx.needs_grad) > 2 and ctx.needs_grad[2]:  # the constant fills whatever is not data
                gconst = grad.sum() - inner.sum()
        else:  # each output element is a copy of one input element: fold the copies back, axis by axis
            inner = grad
            for axis, ((b, e), n) in enumerate(zip(grow, cropped)):
                if b or e:
                    inner = fold_back(inner, axis, np.pad(np.arange(n), (b, e), mode=mode), n)
        gx = np.zeros(shape, grad.dtype)
        gx[crop] = inner
        return gx, None, gconst, None


@register_op("Tile")
class Tile(Operation):
    """input repeated `repeats[i]` times along each axis i"""

    symbol = "tile"

    @staticmethod
    def forward(ctx, input, repeats):
        reps = ints_of(repeats)
        if len(reps) != input.ndim:
            raise CgError(f"expected one repeat count per axis ({input.ndim}), found {len(reps)}")
        ctx.save(input.shape, reps)
        return np.tile(input, reps)

    @staticmethod
    def backward(ctx, grad):
        shape, reps = ctx
        # axis i of the output is (repeat, element) in row-major order: sum over the repeats
        split = [d for r, n in zip(reps, shape) for d in (r, n)]
        return grad.reshape(split).sum(axis=tuple(range(0, len(split), 2))), None


def elements_index(indices, axis) -> tuple:
    """The numpy index picking, at each position of `indices`, the element that its value names along `axis`
    and its own position along the other axes."""
    index = list(np.indices(indices.shape, sparse=True))
    index[axis] = indices
    return tuple(index)


@register_op("GatherElements")
class GatherElements(Operation):
    """elements of data picked along an axis by an index tensor of the same rank (torch.gather)"""

    symbol = "gather elements"

    @staticmethod
    def forward(ctx, data, indices, *, axis: int = 0):
        axis %= data.ndim
        index = elements_index(np.asarray(indices, np.int64), axis)  # negative indices count from the end
        ctx.save(data.shape, index)
        return data[index]

    @staticmethod
    def backward(ctx, grad):
        shape, index = ctx
        gdata = np.zeros(shape, grad.dtype)
        np.add.at(gdata, index, grad)  # an element picked twice gets both gradients
        return gdata, None


SCATTER_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@register_op("ScatterND")
class ScatterND(Operation):
    """data with the slices that indices' last axis names replaced by (or combined by reduction with) updates"""

    symbol = "scatter"

    @staticmethod
    def forward(ctx, data, indices, updates, *, reduction: Literal["none", "add", "mul", "max", "min"] = "none"):
        index = tuple(np.moveaxis(np.asarray(indices, np.int64), -1, 0))  # one index array per leading axis
        ctx.save(index, reduction)
        return scattered(data, index, updates, reduction)

    @staticmethod
    def backward(ctx, grad):
        return scattered_grads("ScatterND", grad, *ctx)


def scattered(data: np.ndarray, index: tuple, updates: np.ndarray, reduction: str) -> np.ndarray:
    """A copy of data with updates written at index, or combined there by the reduction (each repeat counts)."""
    y = data.copy()
    if reduction == "none":
        y[index] = updates
    else:
        SCATTER_REDUCTIONS[reduction].at(y, index, updates)
    return y


def scattered_grads(op: str, grad: np.ndarray, index: tuple, reduction: str) -> tuple:
    """The gradients of a scatter's data and updates: the data's elements overwritten (reduction none) get
    none, each update the gradient of the element it went to; mul, max and min have none written here."""
    if reduction not in ("none", "add"):
        raise CgError(f"{op} has no gradient for reduction={reduction!r}")
    gdata = grad
    if reduction == "none":  # overwritten elements no longer count
        gdata = grad.copy()
        gdata[index] = 0
    return gdata, None, grad[index]


@register_op("Trilu")
class Trilu(Operation):
    """the upper (or lower) triangle of the last two axes from diagonal k on, zeros elsewhere"""

    symbol = "tri"

    @staticmethod
    def forward(ctx, input, k=None, *, upper: int = 1):
        if input.ndim < 2:
            raise CgError(f"expected a matrix or a batch of them (at least 2 dimensions), found shape "
                          f"{list(input.shape)}")
        triangle = np.triu if upper else np.tril
        k = 0 if k is None else int(np.ravel(k)[0])
        ctx.save(triangle, k)
        return triangle(input, k)

    @staticmethod
    def backward(ctx, grad):
        triangle, k = ctx
        return triangle(grad, k), None
