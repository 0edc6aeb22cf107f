"""Sequences and optionals, as ONNX has them: a sequence is a Python list of arrays in a slot, an optional its
value or None (an empty one).

A sequence's gradient is one gradient per element (gradients.ElementGrads, None where an element gets none):
the ops that move elements move their gradients back the same way."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.gradients import ElementGrads
from cgtools.ops.base import Operation, Subgraph, ints_of, register_op
from cgtools.ops.control import body_feeds, gathered, outer_values, own_inputs, replay, run_body


def sequence_of(value) -> list:
    """`value`, checked to be a sequence: a tensor where a sequence belongs is refused, not indexed."""
    if not isinstance(value, list):
        found = f"a tensor {value.dtype}{list(value.shape)}" if isinstance(value, np.ndarray) else "nothing"
        raise CgError(f"expected a sequence of tensors, found {found}")
    return value


def position_in(seq: list, position, *, insert: bool = False) -> int:
    """An ONNX position (negative from the end; for an insert, the length appends) as a list index."""
    n = len(sequence_of(seq))
    if np.asarray(position).dtype.kind not in "iu" or np.size(position) != 1:
        raise CgError(f"expected a position that is one integer, found {np.asarray(position).dtype}"
                      f"{list(np.shape(position))}")
    k = int(np.ravel(position)[0])
    if not -n <= k < n + insert:
        raise CgError(f"position {k} is out of range for a sequence of {n} tensors")
    return k + n if k < 0 else k


def zeros_for(grads, like: list) -> list:
    """Per-element gradients with zeros where an element got none (an element nobody read)."""
    grads = grads if grads is not None else [None] * len(like)
    return [np.zeros_like(v) if g is None else g for g, v in zip(grads, like)]


@register_op("SequenceConstruct")
class SequenceConstruct(Operation):
    """the sequence of the inputs, in order"""

    symbol = "[…]"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, *inputs):
        if len({np.asarray(v).dtype for v in inputs}) > 1:
            raise CgError("a sequence holds tensors of one dtype, found " + ", ".join(str(v.dtype) for v in inputs))
        return list(inputs)

    @staticmethod
    def backward(ctx, grad):
        return tuple(grad)


@register_op("SequenceEmpty")
class SequenceEmpty(Operation):
    """an empty sequence (of tensors of the ONNX type `dtype`); no gradient"""

    symbol = "[]"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, *, dtype: int = 1):
        return []


@register_op("SequenceLength")
class SequenceLength(Operation):
    """the number of tensors in the sequence, an int64 scalar; no gradient"""

    symbol = "len"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input_sequence):
        return np.array(len(sequence_of(input_sequence)), np.int64)


@register_op("SequenceAt")
class SequenceAt(Operation):
    """the tensor at `position` (negative from the end)"""

    symbol = "[i]"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input_sequence, position):
        k = position_in(input_sequence, position)
        ctx.save(len(input_sequence), k)
        return input_sequence[k]

    @staticmethod
    def backward(ctx, grad):
        n, k = ctx
        return ElementGrads(grad if i == k else None for i in range(n)), None


@register_op("SequenceInsert")
class SequenceInsert(Operation):
    """the sequence with `tensor` inserted at `position` (by default appended)"""

    symbol = "insert"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input_sequence, tensor, position=None):
        k = len(sequence_of(input_sequence)) if position is None else position_in(input_sequence, position, insert=True)
        if not isinstance(tensor, np.ndarray):
            raise CgError("expected a tensor to insert, found a sequence")
        if input_sequence and input_sequence[0].dtype != tensor.dtype:
            raise CgError(f"cannot insert a {tensor.dtype} tensor into a sequence of {input_sequence[0].dtype}")
        ctx.save(k)
        return [*input_sequence[:k], tensor, *input_sequence[k:]]

    @staticmethod
    def backward(ctx, grad):
        (k,) = ctx
        return ElementGrads([*grad[:k], *grad[k + 1:]]), grad[k], None


@register_op("SequenceErase")
class SequenceErase(Operation):
    """the sequence without the tensor at `position` (by default the last)"""

    symbol = "erase"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input_sequence, position=None):
        k = position_in(input_sequence, -1 if position is None else position)
        ctx.save(k)
        return [*input_sequence[:k], *input_sequence[k + 1:]]

    @staticmethod
    def backward(ctx, grad):
        (k,) = ctx
        return ElementGrads([*grad[:k], None, *grad[k:]]), None


@register_op("SplitToSequence")
class SplitToSequence(Operation):
    """input cut along an axis into a sequence: parts of the sizes `split` (a scalar: parts of that size, the
    last smaller), or without split one part per element, its axis dropped unless keepdims"""

    symbol = "split"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input, split=None, *, axis: int = 0, keepdims: int = 1):
        axis %= input.ndim
        n = input.shape[axis]
        sizes = ints_of(split)
        if split is not None and np.ndim(split) == 0:
            sizes = [sizes[0]] * (n // sizes[0]) + [n % sizes[0]] * (n % sizes[0] > 0)
        if sum(sizes or [n]) != n or min(sizes or [1]) <= 0:
            raise CgError(f"cannot split an axis of length {n} into parts of sizes {sizes}")
        parts = np.split(input, np.cumsum(sizes)[:-1] if sizes else n, axis=axis)
        squeeze = split is None and not keepdims
        parts = [np.squeeze(p, axis) if squeeze else p for p in parts]
        ctx.save(axis, squeeze, parts)
        return parts

    @staticmethod
    def backward(ctx, grad):
        axis, squeeze, parts = ctx
        return (np.stack if squeeze else np.concatenate)(zeros_for(grad, parts), axis=axis), None


@register_op("ConcatFromSequence")
class ConcatFromSequence(Operation):
    """the sequence's tensors joined along `axis`, or stacked along a new axis there when new_axis is 1"""

    symbol = "concat"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input_sequence, *, axis: int, new_axis: int = 0):
        if not sequence_of(input_sequence):
            raise CgError("cannot concatenate an empty sequence")
        rank = input_sequence[0].ndim + new_axis
        if not rank or not -rank <= axis < rank:
            raise CgError(f"axis {axis} is out of range for tensors of {input_sequence[0].ndim} dimensions"
                          + (" (stacked on a new one)" if new_axis else ""))
        axis %= rank
        shapes = {v.shape if new_axis else v.shape[:axis] + v.shape[axis + 1:] for v in input_sequence}
        if len(shapes) > 1 or len({v.ndim for v in input_sequence}) > 1:
            raise CgError(f"cannot {'stack' if new_axis else 'concatenate'} tensors of shapes "
                          f"{[list(v.shape) for v in input_sequence]} along axis {axis}")
        ctx.save(axis, new_axis, np.cumsum([v.shape[axis] for v in input_sequence])[:-1] if not new_axis else None)
        return (np.stack if new_axis else np.concatenate)(input_sequence, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        axis, new_axis, bounds = ctx
        if new_axis:
            return (ElementGrads(np.moveaxis(grad, axis, 0)),)
        return (ElementGrads(np.split(grad, bounds, axis=axis)),)


@register_op("SequenceMap")
class SequenceMap(Operation):
    """body run on each element of the input sequences (a tensor input is given whole each time): the
    sequences of its outputs"""

    symbol = "map"
    outputs = ("out_sequence…",)
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input_sequence, *inputs, body: Subgraph):
        outer = outer_values((body,), inputs)
        given = [sequence_of(input_sequence), *inputs[:len(inputs) - len(outer)]]
        lengths = {len(v) for v in given if type(v) is list}
        if len(lengths) > 1:
            raise CgError(f"SequenceMap's sequences differ in length: {sorted(lengths)}")
        names = own_inputs(body)
        outs, kept_feeds = [[] for _ in body.outputs], []
        for i in range(lengths.pop()):
            kept_feeds.append(body_feeds(body, dict(zip(names, [v[i] if type(v) is list else v for v in given]),
                                                    **outer)))
            for kept, value in zip(outs, run_body(body, kept_feeds[-1])):
                kept.append(value)
        ctx.save(body, kept_feeds, names[:len(given)], [type(v) is list for v in given], list(outer))
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        """Each element's run replayed: a sequence input gets its element's gradient, a tensor input (given
        whole each time) and the enclosing graph's tensors the sum over the elements."""
        body, kept_feeds, names, is_sequence, outer_names = ctx
        per_element = [replay(body, feeds, [None if g is None else g[i] for g in grads])
                       for i, feeds in enumerate(kept_feeds)]
        whole = [name for name, seq in zip(names, is_sequence) if not seq] + outer_names
        summed = ElementGrads([None] * len(whole))
        for got in per_element:
            summed = summed + gathered(got, whole)
        summed = dict(zip(whole, summed))
        return (*(ElementGrads(got.get(name) for got in per_element) if seq else summed[name]
                  for name, seq in zip(names, is_sequence)), *(summed[name] for name in outer_names))


@register_op("Optional")
class Optional(Operation):
    """an optional holding the input, or an empty one (of the type `type`) without it"""

    symbol = "opt"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input=None, *, type: str = ""):
        return input

    @staticmethod
    def backward(ctx, grad):
        return (grad,)


@register_op("OptionalHasElement")
class OptionalHasElement(Operation):
    """whether the optional holds a value (a bool scalar); no gradient"""

    symbol = "has?"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input=None):
        return np.array(input is not None)


@register_op("OptionalGetElement")
class OptionalGetElement(Operation):
    """the value an optional holds (a tensor or a sequence is its own value)"""

    symbol = "get"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, input):
        if input is None:
            raise CgError("OptionalGetElement of an empty optional")
        return input

    @staticmethod
    def backward(ctx, grad):
        return (grad,)
