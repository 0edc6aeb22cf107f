"""Linear algebra: matrix products (MatMul, Gemm) and Einstein summation (Einsum)."""

from __future__ import annotations

import string

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op


@register_op("MatMul")
class MatMul(Operation):
    """a @ b (numpy matmul: batched, 1-D operands promoted)"""

    symbol = "@"
    infix = True
    local_gradients = ("{up}·{b}ᵀ", "{a}ᵀ·{up}")

    @staticmethod
    def forward(ctx, a, b):
        ctx.save(a, b)
        if stacked_by_matrix(a, b):  # one product of all rows: numpy would make one per matrix of the stack
            return np.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[-1])
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx
        if stacked_by_matrix(a, b):  # b's gradient in one product, not a stack of them summed
            rows = grad.reshape(-1, grad.shape[-1])
            ga = np.matmul(rows, b.T).reshape(a.shape) if ctx.needs_grad[0] else None
            gb = product(a.reshape(-1, a.shape[-1]).T, rows) if ctx.needs_grad[1] else None
            return ga, gb
        # Work on the promoted 2-D forms, then drop the axes that promotion added.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            grad = grad[..., None]
        if a.ndim == 1:
            grad = grad[..., None, :]
        times = product if a2.ndim == b2.ndim == 2 else np.matmul
        gb = times(a2.swapaxes(-1, -2), grad) if ctx.needs_grad[1] else None
        ga = times(grad, b2.swapaxes(-1, -2)) if ctx.needs_grad[0] else None
        if a.ndim == 1 and ga is not None:
            ga = ga[..., 0, :]
        if b.ndim == 1 and gb is not None:
            gb = gb[..., 0]
        return ga, gb


def product(a, b):
    """a @ b of matrices; an outer product (a weight's gradient at batch 1) as one broadcast multiply, ten
    times faster than the BLAS's matrix product with an inner dimension of 1."""
    return np.multiply(a, b) if a.shape[1] == 1 else a @ b


def broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def stacked_by_matrix(a, b) -> bool:
    """A stack of matrices times one matrix (a Linear layer on a sequence or an image)."""
    return a.ndim > 2 and b.ndim == 2


@register_op("Gemm")
class Gemm(Operation):
    """alpha·A'B' + beta·C, where A' and B' are A and B, transposed if asked"""

    symbol = "Gemm"
    local_gradients = ("{up}·{B}ᵀ", "{A}ᵀ·{up}", "{beta}")

    @classmethod
    def local_gradient(cls, slot, terms, constants):
        """With A', B' (transposed if asked) and alpha written: ∂L/∂A' = α·∂L/∂Y·B'ᵀ, ∂L/∂B' = α·A'ᵀ·∂L/∂Y."""
        if slot == 2:
            return terms["beta"]
        flipped = {n: terms["trans" + n] == "1" for n in "AB"}

        def primed(n: str, transposed: bool = False) -> str:  # A' or A'ᵀ, as A or Aᵀ
            return terms[n] + ("ᵀ" if flipped[n] != transposed else "")

        if slot == 0:
            product = primed("B") + "·{up}ᵀ" if flipped["A"] else "{up}·" + primed("B", True)
        else:
            product = "{up}ᵀ·" + primed("A") if flipped["B"] else primed("A", True) + "·{up}"
        return product if terms["alpha"] == "1" else f"{terms['alpha']}·{product}"

    @staticmethod
    def forward(ctx, A, B, C=None, *, alpha: float = 1.0, beta: float = 1.0, transA: int = 0,
                transB: int = 0):
        if A.ndim != 2 or B.ndim != 2:
            raise CgError(f"Gemm multiplies matrices: expected A and B of 2 dimensions, found A of shape "
                          f"{list(A.shape)} and B of shape {list(B.shape)} (MatMul takes other ranks)")
        a = A.T if transA else A
        b = B.T if transB else B
        ctx.save(a, b, alpha, beta, transA, transB)
        y = a @ b
        if alpha != 1.0:
            y = y * alpha
        if C is not None:
            if not broadcasts_to(C.shape, y.shape):
                raise CgError(f"expected C to broadcast to the product's shape {list(y.shape)}, found C of shape "
                              f"{list(C.shape)}")
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
            ga = product(b, grad_ab.T) if transA else product(grad_ab, b.T)
        if ctx.needs_grad[1]:
            gb = product(grad_ab.T, a) if transB else product(a.T, grad_ab)
        gc = (grad if beta == 1.0 else beta * grad) if len(ctx.needs_grad) > 2 and ctx.needs_grad[2] else None
        return ga, gb, gc


def einsum_terms(equation: str, arrays) -> tuple[list[str], str]:
    """The input terms and the output term of an equation, made explicit: each ellipsis spelt out as letters
    of its own (right-aligned, as broadcasting aligns), and the implicit output (the letters used once, in
    ASCII order, after the ellipsis) written out."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(arrays):
        raise CgError(f"the equation {equation!r} has {len(terms)} terms for {len(arrays)} inputs")
    spare = [c for c in string.ascii_letters if c not in equation]
    ranks = [x.ndim - (len(t) - 3) for t, x in zip(terms, arrays) if "..." in t]
    dots = "".join(spare[:max(ranks, default=0)])
    if not arrow:
        letters = "".join(terms).replace(".", "")
        rhs = "..." * bool(ranks) + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    terms = [t.replace("...", dots[len(dots) - (x.ndim - (len(t) - 3)):]) for t, x in zip(terms, arrays)]
    return terms, rhs.replace("...", dots)


def letter_sizes(equation: str, terms: list[str], arrays) -> dict[str, int]:
    """The length each letter stands for: the same on every axis it labels, but where broadcasting stretches a 1
    (numpy lets an empty diagonal of unequal lengths through)."""
    sizes = {}
    for term, x in zip(terms, arrays):
        for c, n in zip(term, x.shape):
            known = sizes.get(c, 1)
            if n != known and 1 not in (n, known):
                raise CgError(f"the letter {c!r} of the equation {equation!r} labels axes of lengths {known} and {n}")
            sizes[c] = n if known == 1 else known
    return sizes


@register_op("Einsum")
class Einsum(Operation):
    """Einstein summation over the inputs, as the equation says ("ij,jk->ik" is a matrix product)"""

    symbol = "einsum"

    @staticmethod
    def forward(ctx, *inputs, equation: str):
        terms, out = einsum_terms(equation, inputs)
        y = np.asarray(np.einsum(",".join(terms) + "->" + out, *inputs))
        ctx.save(terms, out, inputs, letter_sizes(equation, terms, inputs))
        return y

    @staticmethod
    def backward(ctx, grad):
        terms, out, inputs, sizes = ctx
        grads = []
        for k, (term, x) in enumerate(zip(terms, inputs)):
            if not ctx.needs_grad[k]:
                grads.append(None)
                continue
            # ∂out/∂x: the einsum of the upstream gradient with every other input, onto x's letters
            others = terms[:k] + terms[k + 1:]
            letters = "".join(dict.fromkeys(term))  # a repeated letter (a diagonal) once
            known = set(out).union(*others)
            kept = "".join(c for c in letters if c in known)
            g = np.einsum(",".join([out, *others]) + "->" + kept, grad, *inputs[:k], *inputs[k + 1:])
            # letters only x has were summed over: every element along them gets the same gradient
            g = np.expand_dims(g, [i for i, c in enumerate(letters) if c not in known])
            g = np.broadcast_to(g, [sizes[c] for c in letters])
            if letters != term:  # a diagonal: the gradient goes onto it, zero elsewhere
                full = np.zeros(x.shape, grad.dtype)
                np.einsum(term + "->" + letters, full)[...] = g  # einsum gives a writable view of the diagonal
                g = full
            grads.append(g)
        return grads
