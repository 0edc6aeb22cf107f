"""Ops that pick, place and find elements by index: TopK, ScatterElements (and its old name Scatter), GatherND,
OneHot, NonZero, Compress, ReverseSequence, Unique.

Their gradients carry each picked element's gradient back to where it came from; the ops that only compute
indices (NonZero, Unique) have none."""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import NoGradient, Operation, ints_of, register_op
from cgtools.ops.slicing import along, elements_index, scattered, scattered_grads


@register_op("TopK")
class TopK(Operation):
    """the k largest (or smallest) elements along an axis, and their indices; ties go to the lower index"""

    symbol = "top k"
    outputs = ("Values", "Indices")

    attribute_forms = {"k": ("K", "int")}  # an input since opset 10

    @staticmethod
    def forward(ctx, X, K=None, *, axis: int = -1, largest: int = 1, sorted: int = 1):  # noqa: A002 - ONNX's name
        k = ints_of(K)
        if len(k) != 1:
            raise CgError(f"TopK needs one k (input K, or in opsets before 10 attribute 'k'), found {k}")
        axis %= max(X.ndim, 1)
        if not 0 <= k[0] <= X.shape[axis]:
            raise CgError(f"TopK cannot take k={k[0]} elements of an axis of length {X.shape[axis]}")
        # a stable sort keeps tied elements in index order; negating (not flipping) keeps that for largest
        order = np.argsort(descending_key(X) if largest else X, axis=axis, kind="stable")
        indices = np.take(order, np.arange(k[0]), axis=axis).astype(np.int64)
        ctx.save(X.shape, indices, axis)
        return np.take_along_axis(X, indices, axis=axis), indices

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        shape, indices, axis = ctx
        if grad is None:  # only Indices is used downstream
            return None, None
        gx = np.zeros(shape, grad.dtype)
        np.put_along_axis(gx, indices, grad, axis=axis)  # each element is picked at most once
        return gx, None


@register_op("ScatterElements")
class ScatterElements(Operation):
    """data with elements along an axis replaced by updates or combined (add, mul, max, min); gradient for none, add

    torch.scatter and scatter_reduce; the index tensor and updates have the same shape."""

    symbol = "scatter elements"

    @staticmethod
    def forward(ctx, data, indices, updates, *, axis: int = 0,
                reduction: Literal["none", "add", "mul", "max", "min"] = "none"):
        if np.shape(indices) != updates.shape:
            raise CgError(f"expected updates of the indices' shape {list(np.shape(indices))}, found "
                          f"{list(updates.shape)}")
        index = elements_index(np.asarray(indices, np.int64), axis % data.ndim)
        ctx.save(index, reduction)
        return scattered(data, index, updates, reduction)

    @staticmethod
    def backward(ctx, grad):
        return scattered_grads("ScatterElements", grad, *ctx)


@register_op("Scatter")
class Scatter(ScatterElements):
    """ScatterElements under its name before opset 11: data with elements replaced by updates along an axis"""

    symbol = "scatter elements"

    @staticmethod
    def forward(ctx, data, indices, updates, *, axis: int = 0):
        return ScatterElements.forward(ctx, data, indices, updates, axis=axis)


def nd_index(data_shape, indices, batch_dims: int) -> tuple:
    """The numpy index of GatherND on data reshaped to (batch, *rest): the batch position, then one index
    array per axis that indices' last axis names."""
    b = int(np.prod(data_shape[:batch_dims], dtype=np.int64))
    idx = np.asarray(indices, np.int64).reshape((b, *indices.shape[batch_dims:]))
    batch = np.arange(b).reshape((b,) + (1,) * (idx.ndim - 2))
    return (batch, *np.moveaxis(idx, -1, 0))


@register_op("GatherND")
class GatherND(Operation):
    """the slices of data that the last axis of indices names (after batch_dims shared leading axes)"""

    symbol = "gather nd"

    @staticmethod
    def forward(ctx, data, indices, *, batch_dims: int = 0):
        indices = np.asarray(indices)
        k = indices.shape[-1] if indices.ndim else 0
        if indices.ndim < 1 or batch_dims + k > data.ndim or indices.shape[:batch_dims] != data.shape[:batch_dims]:
            raise CgError(f"GatherND cannot index data of shape {list(data.shape)} with indices of shape "
                          f"{list(indices.shape)} and batch_dims={batch_dims}")
        flat = data.reshape((-1, *data.shape[batch_dims:]))
        index = nd_index(data.shape, indices, batch_dims)
        ctx.save(flat.shape, data.shape, index)
        return flat[index].reshape(data.shape[:batch_dims] + indices.shape[batch_dims:-1]
                                   + data.shape[batch_dims + k:])

    @staticmethod
    def backward(ctx, grad):
        flat_shape, shape, index = ctx
        g = np.zeros(flat_shape, grad.dtype)
        np.add.at(g, index, grad.reshape(np.broadcast_shapes(*(np.shape(i) for i in index)) + flat_shape[len(index):]))
        return g.reshape(shape), None


@register_op("OneHot")
class OneHot(Operation):
    """values[1] where an index points, values[0] elsewhere, along a new axis of length depth"""

    symbol = "one hot"

    @staticmethod
    def forward(ctx, indices, depth, values, *, axis: int = -1):
        n = int(np.ravel(depth)[0])
        if np.size(values) != 2:
            raise CgError(f"OneHot needs values [off, on], found {np.size(values)} values")
        axis %= np.ndim(indices) + 1
        i = np.asarray(indices).astype(np.int64)
        i = np.where(i < 0, i + n, i)  # out-of-range indices stay all off
        hot = np.moveaxis(i[..., None] == np.arange(n), -1, axis)
        ctx.save(hot)
        off, on = np.ravel(values)
        return np.where(hot, on, off).astype(values.dtype)

    @staticmethod
    def backward(ctx, grad):
        (hot,) = ctx
        on = grad[hot].sum()
        return None, None, np.array([grad.sum() - on, on], grad.dtype)


@register_op("NonZero")
class NonZero(Operation):
    """the indices of the nonzero elements, one row per axis, in row-major order; no gradient"""

    symbol = "nonzero"

    @staticmethod
    def forward(ctx, X):
        return np.array(np.nonzero(X) if np.ndim(X) else np.nonzero(np.atleast_1d(X))[:0], np.int64)


@register_op("Compress")
class Compress(Operation):
    """the slices along an axis (of the flattened input without one) where condition is true"""

    symbol = "compress"

    @staticmethod
    def forward(ctx, input, condition, *, axis: int = None):  # noqa: A002 - ONNX's name
        x = input.ravel() if axis is None else input
        axis = 0 if axis is None else axis % input.ndim
        keep = np.flatnonzero(np.ravel(condition))
        if keep.size and keep[-1] >= x.shape[axis]:
            raise CgError(f"Compress's condition selects position {keep[-1]} of an axis of length {x.shape[axis]}")
        ctx.save(input.shape, x.shape, axis, keep)
        return np.take(x, keep, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        shape, x_shape, axis, keep = ctx
        gx = np.zeros(x_shape, grad.dtype)
        gx[along(axis, keep)] = grad
        return gx.reshape(shape), None


def reversed_positions(lengths, n: int, time_axis: int, batch_axis: int, ndim: int):
    """For each (time, batch), the time position ReverseSequence reads: the first lengths[b] reversed."""
    t = np.arange(n)[:, None]
    source = np.where(t < lengths, lengths - 1 - t, t)  # (time, batch)
    if time_axis > batch_axis:
        source = source.T
    shape = [1] * ndim
    shape[time_axis], shape[batch_axis] = n, len(lengths)
    return source.reshape(shape)


@register_op("ReverseSequence")
class ReverseSequence(Operation):
    """each batch entry with its first sequence_lens[b] elements along the time axis reversed"""

    symbol = "reverse seq"

    @staticmethod
    def forward(ctx, input, sequence_lens, *, batch_axis: int = 1, time_axis: int = 0):  # noqa: A002
        lengths = np.asarray(ints_of(sequence_lens))
        if {batch_axis, time_axis} != {0, 1} or len(lengths) != input.shape[batch_axis]:
            raise CgError(f"ReverseSequence needs batch_axis and time_axis 0 and 1 and one length per batch "
                          f"entry ({input.shape[batch_axis]}), found axes {batch_axis}, {time_axis} and "
                          f"{len(lengths)} lengths")
        source = reversed_positions(lengths, input.shape[time_axis], time_axis, batch_axis, input.ndim)
        index = np.broadcast_to(source, input.shape)
        ctx.save(index, time_axis)
        return np.take_along_axis(input, index, axis=time_axis)

    @staticmethod
    def backward(ctx, grad):
        index, time_axis = ctx
        gx = np.empty_like(grad)
        np.put_along_axis(gx, index, grad, axis=time_axis)  # a permutation: every element read exactly once
        return gx, None


@register_op("Unique")
class Unique(NoGradient):  # as torch.unique: the distinct values pass nothing back
    """the distinct elements (or slices along an axis), their first places, inverse and counts; no gradient

    Sorted, or in order of first appearance; backward passes zero to the input."""

    symbol = "unique"
    outputs = ("Y", "indices", "inverse_indices", "counts")

    @staticmethod
    def forward(ctx, X, *, axis: int = None, sorted: int = 1):  # noqa: A002 - ONNX's name
        x = X.ravel() if axis is None else X
        axis = 0 if axis is None else axis % X.ndim
        _, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True,
                                              axis=axis)
        inverse = inverse.ravel()
        if not sorted:  # in order of first appearance
            order = np.argsort(first)
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            first, inverse, counts = first[order], rank[inverse], counts[order]
        return tuple(np.asarray(v, np.int64) if k else np.take(x, first, axis=axis)
                     for k, v in enumerate((None, first, inverse, counts)))


def descending_key(x: np.ndarray) -> np.ndarray:
    """Keys whose ascending order is `x`'s descending one: -x for floats; for integers ~x (-x - 1, or max - x
    when unsigned), as -x wraps for unsigned ones and for the most negative signed one."""
    return ~x if x.dtype.kind in "iu" else -x
