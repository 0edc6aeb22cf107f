"""The cases of the later maths ops: inverse trigonometric and hyperbolic functions, Mod, the activations of
later opsets (Celu, Mish, HardSwish, PRelu …), CumProd, ReduceLogSum, Hardmax, the normalizations by norm and
by variance, and NegativeLogLikelihoodLoss; BitShift, the Bitwise* ops and EyeLike have nothing to
differentiate.

Inputs stay inside each function's domain (|x| < 1 for Asin, Acos, Atanh; x > 1 for Acosh) and away from
kinks (the thresholds of ThresholdedRelu and Shrink, the corners of HardSwish, Mod's jumps)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from opcheck import SKIP, Case, Const, away_from, case, ints, nonzero, positive, randn, rng


def inside_unit(*shape):
    return rng.uniform(-0.9, 0.9, shape)


CASES: list[Case] = [
    case("Tan-basic", [inside_unit(3, 4)], torch.tan),
    case("Asin-basic", [inside_unit(3, 4)], torch.asin),
    case("Acos-basic", [inside_unit(3, 4)], torch.acos),
    case("Atan-basic", [2 * randn(3, 4)], torch.atan),
    case("Sinh-basic", [randn(3, 4)], torch.sinh),
    case("Cosh-basic", [randn(3, 4)], torch.cosh),
    case("Asinh-basic", [2 * randn(3, 4)], torch.asinh),
    case("Acosh-basic", [1.2 + positive(3, 4)], torch.acosh),
    case("Atanh-basic", [inside_unit(3, 4)], torch.atanh),
    case("Softsign-basic", [2 * randn(3, 4)], F.softsign),
    case("Mish-basic", [3 * randn(3, 4)], F.mish),
    case("HardSwish-basic", [away_from(4 * randn(3, 4), (-3, 3))], F.hardswish),
    case("Swish-default", [3 * randn(3, 4)], F.silu),
    case("Swish-alpha", [3 * randn(3, 4)], lambda x: x * torch.sigmoid(0.5 * x), alpha=0.5),
    case("Celu-default", [nonzero(3, 4)], F.celu),
    case("Celu-alpha", [2 * nonzero(3, 4)], lambda x: F.celu(x, 2.0), alpha=2.0),
    case("ThresholdedRelu-default", [away_from(2 * randn(3, 4), (1.0,))], lambda x: F.threshold(x, 1.0, 0.0)),
    case("ThresholdedRelu-alpha", [away_from(2 * randn(3, 4), (0.5,))], lambda x: F.threshold(x, 0.5, 0.0),
         alpha=0.5),
    case("Shrink-soft", [away_from(2 * randn(3, 4), (-0.5, 0.5))], lambda x: F.softshrink(x, 0.5), bias=0.5),
    case("Shrink-hard", [away_from(2 * randn(3, 4), (-1.0, 1.0))], lambda x: F.hardshrink(x, 1.0), lambd=1.0),
    case("PRelu-one-slope", [nonzero(3, 4), randn(1)], lambda x, s: torch.where(x > 0, x, s * x)),
    case("PRelu-per-channel", [nonzero(2, 3, 4, 4), randn(3, 1, 1)], lambda x, s: F.prelu(x, s.reshape(3))),
    case("PRelu-broadcast-last", [nonzero(3, 4), randn(4)], lambda x, s: torch.where(x > 0, x, s * x)),
]

# Mod: a at least 0.1 from a multiple of b, where the remainder jumps
MOD_A, MOD_B = 3 * randn(3, 4), rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.7, 1.5, (3, 4))
MOD_A = np.where(np.abs(MOD_A / MOD_B - np.round(MOD_A / MOD_B)) < 0.1, MOD_A + 0.3 * MOD_B, MOD_A)
CASES += [
    case("Mod-floored", [MOD_A, MOD_B], torch.remainder),
    case("Mod-fmod", [MOD_A, MOD_B], torch.fmod, fmod=1),
    case("Mod-broadcast-scalar-divisor", [MOD_A, np.array(0.75)], torch.remainder),
]



def torch_cumprod(x, axis, exclusive=False, reverse=False):
    if reverse:
        x = x.flip(axis)
    if exclusive:  # a one first, the last element left out
        x = torch.cat([torch.ones_like(x.narrow(axis, 0, 1)), x.narrow(axis, 0, x.shape[axis] - 1)], axis)
    y = torch.cumprod(x, axis)
    return y.flip(axis) if reverse else y


WITH_ZEROS = randn(3, 4)
WITH_ZEROS[0, 1] = WITH_ZEROS[2, 1] = WITH_ZEROS[2, 3] = WITH_ZEROS[1, 0] = 0.0  # a row with two zeros
CASES += [
    case("CumProd-axis0", [randn(4, 3), ints(0)], lambda x, a: torch_cumprod(x, 0)),
    case("CumProd-axis1-with-zeros", [WITH_ZEROS, ints(1)], lambda x, a: torch_cumprod(x, 1)),
    case("CumProd-exclusive-with-zeros", [WITH_ZEROS, ints(1)], lambda x, a: torch_cumprod(x, 1, exclusive=True),
         exclusive=1),
    case("CumProd-reverse-negative-axis", [WITH_ZEROS, ints(-1)], lambda x, a: torch_cumprod(x, 1, reverse=True),
         reverse=1),
    case("CumProd-exclusive-reverse-3d", [randn(2, 4, 3), ints(1)],
         lambda x, a: torch_cumprod(x, 1, exclusive=True, reverse=True), exclusive=1, reverse=1),
    case("Hardmax-default-axis", [randn(3, 4)], lambda x: F.one_hot(x.argmax(-1), 4).to(x.dtype) + 0 * x),
    case("Hardmax-axis0", [randn(3, 4)], lambda x: F.one_hot(x.argmax(0), 3).T.to(x.dtype) + 0 * x, axis=0),
    case("LpNormalization-p2", [randn(3, 4)], lambda x: F.normalize(x, p=2.0, dim=-1)),
    case("LpNormalization-p1-axis0", [nonzero(3, 4)], lambda x: F.normalize(x, p=1.0, dim=0), axis=0, p=1),
    case("MeanVarianceNormalization-default", [randn(2, 3, 4, 4)],
         lambda x: (x - x.mean((0, 2, 3), keepdim=True))
         / (x.var((0, 2, 3), unbiased=False, keepdim=True).sqrt() + 1e-9)),
    case("MeanVarianceNormalization-last-axis", [randn(3, 5)],
         lambda x: (x - x.mean(1, keepdim=True)) / (x.var(1, unbiased=False, keepdim=True).sqrt() + 1e-9), axes=[1]),
    case("ReduceLogSum-all-axes", [positive(3, 4)], lambda x: torch.log(x.sum()).reshape(1, 1)),
    case("ReduceLogSum-axes-input", [positive(2, 3, 4), ints([0, 2])],
         lambda x, a: torch.log(x.sum((0, 2), keepdim=True))),
    case("ReduceLogSum-axes-attr-no-keepdims", [positive(2, 3, 4)], lambda x: torch.log(x.sum(1)),
         axes=[1], keepdims=0),
]


def nll(weighted=False, **kwargs):
    """torch's nll_loss with the case's weights (the third arg) when `weighted`; labels as int64."""
    if weighted:
        return lambda x, t, w: F.nll_loss(x, t, weight=w, **kwargs)
    return lambda x, t: F.nll_loss(x, t, **kwargs)


# NegativeLogLikelihoodLoss follows ONNX as torch does: "mean" divides by the summed weights of kept labels.
LABELS_NC = ints([2, 0, 1, 2, 1])
LABELS_NCD = ints([[[0, 2], [1, 1], [2, 0]], [[1, 0], [0, 2], [2, 1]]])
CASES += [
    case("NegativeLogLikelihoodLoss-mean", [randn(5, 3), LABELS_NC], nll()),
    case("NegativeLogLikelihoodLoss-sum", [randn(5, 3), LABELS_NC], nll(reduction="sum"), reduction="sum"),
    case("NegativeLogLikelihoodLoss-none", [randn(5, 3), LABELS_NC], nll(reduction="none"), reduction="none"),
    case("NegativeLogLikelihoodLoss-weights-mean", [randn(5, 3), LABELS_NC, Const(positive(3))], nll(True)),
    case("NegativeLogLikelihoodLoss-weights-ignored-mean", [randn(5, 3), LABELS_NC, Const(positive(3))],
         nll(True, ignore_index=2), ignore_index=2),
    case("NegativeLogLikelihoodLoss-NCd1d2-weights-sum", [randn(2, 3, 3, 2), LABELS_NCD, Const(positive(3))],
         nll(True, reduction="sum"), reduction="sum"),
    case("NegativeLogLikelihoodLoss-NCd1d2-ignored-none", [randn(2, 3, 3, 2), LABELS_NCD, SKIP],
         lambda x, t, w: F.nll_loss(x, t, ignore_index=0, reduction="none"), reduction="none", ignore_index=0),
    case("NegativeLogLikelihoodLoss-negative-ignore-index", [randn(5, 3), ints([2, -1, 1, -1, 0])],
         nll(ignore_index=-1), ignore_index=-1),
]

TORCH_ONLY_CASES: list[Case] = []

# EyeLike's output never depends on its input's values; the integer ops have nothing to differentiate.
NON_FLOAT_OPS = {"EyeLike", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot"}

FLOAT32_CASES = ["Mish-basic", "Swish-alpha", "Celu-alpha", "HardSwish-basic", "PRelu-per-channel", "Mod-fmod",
                 "Acosh-basic", "Softsign-basic", "Shrink-soft", "CumProd-exclusive-with-zeros", "LpNormalization-p2",
                 "MeanVarianceNormalization-default", "ReduceLogSum-axes-input",
                 "NegativeLogLikelihoodLoss-weights-ignored-mean"]
