"""The cases of the first op families: arithmetic, matrix products, activations, ReduceSum/Mean/Max,
shape ops, Gather, Where, Max/Min, Clip and the losses.

Inputs are float64 and chosen away from kinks (0 for Relu/Abs, the bounds of Clip, ties of Max/Min/ReduceMax)
so that finite differences are meaningful; TORCH_ONLY_CASES then check that at the kinks themselves the
gradient follows torch's conventions. A few cases rerun in float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from opcheck import SKIP, Case, Const, away_from, case, ints, nonzero, positive, randn, rng

# ---- the case table ------------------------------------------------------------------------------------


def distinct(*shapes):
    """Arrays whose values, all together, are at least 0.1 apart: no ties for Max, Min and ReduceMax."""
    sizes = [int(np.prod(s)) for s in shapes]
    pool = (rng.permutation(sum(sizes)) - sum(sizes) / 2) * 0.1 + 0.01
    arrays = [part.reshape(s) for part, s in zip(np.split(pool, np.cumsum(sizes)[:-1]), shapes, strict=True)]
    return arrays[0] if len(arrays) == 1 else arrays


CASES: list[Case] = []

# Elementwise binary ops, with numpy broadcasting: the engine must sum gradients back to each shape.
BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}
for op, fn in BINARY.items():
    divisor = nonzero if op == "Div" else randn
    CASES += [
        case(f"{op}-same-shape", [randn(3, 4), divisor(3, 4)], fn),
        case(f"{op}-broadcast-row", [randn(3, 4), divisor(4)], fn),
        case(f"{op}-broadcast-both", [randn(2, 1, 4), divisor(3, 1)], fn),
        case(f"{op}-scalar-first", [randn(), divisor(3, 4)], fn),
    ]

CASES += [
    case("Neg-basic", [randn(3, 4)], torch.neg),
    case("Sqrt-basic", [positive(3, 4)], torch.sqrt),
    case("Exp-basic", [randn(3, 4)], torch.exp),
    case("Log-basic", [positive(3, 4)], torch.log),
    case("Abs-basic", [nonzero(3, 4)], torch.abs),
    case("Identity-basic", [randn(3, 4)], torch.clone),
    case("Relu-basic", [nonzero(3, 4)], torch.relu),
    case("LeakyRelu-default-alpha", [nonzero(3, 4)], lambda x: F.leaky_relu(x, 0.01)),
    case("LeakyRelu-alpha", [nonzero(3, 4)], lambda x: F.leaky_relu(x, 0.2), alpha=0.2),
    case("Sigmoid-basic", [3 * randn(3, 4)], torch.sigmoid),
    case("Tanh-basic", [randn(3, 4)], torch.tanh),
    # Pow: a constant exponent (float or integer, the latter on negative bases too), and an exponent that
    # is itself an input, broadcast against the base, so that it gets the gradient x^p ln x.
    case("Pow-const-float-exponent", [positive(3, 4), Const(2.5)], torch.pow),
    case("Pow-const-int-exponent-negative-base", [randn(3, 4), ints(3)], torch.pow),
    case("Pow-exponent-input-broadcast", [positive(3, 4), randn(4)], torch.pow),
    case("Pow-base-broadcast", [positive(4), randn(3, 1)], torch.pow),
]

for op, fn in {"Softmax": torch.softmax, "LogSoftmax": torch.log_softmax}.items():
    CASES += [
        case(f"{op}-default-axis", [2 * randn(3, 4)], lambda x, fn=fn: fn(x, -1)),
        case(f"{op}-axis0", [2 * randn(3, 4)], lambda x, fn=fn: fn(x, 0), axis=0),
        case(f"{op}-3d-axis1", [2 * randn(2, 3, 4)], lambda x, fn=fn: fn(x, 1), axis=1),
    ]

CASES += [
    case("MatMul-2d", [randn(3, 4), randn(4, 5)], torch.matmul),
    case("MatMul-batched", [randn(2, 3, 4), randn(2, 4, 5)], torch.matmul),
    case("MatMul-batched-broadcast", [randn(2, 1, 3, 4), randn(5, 4, 2)], torch.matmul),
    case("MatMul-1d-2d", [randn(4), randn(4, 5)], torch.matmul),
    case("MatMul-2d-1d", [randn(3, 4), randn(4)], torch.matmul),
    case("MatMul-1d-1d", [randn(4), randn(4)], torch.matmul),
    case("MatMul-1d-batched", [randn(4), randn(2, 4, 5)], torch.matmul),
    case("MatMul-batched-1d", [randn(2, 3, 4), randn(4)], torch.matmul),
    case("MatMul-stack-by-matrix", [randn(2, 3, 2, 4), randn(4, 5)], torch.matmul),
    case("MatMul-stack-of-one-row-by-matrix", [randn(1, 1, 4), randn(4, 5)], torch.matmul),
]

CASES += [
    case("Gemm-no-C", [randn(3, 4), randn(4, 5)], lambda A, B: A @ B),
    case("Gemm-C-vector", [randn(3, 4), randn(4, 5), randn(5)], lambda A, B, C: A @ B + C),
    case("Gemm-C-row", [randn(3, 4), randn(4, 5), randn(1, 5)], lambda A, B, C: A @ B + C),
    case("Gemm-C-column", [randn(3, 4), randn(4, 5), randn(3, 1)], lambda A, B, C: A @ B + C),
    case("Gemm-C-scalar", [randn(3, 4), randn(4, 5), randn()], lambda A, B, C: A @ B + C),
    case("Gemm-alpha-beta", [randn(3, 4), randn(4, 5), randn(3, 5)], lambda A, B, C: 0.5 * A @ B + 2 * C,
         alpha=0.5, beta=2.0),
    case("Gemm-transA", [randn(4, 3), randn(4, 5)], lambda A, B: A.T @ B, transA=1),
    case("Gemm-transB", [randn(3, 4), randn(5, 4)], lambda A, B: A @ B.T, transB=1),
    case("Gemm-batch-of-one-transB", [randn(1, 4), randn(5, 4), randn(5)], lambda A, B, C: A @ B.T + C, transB=1),
    case("Gemm-batch-of-one-transA", [randn(4, 1), randn(4, 5)], lambda A, B: A.T @ B, transA=1),
    case("Gemm-transA-transB-alpha-beta", [randn(4, 3), randn(5, 4), randn(5)],
         lambda A, B, C: 1.5 * A.T @ B.T - 0.7 * C, transA=1, transB=1, alpha=1.5, beta=-0.7),
]

# Reductions: axes as the attribute or as the int64 second input, negative axes, keepdims 0/1, all axes.
for op, fn in {"ReduceSum": torch.sum, "ReduceMean": torch.mean, "ReduceMax": torch.amax}.items():
    CASES += [
        case(f"{op}-axes-attr-keepdims", [distinct((2, 3, 4))], lambda x, fn=fn: fn(x, (1,), keepdim=True),
             axes=[1]),
        case(f"{op}-two-axes-attr-no-keepdims", [distinct((2, 3, 4))],
             lambda x, fn=fn: fn(x, (0, 2), keepdim=False), axes=[0, 2], keepdims=0),
        case(f"{op}-axes-input-negative", [distinct((2, 3, 4)), ints([-1])],
             lambda x, axes, fn=fn: fn(x, tuple(axes.tolist()), keepdim=False), keepdims=0),
        case(f"{op}-all-axes-keepdims", [distinct((2, 3, 4))],
             lambda x, fn=fn: fn(x, (0, 1, 2), keepdim=True)),
        case(f"{op}-all-axes-to-scalar", [distinct((2, 3, 4))],
             lambda x, fn=fn: fn(x, (0, 1, 2), keepdim=False), keepdims=0),
        case(f"{op}-empty-axes-input-means-all", [distinct((3, 4)), ints([])],
             lambda x, axes, fn=fn: fn(x, (0, 1), keepdim=True)),
    ]
CASES.append(case("ReduceSum-noop-with-empty-axes", [randn(3, 4)], torch.clone, noop_with_empty_axes=1))

# Ops that only move elements: shapes come as int64 constants or attributes.
CASES += [
    case("Reshape-zero-and-minus-one", [randn(2, 3, 4), ints([0, -1])], lambda x, s: x.reshape(2, 12)),
    case("Reshape-zero-in-middle", [randn(2, 3, 4), ints([4, 0, -1])], lambda x, s: x.reshape(4, 3, 2)),
    case("Reshape-flat", [randn(2, 3, 4), ints([-1])], lambda x, s: x.reshape(24)),
    case("Transpose-perm", [randn(2, 3, 4)], lambda x: x.permute(1, 2, 0), perm=[1, 2, 0]),
    case("Transpose-default-reverses", [randn(2, 3, 4)], lambda x: x.permute(2, 1, 0)),
    case("Flatten-default-axis", [randn(2, 3, 4)], lambda x: x.reshape(2, 12)),
    case("Flatten-axis0", [randn(2, 3, 4)], lambda x: x.reshape(1, 24), axis=0),
    case("Flatten-axis-rank", [randn(2, 3, 4)], lambda x: x.reshape(24, 1), axis=3),
    case("Flatten-negative-axis", [randn(2, 3, 4)], lambda x: x.reshape(6, 4), axis=-1),
    case("Squeeze-axes-attr", [randn(3, 1, 4, 1)], lambda x: x.squeeze(1), axes=[1]),
    case("Squeeze-axes-input-negative", [randn(3, 1, 4, 1), ints([-1])], lambda x, a: x.squeeze(-1)),
    case("Squeeze-all", [randn(3, 1, 4, 1)], lambda x: x.squeeze()),
    case("Unsqueeze-axes-attr", [randn(2, 3)], lambda x: x.unsqueeze(0).unsqueeze(3), axes=[0, 3]),
    case("Unsqueeze-axes-attr-negative", [randn(2, 3)], lambda x: x.reshape(1, 2, 3, 1), axes=[-1, 0]),
    case("Unsqueeze-axes-input", [randn(2, 3), ints([1])], lambda x, a: x.unsqueeze(1)),
    case("Concat-axis1-three-inputs", [randn(2, 1), randn(2, 3), randn(2, 2)],
         lambda *xs: torch.cat(xs, 1), axis=1),
    case("Concat-axis0-three-inputs", [randn(1, 3), randn(2, 3), randn(3, 3)],
         lambda *xs: torch.cat(xs, 0), axis=0),
    case("Concat-negative-axis", [randn(2, 3, 1), randn(2, 3, 2), randn(2, 3, 1)],
         lambda *xs: torch.cat(xs, -1), axis=-1),
    # Gather's gradient scatter-adds: an index picked twice collects both gradients.
    case("Gather-axis0-embedding-repeated-indices", [randn(5, 3), ints([[0, 2], [2, 4], [0, 0]])],
         lambda table, idx: F.embedding(idx, table)),
    case("Gather-axis1", [randn(3, 5, 2), ints([4, 1, 1])], lambda x, idx: torch.index_select(x, 1, idx),
         axis=1),
    case("Gather-negative-indices", [randn(4, 3), ints([-1, 0, -1])], lambda x, idx: x[idx]),
    case("Gather-negative-axis-scalar-index", [randn(3, 4), ints(2)], lambda x, idx: x[:, 2], axis=-1),
    case("Gather-axis1-distinct-negative-indices", [randn(2, 5, 3), ints([[-1, 0], [2, 1]])],
         lambda x, idx: x[:, idx % 5], axis=1),
]

CLIP_X = away_from(randn(3, 4), (-0.5, 0.6))
CASES += [
    case("Where-broadcast", [Const([[True], [False], [True]]), randn(1, 4), randn(4)], torch.where),
    case("Where-same-shape", [Const([[True, False, True], [False, False, True]]), randn(2, 3), randn(2, 3)],
         torch.where),
    case("Max-two-inputs-broadcast", distinct((3, 1), (4,)), torch.maximum),
    case("Max-three-inputs-broadcast", distinct((3, 4), (4,), (3, 1)),
         lambda a, b, c: torch.maximum(torch.maximum(a, b), c)),
    case("Min-two-inputs-broadcast", distinct((3, 1), (4,)), torch.minimum),
    case("Min-three-inputs-broadcast", distinct((3, 4), (4,), (3, 1)),
         lambda a, b, c: torch.minimum(torch.minimum(a, b), c)),
    case("Clip-min-and-max", [CLIP_X, Const(-0.5), Const(0.6)], torch.clamp),
    case("Clip-max-only", [CLIP_X, SKIP, Const(0.6)], lambda x, lo, hi: torch.clamp(x, max=hi)),
    case("Clip-min-only", [CLIP_X, Const(-0.5)], lambda x, lo: torch.clamp(x, min=lo)),
    case("Clip-no-bounds", [CLIP_X], torch.clone),
    case("Clip-bounds-are-inputs", [CLIP_X, np.array(-0.5), np.array(0.6)], torch.clamp),
]

# Losses. SoftmaxCrossEntropyLoss follows ONNX: "mean" divides by the summed weights of kept labels.
LABELS = ints([0, 2, 1, 2])
WEIGHTS = Const([0.2, 1.0, 2.5])


def xent(**kw):
    return lambda scores, labels, weight=None: F.cross_entropy(scores, labels, weight=weight, **kw)


CASES += [
    case("SoftmaxCrossEntropyLoss-mean", [randn(4, 3), LABELS], xent()),
    case("SoftmaxCrossEntropyLoss-sum", [randn(4, 3), LABELS], xent(reduction="sum"), reduction="sum"),
    case("SoftmaxCrossEntropyLoss-none", [randn(4, 3), LABELS], xent(reduction="none"), reduction="none"),
    case("SoftmaxCrossEntropyLoss-weights-mean", [randn(4, 3), LABELS, WEIGHTS], xent()),
    case("SoftmaxCrossEntropyLoss-weights-none", [randn(4, 3), LABELS, WEIGHTS], xent(reduction="none"),
         reduction="none"),
    case("SoftmaxCrossEntropyLoss-ignore-index", [randn(4, 3), ints([0, 1, 2, 1])], xent(ignore_index=1),
         ignore_index=1),
    case("SoftmaxCrossEntropyLoss-ignore-index-out-of-range-weights",
         [randn(4, 3), ints([0, -100, 2, 1]), WEIGHTS], xent(ignore_index=-100), ignore_index=-100),
    case("SoftmaxCrossEntropyLoss-3d-mean", [randn(2, 3, 4), ints([[0, 1, 2, 2], [1, 1, 0, 2]])], xent()),
    case("SoftmaxCrossEntropyLoss-3d-none", [randn(2, 3, 4), ints([[0, 1, 2, 2], [1, 1, 0, 2]])],
         xent(reduction="none"), reduction="none"),
    case("SoftmaxCrossEntropyLoss-3d-weights-ignore-index-sum",
         [randn(2, 3, 4), ints([[0, 1, 2, 2], [1, 1, 0, 2]]), WEIGHTS], xent(reduction="sum", ignore_index=2),
         reduction="sum", ignore_index=2),
    # The optional second output, log_prob, differentiated on its own (the loss output gets no gradient).
    Case("SoftmaxCrossEntropyLoss-log-prob-output", "SoftmaxCrossEntropyLoss", [randn(4, 3), LABELS],
         lambda scores, labels: F.log_softmax(scores, 1), output=1, n_outputs=2),
    case("MSELoss-mean", [randn(3, 4), randn(3, 4)], F.mse_loss),
    case("MSELoss-sum", [randn(3, 4), randn(3, 4)], lambda a, b: F.mse_loss(a, b, reduction="sum"),
         reduction="sum"),
    case("MSELoss-none", [randn(3, 4), randn(3, 4)], lambda a, b: F.mse_loss(a, b, reduction="none"),
         reduction="none"),
    case("MSELoss-broadcast-target", [randn(3, 4), randn(4)], lambda a, b: ((a - b) ** 2).mean()),
]

# At kinks finite differences mean nothing, but the convention should be torch's: relu'(0) = 0, a value on a
# bound of Clip passes its gradient, ties split it evenly, 0^p and x^0 have no gradient where torch has none.
TIES = [np.array([1.0, 2.0, 3.0, -1.0]), np.array([1.0, 0.0, 3.0, 4.0])]
AT_ZERO = np.array([-1.0, 0.0, 2.0])
TORCH_ONLY_CASES = [
    case("Relu-at-zero", [AT_ZERO], torch.relu),
    case("Abs-at-zero", [AT_ZERO], torch.abs),
    case("LeakyRelu-at-zero", [AT_ZERO], lambda x: F.leaky_relu(x, 0.1), alpha=0.1),
    case("Clip-on-the-bounds", [np.array([-1.0, -0.5, 0.0, 0.6, 1.0]), np.array(-0.5), np.array(0.6)],
         torch.clamp),
    case("Clip-min-above-max", [np.array([-1.0, 0.0, 1.0]), np.array(0.6), np.array(-0.5)], torch.clamp),
    case("Max-ties", TIES, torch.maximum),
    case("Min-ties", TIES, torch.minimum),
    case("ReduceMax-ties", [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])], lambda x: torch.amax(x, 1),
         axes=[1], keepdims=0),
    case("Pow-zero-base-and-zero-exponent", [np.array([0.0, 1.5, 0.0]), np.array([2.0, 0.0, 0.0])],
         torch.pow),
]

# Registered ops whose outputs are never float, so there is no gradient to test; name new ones on purpose.
NON_FLOAT_OPS: set[str] = set()

# float32 in, float32 out: values and gradients keep the inputs' dtype (float constants do not promote).
FLOAT32_CASES = ["MatMul-batched-broadcast", "Gemm-alpha-beta", "Softmax-3d-axis1", "LogSoftmax-default-axis",
                 "Sigmoid-basic", "LeakyRelu-alpha", "Pow-const-float-exponent", "Clip-min-and-max",
                 "ReduceMean-two-axes-attr-no-keepdims", "Gather-axis0-embedding-repeated-indices",
                 "SoftmaxCrossEntropyLoss-weights-mean", "MSELoss-mean"]
