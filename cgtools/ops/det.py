"""Det: the determinant of each square matrix in the last two axes."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op


@register_op("Det")
class Det(Operation):
    """the determinant of each square matrix (the last two axes)"""

    symbol = "det"

    @staticmethod
    def forward(ctx, X):
        if X.ndim < 2 or X.shape[-1] != X.shape[-2]:
            raise CgError(f"Det needs square matrices in the last two axes, found shape {list(X.shape)}")
        y = np.linalg.det(X)
        ctx.save(X, y)
        return np.asarray(y, X.dtype)

    @staticmethod
    def backward(ctx, grad):
        X, y = ctx
        # ∂det/∂X = det·X⁻ᵀ (Jacobi's formula), for an invertible X
        return ((grad * y)[..., None, None] * np.swapaxes(np.linalg.inv(X), -1, -2)).astype(grad.dtype),
