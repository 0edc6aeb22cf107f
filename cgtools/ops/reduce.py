"""Reductions over axes. Axes come as the optional second input (ONNX opset 18) or as the `axes`
attribute (older opsets, and handier in hand-written graphs); no axes means all of them."""

from __future__ import annotations

import numpy as np

from cgtools.ops.base import Operation, register_op


def reduction_axes(x, axes_input, axes_attr, noop_with_empty_axes):
    """The axes to reduce as a tuple, None for all, or () for none at all."""
    axes = axes_attr if axes_input is None else [int(a) for a in np.ravel(axes_input)]
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
    """Shared signature of ReduceSum, ReduceMean and ReduceMax."""

    numpy_reduce = staticmethod(np.sum)

    @classmethod
    def forward(cls, ctx, data, axes_tensor=None, *, axes: list[int] = (), keepdims: int = 1,
                noop_with_empty_axes: int = 0):
        dims = reduction_axes(data, axes_tensor, axes, noop_with_empty_axes)
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

    numpy_reduce = staticmethod(np.sum)


@register_op("ReduceMean")
class ReduceMean(_Reduce):
    """mean over axes"""

    symbol = "mean"

    numpy_reduce = staticmethod(np.mean)

    @staticmethod
    def local_grad(data, y, grad, dims):
        count = data.size // max(y.size, 1) if dims != () else 1
        return np.broadcast_to(grad / count, data.shape)


@register_op("ReduceMax")
class ReduceMax(_Reduce):
    """max over axes (the gradient is split evenly among tied maxima)"""

    symbol = "max"

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims,
                                                                 initial=smallest(x.dtype)))

    @staticmethod
    def local_grad(data, y, grad, dims):
        hits = (data == y).astype(grad.dtype)
        return grad * hits / hits.sum(axis=dims, keepdims=True)
