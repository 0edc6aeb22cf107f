"""Gradients fitted to their tensors: what broadcasting stretched is summed back, the dtype is the tensor's."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError


class ElementGrads(list):
    """The gradient of a sequence: one per element (None for none), added element by element."""

    def __add__(self, other):
        return ElementGrads(b if a is None else a if b is None else a + b for a, b in zip(self, other))


def fitted(grad, x: np.ndarray, place: str = "") -> np.ndarray:
    """A gradient made an array of its input's shape (summing what broadcasting stretched) and dtype; a
    sequence's gradient fitted element by element."""
    if type(x) is list:
        return ElementGrads(None if g is None else fitted(g, v, place) for g, v in zip(grad, x))
    grad = np.asarray(grad)
    if grad.shape != x.shape:
        grad = unbroadcast(grad, x.shape, place)
    return grad if grad.dtype == x.dtype else grad.astype(x.dtype)


def unbroadcast(grad: np.ndarray, shape: tuple, place: str = "") -> np.ndarray:
    """Sum a gradient over the axes broadcasting added or stretched, so it has the input's shape."""
    extra = grad.ndim - len(shape)
    try:
        if extra < 0:
            return np.broadcast_to(grad, shape)
        stretched = tuple(extra + a for a, n in enumerate(shape) if n == 1 and grad.shape[extra + a] != 1)
        return np.add.reduce(grad, axis=tuple(range(extra)) + stretched, keepdims=True).reshape(shape)
    except ValueError:
        raise CgError(f"backward gave a gradient of shape {list(grad.shape)} for an input of shape "
                      f"{list(shape)}", where=place) from None
