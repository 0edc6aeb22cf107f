"""Matrix products."""

from __future__ import annotations

import numpy as np

from cgtools.ops.base import Operation, register_op


@register_op("MatMul")
class MatMul(Operation):
    """a @ b (numpy matmul: batched, 1-D operands promoted)"""

    symbol = "@"
    infix = True

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx
        # Work on the promoted 2-D forms, then drop the axes that promotion added.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = grad[..., None]
        if a.ndim == 1:
            grad = grad[..., None, :]
        gb = np.matmul(a2.swapaxes(-1, -2), grad) if ctx.needs_grad[1] else None
        ga = np.matmul(grad, b2.swapaxes(-1, -2)) if ctx.needs_grad[0] else None
        if a.ndim == 1 and ga is not None:
            ga = ga[..., 0, :]
        if b.ndim == 1 and gb is not None:
            gb = gb[..., 0]
        return ga, gb


@register_op("Gemm")
class Gemm(Operation):
    """alpha·A'B' + beta·C, where A' and B' are A and B, transposed if asked"""

    symbol = "Gemm"

    @staticmethod
    def forward(ctx, A, B, C=None, *, alpha: float = 1.0, beta: float = 1.0, transA: int = 0,
                transB: int = 0):
        a = A.T if transA else A
        b = B.T if transB else B
        ctx.save(a, b, alpha, beta, transA, transB)
        y = a @ b
        if alpha != 1.0:
            y = y * alpha
        if C is not None:
            y = y + (C if beta == 1.0 else beta * C)
        return y

    @staticmethod
    def backward(ctx, grad):
        a, b, alpha, beta, transA, transB = ctx
        if alpha != 1.0:
            grad_ab = grad * alpha
        else:
            grad_ab = grad
        ga = gb = None
        if ctx.needs_grad[0]:
            ga = b @ grad_ab.T if transA else grad_ab @ b.T
        if ctx.needs_grad[1]:
            gb = grad_ab.T @ a if transB else a.T @ grad_ab
        gc = (grad if beta == 1.0 else beta * grad) if len(ctx.needs_grad) > 2 and ctx.needs_grad[2] else None
        return ga, gb, gc
