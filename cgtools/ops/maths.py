"""More elementwise mathematics: the inverse trigonometric and hyperbolic functions, Mod, and the
activations of later opsets (Celu, Mish, HardSwish, PRelu …), each beside its derivative; and EyeLike."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, described
from cgtools.ops.base import NoGradient, Operation, register_op
from cgtools.ops.elementwise import masked
from cgtools.ops.nn import elu


class _Elementwise(Operation):
    """Shared by the smooth functions of one tensor: `fn` forward, `derivative(x, y)` backward."""

    fn = staticmethod(np.tan)

    @classmethod
    def forward(cls, ctx, x):
        y = cls.fn(x)
        ctx.save(x, y)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        x, y = ctx
        return (grad * cls.derivative(x, y),)

    @staticmethod
    def derivative(x, y):
        return 1 + y * y


@register_op("Tan")
class Tan(_Elementwise):
    """tangent"""

    symbol = "tan"
    local_gradients = ("1 + {Y}²",)
    fn = staticmethod(np.tan)
    derivative = staticmethod(lambda x, y: 1 + y * y)


@register_op("Asin")
class Asin(_Elementwise):
    """arcsine, in [-π/2, π/2]"""

    symbol = "asin"
    local_gradients = ("1/√(1 − {x}²)",)
    fn = staticmethod(np.arcsin)
    derivative = staticmethod(lambda x, y: 1 / np.sqrt(1 - x * x))


@register_op("Acos")
class Acos(_Elementwise):
    """arccosine, in [0, π]"""

    symbol = "acos"
    local_gradients = ("−1/√(1 − {x}²)",)
    fn = staticmethod(np.arccos)
    derivative = staticmethod(lambda x, y: -1 / np.sqrt(1 - x * x))


@register_op("Atan")
class Atan(_Elementwise):
    """arctangent, in (-π/2, π/2)"""

    symbol = "atan"
    local_gradients = ("1/(1 + {x}²)",)
    fn = staticmethod(np.arctan)
    derivative = staticmethod(lambda x, y: 1 / (1 + x * x))


@register_op("Sinh")
class Sinh(_Elementwise):
    """hyperbolic sine"""

    symbol = "sinh"
    local_gradients = ("cosh({x})",)
    fn = staticmethod(np.sinh)
    derivative = staticmethod(lambda x, y: np.cosh(x))


@register_op("Cosh")
class Cosh(_Elementwise):
    """hyperbolic cosine"""

    symbol = "cosh"
    local_gradients = ("sinh({x})",)
    fn = staticmethod(np.cosh)
    derivative = staticmethod(lambda x, y: np.sinh(x))


@register_op("Asinh")
class Asinh(_Elementwise):
    """inverse hyperbolic sine"""

    symbol = "asinh"
    local_gradients = ("1/√({x}² + 1)",)
    fn = staticmethod(np.arcsinh)
    derivative = staticmethod(lambda x, y: 1 / np.sqrt(x * x + 1))


@register_op("Acosh")
class Acosh(_Elementwise):
    """inverse hyperbolic cosine (x ≥ 1)"""

    symbol = "acosh"
    local_gradients = ("1/√({x}² − 1)",)
    fn = staticmethod(np.arccosh)
    derivative = staticmethod(lambda x, y: 1 / np.sqrt(x * x - 1))


@register_op("Atanh")
class Atanh(_Elementwise):
    """inverse hyperbolic tangent (|x| < 1)"""

    symbol = "atanh"
    local_gradients = ("1/(1 − {x}²)",)
    fn = staticmethod(np.arctanh)
    derivative = staticmethod(lambda x, y: 1 / (1 - x * x))


@register_op("Softsign")
class Softsign(_Elementwise):
    """x / (1 + |x|)"""

    symbol = "softsign"
    local_gradients = ("1/(1 + |{x}|)²",)
    fn = staticmethod(lambda x: x / (1 + np.abs(x)))
    derivative = staticmethod(lambda x, y: 1 / np.square(1 + np.abs(x)))


def sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)  # no overflow for large |x|


@register_op("Mish")
class Mish(_Elementwise):
    """x · tanh(ln(1 + e^x))"""

    symbol = "mish"
    fn = staticmethod(lambda x: x * np.tanh(np.logaddexp(x.dtype.type(0), x)))

    @staticmethod
    def derivative(x, y):
        t = np.tanh(np.logaddexp(x.dtype.type(0), x))
        return t + x * (1 - t * t) * sigmoid(x)


@register_op("HardSwish")
class HardSwish(_Elementwise):
    """x · max(0, min(1, x/6 + 1/2))"""

    symbol = "hard swish"
    local_gradients = ("[{x} ≥ 3] + [|{x}| < 3](2{x} + 3)/6",)

    @staticmethod
    def fn(x):
        y = (x / 6 + 0.5).clip(0, 1)
        y *= x
        return y

    @staticmethod
    def derivative(x, y):
        """(2x + 3)/6 for |x| < 3, 1 from 3 up, 0 below (as torch has the kinks), made without np.where, slow
        on random masks; x clipped first so that ±inf times the mask's 0 makes no NaN."""
        d = x.clip(-3, 3)
        d /= 3
        d += 0.5
        d = masked(d, np.abs(x) < 3)
        d += x >= 3
        return d


@register_op("Swish")
class Swish(Operation):
    """x · σ(alpha·x)"""

    symbol = "swish"

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.0):
        wide = x.astype(np.promote_types(x.dtype, np.float32), copy=False)  # float16's σ is off by an ulp
        s = sigmoid(alpha * wide)
        ctx.save(x, s.astype(x.dtype, copy=False), alpha)
        return (wide * s).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, s, alpha = ctx
        return (grad * (s + alpha * x * s * (1 - s)),)


@register_op("Celu")
class Celu(Operation):
    """x where x > 0, else alpha·(e^(x/alpha) − 1)"""

    symbol = "CELU"
    local_gradients = ("[{x} > 0] + [{x} ≤ 0]exp({x}/{alpha})",)

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.0):
        ctx.save(x, alpha)
        return alpha * elu(x / alpha, 1.0)

    @staticmethod
    def backward(ctx, grad):
        x, alpha = ctx
        return (np.where(x > 0, grad, grad * np.exp(np.minimum(x, 0) / alpha)),)


@register_op("ThresholdedRelu")
class ThresholdedRelu(Operation):
    """x where x > alpha, else 0"""

    symbol = "thresholded ReLU"
    local_gradients = ("[{x} > {alpha}]",)

    @staticmethod
    def forward(ctx, x, *, alpha: float = 1.0):
        above = x > alpha
        ctx.append(above)
        return np.where(above, x, 0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx[0],)


@register_op("Shrink")
class Shrink(Operation):
    """x + bias where x < −lambd, x − bias where x > lambd, else 0"""

    symbol = "shrink"
    local_gradients = ("[|{x}| > {lambd}]",)

    @staticmethod
    def forward(ctx, x, *, bias: float = 0.0, lambd: float = 0.5):
        outside = np.abs(x) > lambd
        ctx.append(outside)
        return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx[0],)


@register_op("PRelu")
class PRelu(Operation):
    """x where x > 0, else slope·x (slope broadcast against x: one per channel, or one for all)"""

    symbol = "PReLU"
    local_gradients = ("[{x} > 0] + {slope}[{x} ≤ 0]", "{x}[{x} ≤ 0]")

    @staticmethod
    def forward(ctx, x, slope):
        positive = x > 0
        ctx.save(x, slope, positive)
        return np.where(positive, x, x * slope).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, slope, positive = ctx
        return np.where(positive, grad, grad * slope), np.where(positive, 0, grad * x)


@register_op("Mod")
class Mod(Operation):
    """a mod b: the remainder with b's sign (fmod=1: with a's sign, as C's fmod)"""

    symbol = "mod"
    infix = True

    @staticmethod
    def forward(ctx, a, b, *, fmod: int = 0):
        ctx.save(a, b, fmod)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.fmod(a, b) if fmod else np.mod(a, b))

    @staticmethod
    def backward(ctx, grad):
        a, b, fmod = ctx
        quotient = np.trunc(a / b) if fmod else np.floor_divide(a, b)  # a mod b = a − quotient·b
        return grad, -grad * quotient


@register_op("EyeLike")
class EyeLike(NoGradient):  # the output never depends on x's values
    """a matrix of x's shape with ones on diagonal k, zeros elsewhere (dtype: x's, or an ONNX type code)"""

    symbol = "eye"

    @staticmethod
    def forward(ctx, x, *, dtype: int = None, k: int = 0):
        if x.ndim != 2:
            raise CgError(f"expected a matrix (2 dimensions), found shape {list(x.shape)}")
        if dtype is not None and dtype not in NUMPY_TYPES:
            raise CgError(f"cannot make ONNX type {dtype} (attribute 'dtype'); supported: {described(NUMPY_TYPES)}")
        return np.eye(*x.shape, k=k, dtype=x.dtype if dtype is None else NUMPY_TYPES[dtype])
