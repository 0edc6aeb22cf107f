"""The cases of the quantization ops (cgtools/ops/quantize.py): DequantizeLinear's gradient for its scale,
per tensor, per axis and per block, against (x − zero point) × scale written in torch. Its integer input and
zero point are constants: they have nothing to differentiate. QuantizeLinear, DynamicQuantizeLinear and the
integer products round, so they pass no gradient back (their forward is checked by the ONNX suite and by
tests/test_quantized_models.py)."""

from __future__ import annotations

import numpy as np

from opcheck import Case, Const, case, positive, rng


def quantized(dtype, *shape):
    info = np.iinfo(dtype)
    return Const(rng.integers(info.min, info.max, shape, endpoint=True), dtype)


def blocks_of(scale, block: int, axis: int, size: int):
    """A blocked scale repeated to the input's length along `axis` (the last block cut short)."""
    return scale.repeat_interleave(block, axis).narrow(axis, 0, size)


CASES: list[Case] = [
    case("DequantizeLinear-per-tensor", [quantized(np.int8, 3, 4), positive(), quantized(np.int8)],
         lambda x, s, z: (x.double() - z.double()) * s),
    case("DequantizeLinear-no-zero-point-uint8", [quantized(np.uint8, 2, 5), positive(1)],
         lambda x, s: x.double() * s),
    case("DequantizeLinear-per-axis", [quantized(np.uint8, 2, 3, 4), positive(3), quantized(np.uint8, 3)],
         lambda x, s, z: (x.double() - z.double()[:, None]) * s[:, None]),
    case("DequantizeLinear-per-axis-last-int16", [quantized(np.int16, 3, 4), positive(4), quantized(np.int16, 4)],
         lambda x, s, z: (x.double() - z.double()) * s, axis=-1),
    case("DequantizeLinear-blocked-short-last-block", [quantized(np.int8, 2, 5), positive(2, 2),
                                                       quantized(np.int8, 2, 2)],
         lambda x, s, z: (x.double() - blocks_of(z.double(), 3, 1, 5)) * blocks_of(s, 3, 1, 5),
         axis=1, block_size=3),
    case("DequantizeLinear-blocked-axis0", [quantized(np.uint8, 4, 3), positive(2, 3), quantized(np.uint8, 2, 3)],
         lambda x, s, z: (x.double() - blocks_of(z.double(), 2, 0, 4)) * blocks_of(s, 2, 0, 4),
         axis=0, block_size=2),
]

TORCH_ONLY_CASES: list[Case] = []

# Rounding has no gradient; the integer products take and give integers.
NON_FLOAT_OPS = {"QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul",
                 "QLinearConv"}

FLOAT32_CASES = ["DequantizeLinear-per-axis"]
