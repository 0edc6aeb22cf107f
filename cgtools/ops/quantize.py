"""Quantization, as onnx's quantized models use it: QuantizeLinear and DequantizeLinear (per tensor, per axis or
per block of `block_size` along the axis), DynamicQuantizeLinear, and the integer products MatMulInteger,
ConvInteger, QLinearMatMul and QLinearConv.

The arithmetic follows onnx's ReferenceEvaluator step by step (float32 for a float32 scale, the same order of
rounding and clipping), so integer outputs equal its bit for bit. The integer products are computed in float64,
which holds every sum of int8 × int8 products exactly, so numpy's BLAS does the work.

Gradients: rounding has none, so QuantizeLinear, DynamicQuantizeLinear and the integer products pass nothing
back (their outputs are integers, or a scale that is a statistic of the input); DequantizeLinear's output is
linear in its scale, and gets that gradient exactly (learned step sizes), none to its integer input.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES
from cgtools.ops.base import Context, NoGradient, Operation, register_op
from cgtools.ops.cast import cast
from cgtools.ops.conv import AutoPad, Conv

INTEGER_TYPES = frozenset(np.dtype(n) for n in ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int2",
                                                "uint2"))
FLOAT8_TYPES = frozenset(np.dtype(n) for n in ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                                               "float8_e5m2fnuz"))
SMALL_FLOAT_TYPES = frozenset(np.dtype(n) for n in ("float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn"))
QUANTIZED_TYPES = INTEGER_TYPES | FLOAT8_TYPES | SMALL_FLOAT_TYPES


def per_element(value, shape: tuple, axis: int, block_size: int = 0):
    """A scale or zero point broadcastable to an input of `shape`: a scalar as it is, a vector along `axis`,
    or blocks of `block_size` along `axis` repeated to the input's shape (the last block may be short)."""
    if value.ndim == 0 or value.size == 1:
        return value.reshape(())
    if not -len(shape) <= axis < len(shape):
        raise CgError(f"expected axis in [{-len(shape)}, {len(shape) - 1}] for an input of shape {list(shape)}, "
                      f"found {axis}", where="attrs.axis")
    axis %= len(shape)
    if not block_size:
        if value.ndim != 1 or value.size != shape[axis]:
            raise CgError(f"expected a scalar or {shape[axis]} values (one per index of axis {axis} of the input "
                          f"of shape {list(shape)}), found shape {list(value.shape)}")
        return value.reshape([-1 if k == axis else 1 for k in range(len(shape))])
    blocks = -(-shape[axis] // block_size)
    if block_size < 0 or value.shape != (*shape[:axis], blocks, *shape[axis + 1:]):
        raise CgError(f"expected {blocks} blocks of {block_size} along axis {axis} of the input of shape "
                      f"{list(shape)}, found a scale or zero point of shape {list(value.shape)}")
    return np.repeat(value, block_size, axis=axis).take(range(shape[axis]), axis=axis)


def summed_per_scale(full, scale_shape: tuple, axis: int, block_size: int):
    """The gradient of a scale broadcast by per_element: `full` (the input's shape) summed back onto it."""
    if len(scale_shape) == 0 or int(np.prod(scale_shape)) == 1:
        return full.sum().reshape(scale_shape)
    axis %= full.ndim
    if not block_size:
        return full.sum(axis=tuple(k for k in range(full.ndim) if k != axis))
    blocks = scale_shape[axis]
    padding = [(0, blocks * block_size - full.shape[axis]) if k == axis else (0, 0) for k in range(full.ndim)]
    split = np.pad(full, padding).reshape(*full.shape[:axis], blocks, block_size, *full.shape[axis + 1:])
    return split.sum(axis=axis + 1)


def quantized_type(zero_point, output_dtype: int):
    """The output's dtype: the zero point's, else `output_dtype`'s (an ONNX type code), else uint8."""
    dtype = np.dtype(NUMPY_TYPES[output_dtype]) if output_dtype in NUMPY_TYPES else np.dtype(np.uint8)
    if output_dtype and output_dtype not in NUMPY_TYPES:
        raise CgError(f"expected an ONNX type code for output_dtype, found {output_dtype}", where="attrs.output_dtype")
    if zero_point is not None:
        if output_dtype and zero_point.dtype != dtype:
            raise CgError(f"output_dtype says {dtype.name} but the zero point is {zero_point.dtype.name}",
                          where="attrs.output_dtype")
        dtype = zero_point.dtype
    if dtype not in QUANTIZED_TYPES:
        raise CgError(f"expected a quantized type (8-, 16-, 4- or 2-bit integers, float8, float6, float4), found "
                      f"{dtype.name}")
    return dtype


def saturated(values, dtype):
    """Rounded values (floats) clipped to the range of the integer `dtype`, as that dtype."""
    info = ml_dtypes.iinfo(dtype)
    return np.clip(values, info.min, info.max).astype(dtype)


@register_op("QuantizeLinear")
class QuantizeLinear(Operation):
    """x / y_scale rounded, plus y_zero_point, saturated to its type (uint8 if none); no gradient (rounding)

    Halves round to even; scale and zero point per tensor, per axis or per block of block_size along axis."""

    symbol = "quantize"
    keeps_dtypes = True  # float8 … are its outputs, not types to compute in (ops.base.bound_forward)

    @staticmethod
    def forward(ctx, x, y_scale, y_zero_point=None, *, axis: int = 1, block_size: int = 0, output_dtype: int = 0,
                precision: int = 0, saturate: int = 1):
        dtype = quantized_type(y_zero_point, output_dtype)
        scale = per_element(y_scale, x.shape, axis, block_size)
        if precision:
            wide = NUMPY_TYPES.get(precision)
            if wide is None:
                raise CgError(f"expected an ONNX type code for precision, found {precision}", where="attrs.precision")
            x, scale = x.astype(wide), scale.astype(wide)
        ratio = x / scale
        zero = None if y_zero_point is None else per_element(y_zero_point, x.shape, axis, block_size)
        if dtype in INTEGER_TYPES:
            rounded = np.rint(ratio)
            with np.errstate(invalid="ignore"):
                return saturated(rounded if zero is None else rounded + zero.astype(np.int32), dtype)
        if dtype in SMALL_FLOAT_TYPES and zero is not None:  # float8's zero point must be 0: onnx ignores it
            ratio = ratio + zero.astype(ratio.dtype)
        return cast(ratio, dtype, saturate)


@register_op("DequantizeLinear")
class DequantizeLinear(Operation):
    """(x − x_zero_point) × x_scale; a gradient for the scale only, none for the quantized x

    Per tensor, per axis or per block of block_size along axis; in the scale's type, or output_dtype's."""

    symbol = "dequantize"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, x, x_scale, x_zero_point=None, *, axis: int = 1, block_size: int = 0, output_dtype: int = 0):
        wide = np.float64 if x_scale.dtype == np.float64 else np.float32  # onnx's float32, unless more is given
        dx = x.astype(wide)
        if x_zero_point is not None and x.dtype in FLOAT8_TYPES:
            if np.any(x_zero_point.astype(np.float32) != 0):
                raise CgError("expected a zero point of 0 for float8 input, found others", where="x_zero_point")
        elif x_zero_point is not None and x.dtype not in SMALL_FLOAT_TYPES:  # float4's zero point: ignored
            if x_zero_point.dtype != x.dtype:
                raise CgError(f"expected a zero point of x's type {x.dtype.name}, found {x_zero_point.dtype.name}",
                              where="x_zero_point")
            dx = dx - per_element(x_zero_point, x.shape, axis, block_size).astype(wide)
        if output_dtype and output_dtype not in NUMPY_TYPES:
            raise CgError(f"expected an ONNX type code for output_dtype, found {output_dtype}",
                          where="attrs.output_dtype")
        ctx.save(dx, x_scale.shape, axis, block_size)
        y = dx * per_element(x_scale, x.shape, axis, block_size)
        return y.astype(NUMPY_TYPES[output_dtype] if output_dtype else x_scale.dtype)

    @staticmethod
    def backward(ctx, grad):
        dx, scale_shape, axis, block_size = ctx
        g_scale = summed_per_scale(grad * dx, scale_shape, axis, block_size) if ctx.needs_grad[1] else None
        return (None, g_scale) + (None,) * (len(ctx.needs_grad) - 2)


@register_op("DynamicQuantizeLinear")
class DynamicQuantizeLinear(NoGradient):
    """x quantized to uint8, with the scale and zero point that fit its range (and 0) to 0…255; no gradient

    Rounding has none, and the scale is a statistic of x, as a calibration's are."""

    symbol = "quantize (dynamic)"
    keeps_dtypes = True
    outputs = ("y", "y_scale", "y_zero_point")

    @staticmethod
    def forward(ctx, x):
        high = np.float32(max(0, np.max(x, initial=0)))
        low = np.float32(min(0, np.min(x, initial=0)))
        scale = np.float32(1.0 if high == low else high - low) / np.float32(255)
        zero = np.rint(np.clip(np.float32(0) - low / scale, 0, 255))
        y = np.clip(np.rint(x / scale) + zero, 0, 255).astype(np.uint8)
        return y, np.array(scale.astype(x.dtype)), np.array(zero.astype(np.uint8))


# ---- the integer products of quantized models ----------------------------------------------------------

def centred(q, zero_point, axis: int | None = None):
    """q − zero_point as exact float64 integers; a vector zero point lies along `axis` (a matrix's rows, a
    weight's output channels), or along the last axis when none is given."""
    values = q.astype(np.float64)
    if zero_point is None:
        return values
    zero = zero_point.astype(np.float64)
    if axis is not None and zero.ndim == 1 and zero.size > 1:
        zero = zero.reshape([-1 if k == axis % q.ndim else 1 for k in range(q.ndim)])
    return values - zero


def integer_conv(x, w, bias, attrs: dict):
    """Conv of two exact float64 integer tensors, as int32 (float64 holds every sum of 8-bit products)."""
    y = Conv.forward(Context(), x, w, None if bias is None else bias.astype(np.float64), **attrs)
    return np.rint(y).astype(np.int32)


def requantized(acc, ratio, zero_point, dtype):
    """An int32 accumulator times a scale ratio, rounded (halves to even), plus the zero point, saturated."""
    scaled = acc * ratio
    if zero_point is not None:
        scaled = scaled + zero_point
    return saturated(np.rint(scaled), dtype)


def along_channels(value, ndim: int):
    """A per-output-channel vector shaped to broadcast along axis 1 of an N×M×… result; a scalar as it is."""
    return value.reshape(-1, *(1,) * (ndim - 2)) if value.size > 1 else value.reshape(())


@register_op("MatMulInteger")
class MatMulInteger(Operation):
    """(A − a_zero_point) · (B − b_zero_point) of 8-bit integers, as int32; no gradient

    Zero points per tensor, per row of A or per column of B."""

    symbol = "matmul (int)"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, A, B, a_zero_point=None, b_zero_point=None):
        product = np.matmul(centred(A, a_zero_point, axis=-2), centred(B, b_zero_point))
        return np.rint(product).astype(np.int32)


@register_op("QLinearMatMul")
class QLinearMatMul(Operation):
    """a · b of quantized matrices, requantized to y_scale and y_zero_point; no gradient

    Each scale and zero point per tensor, per row of a or per column of b."""

    symbol = "matmul (quantized)"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point=None):
        acc = np.rint(np.matmul(centred(a, a_zero_point, axis=-2), centred(b, b_zero_point))).astype(np.int32)
        if a_scale.size > 1:
            a_scale = a_scale.reshape(-1, 1)
        ratio = a_scale * b_scale / y_scale  # in the scales' own type, as onnx rounds it
        return requantized(acc, ratio, y_zero_point, a.dtype if y_zero_point is None else y_zero_point.dtype)


@register_op("ConvInteger")
class ConvInteger(Operation):
    """convolution of (x − x_zero_point) with (w − w_zero_point) of 8-bit integers, as int32; no gradient

    w's zero point per tensor or per output channel."""

    symbol = "conv (int)"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, x, w, x_zero_point=None, w_zero_point=None, *, auto_pad: AutoPad = "NOTSET",
                dilations: list[int] = (), group: int = 1, kernel_shape: list[int] = (), pads: list[int] = (),
                strides: list[int] = ()):
        attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                     strides=strides)
        return integer_conv(centred(x, x_zero_point), centred(w, w_zero_point, axis=0), None, attrs)


@register_op("QLinearConv")
class QLinearConv(Operation):
    """convolution of quantized x and w plus an int32 bias B, requantized to y_scale, y_zero_point; no gradient

    w's scale and zero point per tensor or per output channel."""

    symbol = "conv (quantized)"
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point=None, B=None, *,
                auto_pad: AutoPad = "NOTSET", dilations: list[int] = (), group: int = 1,
                kernel_shape: list[int] = (), pads: list[int] = (), strides: list[int] = ()):
        attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                     strides=strides)
        acc = integer_conv(centred(x, x_zero_point), centred(w, w_zero_point, axis=0), B, attrs)
        if w_scale.size > 1 and w_scale.shape != (w.shape[0],):
            raise CgError(f"expected w_scale to be a scalar or {w.shape[0]} values (one per output channel), "
                          f"found shape {list(w_scale.shape)}", where="w_scale")
        ratio = x_scale * along_channels(w_scale, acc.ndim) / y_scale
        return requantized(acc, ratio, y_zero_point, x.dtype if y_zero_point is None else y_zero_point.dtype)
