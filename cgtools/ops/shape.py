"""Ops that move elements around without changing them: their gradients move them back."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, ints_of, register_op


class _Rearrange(Operation):
    """Shared backward of the ops that only change the shape: reshape the gradient back."""

    @staticmethod
    def backward(ctx, grad):
        return (grad.reshape(ctx[0]),) + (None,) * (len(ctx.needs_grad) - 1)


@register_op("Reshape")
class Reshape(_Rearrange):
    """data with a new shape (0 copies the input's dimension, -1 is inferred)"""

    symbol = "reshape"
    local_gradients = ("reshape({up})", None)

    @staticmethod
    def forward(ctx, data, shape, *, allowzero: int = 0):
        dims = ints_of(shape)
        if not allowzero:
            dims = [data.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        ctx.append(data.shape)
        return data.reshape(dims)


@register_op("Flatten")
class Flatten(_Rearrange):
    """data as a matrix: the axes before `axis` make the rows, the rest the columns"""

    symbol = "flatten"
    local_gradients = ("reshape({up})",)

    @staticmethod
    def forward(ctx, data, *, axis: int = 1):
        ctx.append(data.shape)
        if axis < 0:  # ONNX allows [-r, r]; -1 counts from the end (a plain `% (r + 1)` would map it to r)
            axis += data.ndim
        rows = int(np.prod(data.shape[:axis]))
        return data.reshape(rows, -1 if data.size else int(np.prod(data.shape[axis:])))


@register_op("Squeeze")
class Squeeze(_Rearrange):
    """data without the given axes of length 1 (all of them when none are given)"""

    symbol = "squeeze"
    local_gradients = ("reshape({up})", None)

    attribute_forms = {"axes": ("axes", "ints")}  # an input since opset 13

    @staticmethod
    def forward(ctx, data, axes=None):
        ctx.append(data.shape)
        dims = ints_of(axes)
        return np.squeeze(data, axis=tuple(dims) if dims else None)


@register_op("Unsqueeze")
class Unsqueeze(_Rearrange):
    """data with new axes of length 1 inserted at the given positions"""

    symbol = "unsqueeze"
    local_gradients = ("reshape({up})", None)

    attribute_forms = {"axes": ("axes", "ints")}  # an input since opset 13

    @staticmethod
    def forward(ctx, data, axes=None):
        dims = ints_of(axes)
        if not dims:
            raise CgError("Unsqueeze needs axes, as its second input or as the attribute 'axes'")
        ctx.append(data.shape)
        return np.expand_dims(data, tuple(dims))


@register_op("Transpose")
class Transpose(Operation):
    """data with its axes permuted (reversed when no perm is given)"""

    symbol = "(·)ᵀ"
    local_gradients = ("transpose({up})",)

    @staticmethod
    def forward(ctx, data, *, perm: list[int] = ()):
        order = tuple(perm) if perm else tuple(reversed(range(data.ndim)))
        ctx.append(order)
        return data.transpose(order)  # the method: np.transpose's wrapper costs more than the view

    @staticmethod
    def backward(ctx, grad):
        order = ctx[0]
        return (grad.transpose(sorted(range(len(order)), key=order.__getitem__)),)  # the inverse permutation


@register_op("Concat")
class Concat(Operation):
    """the inputs joined along an axis"""

    symbol = "concat"
    local_gradients = ("slice({up})",)

    @staticmethod
    def forward(ctx, *inputs, axis: int):
        rank = inputs[0].ndim
        if not -rank <= axis < rank or any(x.ndim != rank for x in inputs):
            raise CgError(f"expected inputs of one rank, at least 1, and axis in [{-rank}, {rank - 1}]; found axis "
                          f"{axis} and shapes {', '.join(str(list(x.shape)) for x in inputs)}")
        ctx.save(axis, [x.shape[axis] for x in inputs])
        return np.concatenate(inputs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        axis, sizes = ctx
        return np.split(grad, np.cumsum(sizes)[:-1], axis=axis)


@register_op("Gather")
class Gather(Operation):
    """slices of data picked by integer indices along an axis (an embedding lookup on axis 0)"""

    symbol = "gather"
    local_gradients = ("scatter-add({up})", None)

    @staticmethod
    def forward(ctx, data, indices, *, axis: int = 0):
        axis %= data.ndim
        indices = np.asarray(indices, np.int64)
        ctx.save(data.shape, indices, axis)
        return np.take(data, indices, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        shape, indices, axis = ctx
        gdata = np.zeros(shape, grad.dtype)
        where = (slice(None),) * axis + (indices % max(shape[axis], 1),)
        if indices.size <= 1 or np.bincount(where[-1].ravel(), minlength=shape[axis]).max() <= 1:
            gdata[where] = grad  # each slice picked once (q, k and v out of one tensor): placed, not added
        else:  # scatter-add: an index picked twice receives both gradients
            np.add.at(gdata, where, grad)
        return gdata, None
