"""More maths: elementwise functions, variadic sums, casts, einsum, cumulative sums, the remaining ONNX
reductions and arg-extrema."""

from __future__ import annotations

import math
import string

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op
from cgtools.ops.reduce import ReduceMax, _Reduce, largest

# ---- elementwise functions y = f(x) --------------------------------------------------------------------


class _Unary(Operation):
    """Shared by the elementwise functions without attributes: backward multiplies by f'(x), given x and y."""

    @staticmethod
    def f(x):
        raise NotImplementedError

    @staticmethod
    def df(x, y):
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, x):
        y = cls.f(x)
        ctx.save(x, y)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        x, y = ctx
        return (grad * cls.df(x, y),)


class _Step(Operation):
    """Shared by the piecewise-constant functions (Floor, Ceil, Round, Sign): their gradient is zero, as torch's."""

    f = staticmethod(np.floor)

    @classmethod
    def forward(cls, ctx, x):
        return cls.f(x)

    @staticmethod
    def backward(ctx, grad):
        return (np.zeros_like(grad),)


_math_erf = np.frompyfunc(math.erf, 1, 1)  # numpy has no erf; math.erf is exact to the last bit of a double


def erf(x):
    return np.asarray(_math_erf(x), x.dtype)


def normal_pdf(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@register_op("Erf")
class Erf(_Unary):
    """the error function erf(x) = 2/√π ∫₀ˣ e^(-t²) dt"""

    symbol = "erf"
    f = staticmethod(erf)

    @staticmethod
    def df(x, y):
        return 2 / math.sqrt(math.pi) * np.exp(-x * x)


@register_op("Reciprocal")
class Reciprocal(_Unary):
    """1 / x"""

    symbol = "1/(·)"
    f = staticmethod(np.reciprocal)

    @staticmethod
    def df(x, y):
        return -y * y


@register_op("Sin")
class Sin(_Unary):
    """sine"""

    symbol = "sin"
    f = staticmethod(np.sin)

    @staticmethod
    def df(x, y):
        return np.cos(x)


@register_op("Cos")
class Cos(_Unary):
    """cosine"""

    symbol = "cos"
    f = staticmethod(np.cos)

    @staticmethod
    def df(x, y):
        return -np.sin(x)


@register_op("Softplus")
class Softplus(_Unary):
    """ln(1 + e^x)"""

    symbol = "softplus"
    f = staticmethod(lambda x: np.logaddexp(x.dtype.type(0), x))  # no overflow for large x

    @staticmethod
    def df(x, y):
        return 0.5 + 0.5 * np.tanh(0.5 * x)  # σ(x), computed without overflow


@register_op("Floor")
class Floor(_Step):
    """⌊x⌋, the largest integer ≤ x"""

    symbol = "⌊·⌋"
    f = staticmethod(np.floor)


@register_op("Ceil")
class Ceil(_Step):
    """⌈x⌉, the smallest integer ≥ x"""

    symbol = "⌈·⌉"
    f = staticmethod(np.ceil)


@register_op("Round")
class Round(_Step):
    """x rounded to the nearest integer, halves to even"""

    symbol = "round"
    f = staticmethod(np.round)


@register_op("Sign")
class Sign(_Step):
    """-1, 0 or 1 as x is negative, zero or positive"""

    symbol = "sign"
    f = staticmethod(np.sign)


GELU_TANH_SCALE = math.sqrt(2 / math.pi)


@register_op("Gelu")
class Gelu(Operation):
    """x·Φ(x), Φ the standard normal CDF (approximate="tanh": its tanh approximation)"""

    symbol = "GELU"

    @staticmethod
    def forward(ctx, x, *, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise CgError(f"attribute 'approximate' must be 'none' or 'tanh', found {approximate!r}")
        if approximate == "tanh":
            t = np.tanh(GELU_TANH_SCALE * (x + 0.044715 * x ** 3))
            ctx.save(x, t, approximate)
            return 0.5 * x * (1 + t)
        cdf = 0.5 * (1 + erf(x * x.dtype.type(1 / math.sqrt(2))))
        ctx.save(x, cdf, approximate)
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        x, s, approximate = ctx
        if approximate == "tanh":
            dt = (1 - s * s) * GELU_TANH_SCALE * (1 + 3 * 0.044715 * x * x)
            return (grad * (0.5 * (1 + s) + 0.5 * x * dt),)
        return (grad * (s + x * normal_pdf(x)),)


@register_op("Elu")
class Elu(Operation):
    """x where x > 0, else alpha·(e^x - 1)"""

    symbol = "ELU"

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.0):
        y = elu(x, alpha)
        ctx.save(x, y, alpha)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y, alpha = ctx
        return (np.where(x > 0, grad, grad * (y + alpha)),)  # d/dx alpha·(e^x - 1) = y + alpha


def elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))  # the minimum keeps expm1 from overflowing


@register_op("Selu")
class Selu(Operation):
    """gamma·x where x > 0, else gamma·alpha·(e^x - 1)"""

    symbol = "SELU"

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.6732631921768188, gamma: float = 1.0507010221481323):
        ctx.save(x, alpha, gamma)
        return gamma * elu(x, alpha)

    @staticmethod
    def backward(ctx, grad):
        x, alpha, gamma = ctx
        return (grad * gamma * np.where(x > 0, 1, alpha * np.exp(np.minimum(x, 0))),)


@register_op("HardSigmoid")
class HardSigmoid(Operation):
    """max(0, min(1, alpha·x + beta))"""

    symbol = "hard σ"

    @staticmethod
    def forward(ctx, x, *, alpha: float = 0.2, beta: float = 0.5):
        z = alpha * x + beta
        ctx.save(z, alpha)
        return np.clip(z, 0, 1).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        z, alpha = ctx
        return (grad * alpha * ((z > 0) & (z < 1)),)


# ---- variadic sums -------------------------------------------------------------------------------------


@register_op("Sum")
class Sum(Operation):
    """the elementwise sum of the inputs"""

    symbol = "sum"

    @staticmethod
    def forward(ctx, *inputs):
        ctx.append(len(inputs))
        return sum(inputs[1:], inputs[0])

    @staticmethod
    def backward(ctx, grad):
        return [grad] * ctx[0]


@register_op("Mean")
class Mean(Operation):
    """the elementwise mean of the inputs"""

    symbol = "mean"

    @staticmethod
    def forward(ctx, *inputs):
        ctx.append(len(inputs))
        return (sum(inputs[1:], inputs[0]) / len(inputs)).astype(inputs[0].dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return [grad / ctx[0]] * ctx[0]


# ---- casts ---------------------------------------------------------------------------------------------

# ONNX TensorProto data type codes -> numpy; the others (strings, bfloat16, float8, int4, ...) numpy lacks.
ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64,
               9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def cast(x, dtype):
    with np.errstate(invalid="ignore", over="ignore"):  # out of range is undefined (ints) or ±inf (floats)
        return x.astype(dtype, copy=False)


class _Cast(Operation):
    """Shared backward of Cast and CastLike: the engine casts the gradient back to the input's dtype, and calls
    backward only when the output is float too (an int or bool tensor carries no gradient)."""

    @staticmethod
    def backward(ctx, grad):
        return (grad,) + (None,) * (len(ctx.needs_grad) - 1)


@register_op("Cast")
class Cast(_Cast):
    """input converted to the element type `to` (an ONNX TensorProto code: 1 float32, 7 int64, 9 bool, 11 float64…)"""

    symbol = "cast"

    @staticmethod
    def forward(ctx, input, *, to: int, saturate: int = 1, round_mode: str = "up"):
        # saturate and round_mode only concern float8 targets, which numpy cannot hold
        if to not in ONNX_DTYPES:
            known = ", ".join(f"{code} ({np.dtype(t).name})" for code, t in ONNX_DTYPES.items())
            raise CgError(f"cannot cast to ONNX type {to} (attribute 'to'); supported: {known}")
        return cast(input, ONNX_DTYPES[to])


@register_op("CastLike")
class CastLike(_Cast):
    """input converted to the element type of target_type"""

    symbol = "cast like"

    @staticmethod
    def forward(ctx, input, target_type, *, saturate: int = 1, round_mode: str = "up"):
        return cast(input, target_type.dtype)


# ---- einsum --------------------------------------------------------------------------------------------


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


@register_op("Einsum")
class Einsum(Operation):
    """Einstein summation over the inputs, as the equation says ("ij,jk->ik" is a matrix product)"""

    symbol = "einsum"

    @staticmethod
    def forward(ctx, *inputs, equation: str):
        terms, out = einsum_terms(equation, inputs)
        ctx.save(terms, out, inputs)
        return np.asarray(np.einsum(",".join(terms) + "->" + out, *inputs))

    @staticmethod
    def backward(ctx, grad):
        terms, out, inputs = ctx
        sizes = {}
        for term, x in zip(terms, inputs):
            for c, n in zip(term, x.shape):
                sizes[c] = max(sizes.get(c, 1), n)
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


# ---- cumulative sums -----------------------------------------------------------------------------------


def cumsum(x, axis, exclusive, reverse):
    if reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:  # each element leaves itself out: the sums move one along, a zero comes first
        head = (slice(None),) * axis
        y = np.concatenate([np.zeros_like(y[head + (slice(0, 1),)]), y[head + (slice(0, -1),)]], axis)
    return np.flip(y, axis) if reverse else y


@register_op("CumSum")
class CumSum(Operation):
    """running sums of x along an axis (exclusive: each leaves itself out; reverse: from the end)"""

    symbol = "cumsum"

    @staticmethod
    def forward(ctx, x, axis, *, exclusive: int = 0, reverse: int = 0):
        axis = int(np.ravel(axis)[0]) % max(x.ndim, 1)
        ctx.save(axis, exclusive, reverse)
        return cumsum(x, axis, exclusive, reverse)

    @staticmethod
    def backward(ctx, grad):
        axis, exclusive, reverse = ctx
        return cumsum(grad, axis, exclusive, not reverse), None  # each x feeds the sums after it (or before)


# ---- reductions (on the shared _Reduce of reduce.py) ---------------------------------------------------


@register_op("ReduceSumSquare")
class ReduceSumSquare(_Reduce):
    """Σ x² over axes"""

    symbol = "Σx²"

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims))

    @staticmethod
    def local_grad(data, y, grad, dims):
        return 2 * grad * data


@register_op("ReduceL1")
class ReduceL1(_Reduce):
    """Σ |x| over axes"""

    symbol = "‖·‖₁"

    numpy_reduce = staticmethod(lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims))

    @staticmethod
    def local_grad(data, y, grad, dims):
        return grad * np.sign(data)


@register_op("ReduceL2")
class ReduceL2(_Reduce):
    """√(Σ x²) over axes"""

    symbol = "‖·‖₂"

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

    numpy_reduce = staticmethod(log_sum_exp)

    @staticmethod
    def local_grad(data, y, grad, dims):
        return grad * np.exp(data - y)  # the softmax of data along the axes


@register_op("ReduceMin")
class ReduceMin(_Reduce):
    """min over axes (the gradient is split evenly among tied minima)"""

    symbol = "min"

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
