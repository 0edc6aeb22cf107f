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
        X, _ = ctx
        return (grad[..., None, None] * cofactors(X)).astype(grad.dtype),


def cofactors(X: np.ndarray) -> np.ndarray:
    """∂det/∂X, the cofactor matrix (det·X⁻ᵀ by Jacobi's formula, but defined for singular X too): from the SVD
    X = U·S·Vᵀ it is det(U)·det(Vᵀ)·U·diag(the product of the other singular values)·Vᵀ, with no division."""
    if not np.isfinite(X).all():  # no SVD of an infinity: the gradient is as undefined as the determinant
        return np.full(X.shape, np.nan)
    u, s, vh = np.linalg.svd(X.astype(np.float64))
    ones = np.ones_like(s[..., :1])
    before = np.cumprod(np.concatenate([ones, s[..., :-1]], -1), -1)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(s, -1)[..., :-1]], -1), -1), -1)
    sign = np.linalg.det(u) * np.linalg.det(vh)
    return sign[..., None, None] * ((u * (before * after)[..., None, :]) @ vh)
