"""The cases of the later op families: unary maths, activations (Gelu, Elu, ...), Sum and Mean, casts,
Einsum, CumSum, the other reductions, Range, and the slicing ops.

Inputs stay away from kinks (integers for Floor/Ceil/Round, 0 for Sign/Elu/ReduceL1, the corners of
HardSigmoid, ties for ReduceMin), where the gradient is zero or torch's convention.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from opcheck import SKIP, Case, Const, away_from, case, distinct, ints, nonzero, randn, rng


def off_integers(*shape):
    """Values whose fractional parts keep 0.1 from integers and from halves: no jumps of Floor, Ceil, Round."""
    return rng.integers(-3, 3, shape) + rng.choice([0.15, 0.35, 0.65, 0.85], shape) + rng.uniform(-0.05, 0.05, shape)


CASES: list[Case] = []

# ---- unary maths, activations, sums, casts, einsum, cumsum, reductions --------------------------------

SELU_ALPHA, SELU_GAMMA = 1.6732631921768188, 1.0507010221481323  # ONNX's defaults (float32 values)
CASES += [
    case("Erf-basic", [randn(3, 4)], torch.erf),
    case("Gelu-default", [2 * randn(3, 4)], F.gelu),
    case("Gelu-tanh", [2 * randn(3, 4)], lambda x: F.gelu(x, approximate="tanh"), approximate="tanh"),
    case("Softplus-basic", [3 * randn(3, 4)], F.softplus),
    case("Elu-default", [nonzero(3, 4)], F.elu),
    case("Elu-alpha", [nonzero(3, 4)], lambda x: F.elu(x, 0.5), alpha=0.5),
    case("Selu-default", [nonzero(3, 4)], lambda x: SELU_GAMMA * F.elu(x, SELU_ALPHA)),
    case("Selu-attrs", [nonzero(3, 4)], lambda x: 1.5 * F.elu(x, 2.0), alpha=2.0, gamma=1.5),
    case("HardSigmoid-default", [away_from(3 * randn(3, 4), (-2.5, 2.5))],
         lambda x: torch.clamp(0.2 * x + 0.5, 0, 1)),
    case("HardSigmoid-attrs", [away_from(2 * randn(3, 4), (-1.2, 0.8))],
         lambda x: torch.clamp(0.5 * x + 0.6, 0, 1), alpha=0.5, beta=0.6),
    case("Sign-basic", [nonzero(3, 4)], torch.sign),
    case("Reciprocal-basic", [nonzero(3, 4)], torch.reciprocal),
    case("Floor-basic", [off_integers(3, 4)], torch.floor),
    case("Ceil-basic", [off_integers(3, 4)], torch.ceil),
    case("Round-basic", [off_integers(3, 4)], torch.round),
    case("Sin-basic", [randn(3, 4)], torch.sin),
    case("Cos-basic", [randn(3, 4)], torch.cos),
    case("Sum-one-input", [randn(3, 4)], lambda x: x * 1),
    case("Sum-three-inputs-broadcast", [randn(3, 4), randn(4), randn(3, 1)], lambda a, b, c: a + b + c),
    case("Mean-two-inputs", [randn(3, 4), randn(3, 4)], lambda a, b: (a + b) / 2),
    case("Mean-three-inputs-broadcast", [randn(3, 4), randn(4), randn(3, 1)], lambda a, b, c: (a + b + c) / 3),
    case("Cast-float-to-double", [randn(3, 4)], lambda x: x.double(), to=11),
    case("CastLike-like-double", [randn(3, 4), Const(np.zeros(1))], lambda x, t: x.to(t.dtype)),
]

EINSUMS = [  # equation, input shapes, the same in torch when it differs (torch sorts implicit outputs alike)
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ii->", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,jk", [(3, 4), (4, 2)]),
    ("i,i", [(4,), (4,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ij, jk -> ik", [(3, 4), (4, 2)]),
    ("bA,Ac", [(2, 3), (3, 4)]),
    ("iij->ji", [(3, 3, 2)]),
    ("i,ij,j->", [(3,), (3, 4), (4,)]),
]
for k, (equation, shapes) in enumerate(EINSUMS):
    CASES.append(case(f"Einsum-{k}-{equation.replace(' ', '')}", [randn(*s) for s in shapes],
                      lambda *xs, eq=equation: torch.einsum(eq.replace(" ", ""), *xs), equation=equation))


def torch_cumsum(x, axis, exclusive=False, reverse=False):
    if reverse:
        x = x.flip(axis)
    y = x.cumsum(axis)
    if exclusive:
        y = y - x
    return y.flip(axis) if reverse else y


CASES += [
    case("CumSum-axis1", [randn(3, 4), ints(1)], lambda x, a: torch_cumsum(x, 1)),
    case("CumSum-axis0-vector-axis", [randn(3, 4), ints([0])], lambda x, a: torch_cumsum(x, 0)),
    case("CumSum-exclusive", [randn(3, 4), ints(1)], lambda x, a: torch_cumsum(x, 1, exclusive=True), exclusive=1),
    case("CumSum-reverse-negative-axis", [randn(3, 4), ints(-1)], lambda x, a: torch_cumsum(x, 1, reverse=True),
         reverse=1),
    case("CumSum-exclusive-reverse", [randn(2, 3, 4), ints(1)],
         lambda x, a: torch_cumsum(x, 1, exclusive=True, reverse=True), exclusive=1, reverse=1),
]

REDUCTIONS = {  # op -> (inputs, torch over a tuple of dims)
    "ReduceSumSquare": (randn, lambda x, d, k: (x * x).sum(d, keepdim=k)),
    "ReduceL1": (nonzero, lambda x, d, k: x.abs().sum(d, keepdim=k)),
    "ReduceL2": (randn, lambda x, d, k: torch.linalg.vector_norm(x, 2, d, keepdim=k)),
    "ReduceLogSumExp": (randn, lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
    "ReduceMin": (distinct, lambda x, d, k: torch.amin(x, d, keepdim=k)),
    "ReduceProd": (randn, lambda x, d, k: x.prod(d[0], keepdim=k) if len(d) == 1 else x.prod()),
}
for op, (make, fn) in REDUCTIONS.items():
    CASES += [
        case(f"{op}-axes-attr-keepdims", [make(2, 3, 4)], lambda x, fn=fn: fn(x, (1,), True), axes=[1]),
        case(f"{op}-axes-input-negative", [make(2, 3, 4), ints([-1])], lambda x, a, fn=fn: fn(x, (2,), False),
             keepdims=0),
        case(f"{op}-all-axes", [make(3, 4)], lambda x, fn=fn: fn(x, (0, 1), False), keepdims=0),
    ]
# With noop_with_empty_axes and no axes nothing is reduced, but the elementwise step still happens (ONNX).
CASES += [
    case("ReduceSumSquare-noop", [randn(3, 4)], lambda x: x * x, noop_with_empty_axes=1),
    case("ReduceL1-noop", [nonzero(3, 4)], torch.abs, noop_with_empty_axes=1),
    case("ReduceL2-noop", [nonzero(3, 4)], torch.abs, noop_with_empty_axes=1),
    case("ReduceLogSumExp-noop", [randn(3, 4)], lambda x: x * 1, noop_with_empty_axes=1),
    case("ReduceProd-with-zeros", [np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 1.5], [1.0, -2.0, 0.5]])],
         lambda x: x.prod(1), axes=[1], keepdims=0),
]

# ---- logic.py: Range's value is start + i·delta, differentiable in start and delta ---------------------

CASES += [
    case("Range-float", [np.array(0.5), np.array(3.0), np.array(0.7)],
         lambda s, l, d: s + torch.arange(4, dtype=torch.float64) * d),
    case("Range-negative-delta", [np.array(1.0), np.array(-2.0), np.array(-0.8)],
         lambda s, l, d: s + torch.arange(4, dtype=torch.float64) * d),
]

# ---- slicing.py ----------------------------------------------------------------------------------------

CASES += [
    Case("Split-sizes-input", "Split", [randn(2, 6), ints([1, 2, 3])], lambda x, s: torch.split(x, [1, 2, 3], 1)[1],
         {"axis": 1}, output=1, n_outputs=3),
    Case("Split-num-outputs-last-smaller", "Split", [randn(7, 2)], lambda x: torch.split(x, 3, 0)[2],
         {"num_outputs": 3}, output=2, n_outputs=3),
    Case("Split-attr-older-opsets", "Split", [randn(5, 2)], lambda x: torch.split(x, [2, 3], 0)[0],
         {"split": [2, 3]}, output=0, n_outputs=2),
    case("Slice-basic", [randn(4, 5), ints([1, 0]), ints([3, 4])], lambda x, s, e: x[1:3, 0:4]),
    case("Slice-axes-steps", [randn(4, 6), ints([0]), ints([6]), ints([1]), ints([2])],
         lambda x, *_: x[:, 0:6:2]),
    case("Slice-negative-step", [randn(4, 6), ints([-1]), ints([-100]), ints([1]), ints([-2])],
         lambda x, *_: x.flip(1)[:, ::2]),
    case("Slice-negative-step-start-clamped-to-first", [randn(5), ints([-10]), ints([-20]), SKIP, ints([-1])],
         lambda x, *_: x[0:1]),
    case("Slice-ends-clamped", [randn(3, 4), ints([-10]), ints([100]), ints([0])], lambda x, *_: x[0:3]),
    case("Slice-negative-axis", [randn(2, 3, 4), ints([1]), ints([-1]), ints([-1])], lambda x, *_: x[..., 1:3]),
    case("Slice-attrs-older-opsets", [randn(3, 4)], lambda x: x[:, 1:3], starts=[1], ends=[3], axes=[1]),
    case("Expand-new-axes", [randn(3, 1), ints([2, 3, 4])], lambda x, s: x.expand(2, 3, 4)),
    case("Expand-shape-with-ones", [randn(3, 4), ints([1, 4])], lambda x, s: x * 1),
    case("Pad-constant", [randn(2, 3), ints([1, 0, 2, 1])], lambda x, p: F.pad(x, (0, 1, 1, 2))),
    # the constant as a float input gets the gradient of the elements it fills
    case("Pad-constant-value-input", [randn(2, 3), ints([1, 0, 2, 1]), np.array(0.7)],
         lambda x, p, c: F.pad(x - c, (0, 1, 1, 2)) + c),
    case("Pad-negative-pads-crop", [randn(4, 5), ints([-1, 1, 0, -2])], lambda x, p: F.pad(x, (1, -2, -1, 0))),
    case("Pad-axes-input", [randn(2, 3, 4), ints([1, 2]), SKIP, ints([-1])], lambda x, p, c, a: F.pad(x, (1, 2))),
    case("Pad-attrs-older-opsets", [randn(2, 3)], lambda x: F.pad(x, (1, 0, 1, 0), value=0.5), pads=[1, 1, 0, 0],
         value=0.5),
]
for mode, torch_mode in {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}.items():
    CASES.append(case(f"Pad-{mode}", [randn(3, 4), ints([1, 2, 2, 1])],
                      lambda x, p, m=torch_mode: F.pad(x[None, None], (2, 1, 1, 2), mode=m)[0, 0], mode=mode))
CASES += [
    case("Tile-2d", [randn(2, 3), ints([2, 3])], lambda x, r: x.repeat(2, 3)),
    case("Tile-3d-some-ones", [randn(2, 1, 3), ints([1, 3, 2])], lambda x, r: x.repeat(1, 3, 2)),
    # GatherElements' gradient scatter-adds: an element picked twice collects both gradients
    case("GatherElements-axis1-repeated", [randn(3, 4), ints([[0, 2, 2], [1, 1, 0]])],
         lambda x, i: torch.gather(x, 1, i), axis=1),
    case("GatherElements-axis0-negative", [randn(3, 2), ints([[-1, 0], [2, -3]])],
         lambda x, i: torch.gather(x, 0, i % 3)),
    case("ScatterND-rows", [randn(4, 3), ints([[1], [3]]), randn(2, 3)],
         lambda x, i, u: x.index_put((i[:, 0],), u)),
    case("ScatterND-elements", [randn(3, 3), ints([[0, 1], [2, 2]]), randn(2)],
         lambda x, i, u: x.index_put((i[:, 0], i[:, 1]), u)),
    case("ScatterND-add-duplicates", [randn(4, 3), ints([[1], [1], [2]]), randn(3, 3)],
         lambda x, i, u: x.index_put((i[:, 0],), u, accumulate=True), reduction="add"),
    case("Trilu-upper", [randn(4, 5)], torch.triu),
    case("Trilu-lower-k", [randn(2, 4, 4), ints(-1)], lambda x, k: torch.tril(x, -1), upper=0),
    case("Trilu-upper-k", [randn(3, 5), ints(2)], lambda x, k: torch.triu(x, 2)),
]

TORCH_ONLY_CASES: list[Case] = []

# Registered here with nothing to differentiate: outputs never float, or (Constant, ConstantOfShape) no float
# input. Their forward is checked by the tests below and by the official ONNX cases.
NON_FLOAT_OPS = {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor", "IsNaN",
                 "IsInf", "Shape", "Size", "ArgMax", "ArgMin", "Constant", "ConstantOfShape"}

FLOAT32_CASES = ["Gelu-default", "Gelu-tanh", "Softplus-basic", "Elu-alpha", "HardSigmoid-default", "Erf-basic",
                 "Mean-three-inputs-broadcast", "Einsum-12-...ij,...jk->...ik", "Einsum-7-...ii->...i",
                 "CumSum-exclusive-reverse", "ReduceL2-axes-attr-keepdims", "ReduceLogSumExp-all-axes",
                 "ReduceProd-with-zeros", "Range-float", "Pad-reflect", "Tile-2d", "GatherElements-axis1-repeated"]
