"""Reductions along axes: the Reduce* ops, ArgMax, ArgMin, and CumSum (a scan: running sums along an axis).

CumSum sits here as the scan of a sum: it keeps every partial result of the reduction along its axis.

The Reduce* axes come as the optional second input (ONNX opset 18), or as the `axes` attribute (older opsets,
and handier in hand-written graphs: the attribute form of that input); no axes means all of them."""

from __future__ import annotations

import math

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, ints_of, register_op


def reduction_axes(x, axes, noop_with_empty_axes):
    """The axes to reduce as a tuple, None for all, or () for none at all."""
    axes = ints_of(axes)
    if not axes:
        return () if noop_with_empty_axes else None
    return tuple(sorted(a % x.ndim for a in axes))


def smallest(dtype):
    """The max of nothing: what an empty reduction gives (ONNX: -inf, or the type's least value)."""
    return False if dtype.kind == "b" else -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def largest(dtype):
    """The min of nothing."""
    return True if dtype.kind == "b" else np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def restore_kept_axes(grad, shape, axes, keepdims):
    """The gradient of a reduced tensor, reshaped so it broadcasts against the input."""
    if keepdims or axes == ():
        return grad
    kept = list(shape)
    for a in range(len(shape)) if axes is None else axes:
        kept[a] = 1
    return grad.reshape(kept)


class _Reduce(Operation):
    """Shared by the Reduce* ops: forward reduces with numpy_reduce, backward multiplies by local_grad."""

    numpy_reduce = staticmethod(np.sum)
    attribute_forms = {"axes": ("axes", "ints")}

    @classmethod
    def forward(cls, ctx, data, axes=None, *, keepdims: int = 1, noop_with_empty_axes: int = 0):
        dims = reduction_axes(data, axes, noop_with_empty_axes)
        # axis=() reduces nothing, but still applies a composite reduction's elementwise step (|x|, x²), as ONNX says
        y = cls.numpy_reduce(data, axis=dims, keepdims=bool(keepdims))
        y = np.asarray(y, data.dtype)
        ctx.save(data, y, dims, keepdims)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        data, y, dims, keepdims = ctx
        grad = restore_kept_axes(grad, data.shape, dims, keepdims)
        return cls.local_grad(data, restore_kept_axes(y, data.shape, dims, keepdims), grad, dims), None

    @staticmethod
    def local_grad(data, y, grad, dims):
        return np.broadcast_to(grad, data.shape)


@register_op("ReduceSum")
class ReduceSum(_Reduce):
    """Σ over axes"""

    symbol = "Σ"
    local_gradients = ("expand({up})", None)

    numpy_reduce = staticmethod(np.sum)


@register_op("ReduceMean")
class ReduceMean(_Reduce):
    """mean over axes"""

    symbol = "mean"
    local_gradients = ("expand({up})/{n}", None)

    numpy_reduce = staticmethod(np.mean)

    @staticmethod
    def local_grad(data, y, grad, dims):
        count = data.size // max(y.size, 1) if dims != () else 1
        return np.broadcast_to(grad / count, data.shape)


@register_op("ReduceMax")
class ReduceMax(_Reduce):
    """max over axes (the gradient is split evenly among tied maxima)"""

    symbol = "max"
    local_gradients = ("[{data} = {Y}]·expand({up})", None)

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims,
                                                                 initial=smallest(x.dtype)))

    @staticmethod
    def local_grad(data, y, grad, dims):
        hits = (data == y).astype(grad.dtype)
        return grad * hits / hits.sum(axis=dims, keepdims=True)


@register_op("ReduceSumSquare")
class ReduceSumSquare(_Reduce):
    """Σ x² over axes"""

    symbol = "Σx²"
    local_gradients = ("2{data}·expand({up})", None)

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims))

    @staticmethod
    def local_grad(data, y, grad, dims):
        return 2 * grad * data


@register_op("ReduceL1")
class ReduceL1(_Reduce):
    """Σ |x| over axes"""

    symbol = "‖·‖₁"
    local_gradients = ("sign({data})·expand({up})", None)

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims))

    @staticmethod
    def local_grad(data, y, grad, dims):
        return grad * np.sign(data)


@register_op("ReduceL2")
class ReduceL2(_Reduce):
    """√(Σ x²) over axes"""

    symbol = "‖·‖₂"
    local_gradients = ("{data}/{Y}·expand({up})", None)

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)))

    @staticmethod
    def local_grad(data, y, grad, dims):
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero norm passes no gradient (as in torch)
            return np.where(y == 0, 0, grad * data / y)


def log_sum_exp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # initial: an empty set gives -inf
    m = np.where(np.isfinite(m), m, 0)  # shifting by the max keeps exp from overflowing
    with np.errstate(divide="ignore"):
        y = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return y if keepdims else np.squeeze(y, axis)


@register_op("ReduceLogSumExp")
class ReduceLogSumExp(_Reduce):
    """ln Σ e^x over axes"""

    symbol = "logsumexp"
    local_gradients = ("exp({data} − {Y})·expand({up})", None)

    numpy_reduce = staticmethod(log_sum_exp)

    @staticmethod
    def local_grad(data, y, grad, dims):
        return grad * np.exp(data - y)  # the softmax of data along the axes


@register_op("ReduceMin")
class ReduceMin(_Reduce):
    """min over axes (the gradient is split evenly among tied minima)"""

    symbol = "min"
    local_gradients = ("[{data} = {Y}]·expand({up})", None)

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims,
                                                                 initial=largest(x.dtype)))
    local_grad = staticmethod(ReduceMax.local_grad)


def product_of_others(x, dims):
    """For each element, the product of the other elements of its reduced group: exact where x has zeros,
    unlike y / x. Moves the reduced axes last, then multiplies the running products from both ends."""
    dims = tuple(range(x.ndim)) if dims is None else dims
    last = range(x.ndim - len(dims), x.ndim)
    moved = np.moveaxis(x, dims, last)
    flat = moved.reshape(moved.shape[:last.start] + (math.prod(moved.shape[last.start:]),))
    ones = np.ones_like(flat[..., :1])
    before = np.cumprod(np.concatenate([ones, flat[..., :-1]], -1), -1)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(flat[..., 1:], -1)], -1), -1), -1)
    return np.moveaxis((before * after).reshape(moved.shape), last, dims)


@register_op("ReduceProd")
class ReduceProd(_Reduce):
    """Π over axes"""

    symbol = "Π"
    local_gradients = ("{Y}/{data}·expand({up})", None)

    numpy_reduce = staticmethod(np.prod)

    @staticmethod
    def local_grad(data, y, grad, dims):
        return grad * product_of_others(data, dims)


# ---- arg-extrema ---------------------------------------------------------------------------------------


class _ArgExtremum(Operation):
    """Shared by ArgMax and ArgMin: int64 indices along an axis, the first of ties or the last; no gradient."""

    pick = staticmethod(np.argmax)

    @classmethod
    def forward(cls, ctx, data, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0):
        axis %= max(data.ndim, 1)
        if select_last_index:
            i = data.shape[axis] - 1 - cls.pick(np.flip(data, axis), axis=axis, keepdims=bool(keepdims))
        else:
            i = cls.pick(data, axis=axis, keepdims=bool(keepdims))
        return np.asarray(i, np.int64)


@register_op("ArgMax")
class ArgMax(_ArgExtremum):
    """the index of the largest element along an axis"""

    symbol = "argmax"

    pick = staticmethod(np.argmax)


@register_op("ArgMin")
class ArgMin(_ArgExtremum):
    """the index of the smallest element along an axis"""

    symbol = "argmin"

    pick = staticmethod(np.argmin)


# ---- the scan: running sums ----------------------------------------------------------------------------



def cumsum(x, axis, exclusive, reverse):
    if reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:  # each element leaves itself out: the sums move one along, a zero comes first
        head = (slice(None),) * axis
        y = np.concatenate([np.zeros_like(y[head + (slice(0, 1),)]), y[head + (slice(0, -1),)]], axis)
    return np.flip(y, axis) if reverse else y


def running_axis(x: np.ndarray, axis) -> int:
    """The axis a running sum or product goes along, from its input `axis`; x needs one (numpy would flatten a
    scalar into a vector)."""
    if x.ndim == 0:
        raise CgError("expected x of at least one dimension, found a scalar")
    axis = np.asarray(axis)
    if axis.dtype.kind not in "iu" or axis.size != 1:
        raise CgError(f"expected an axis that is one integer, found {axis.dtype}{list(axis.shape)}")
    return int(axis.ravel()[0]) % x.ndim


@register_op("CumSum")
class CumSum(Operation):
    """running sums of x along an axis (exclusive: each leaves itself out; reverse: from the end)"""

    symbol = "cumsum"

    @staticmethod
    def forward(ctx, x, axis, *, exclusive: int = 0, reverse: int = 0):
        axis = running_axis(x, axis)
        ctx.save(axis, exclusive, reverse)
        return cumsum(x, axis, exclusive, reverse)

    @staticmethod
    def backward(ctx, grad):
        axis, exclusive, reverse = ctx
        return cumsum(grad, axis, exclusive, not reverse), None  # each x feeds the sums after it (or before)
