"""The ops of cgtools/ops/math.py, logic.py and slicing.py.

CASES (differentiable ops) are checked against finite differences and torch autograd, as in test_ops.py;
inputs stay away from kinks (integers for Floor/Ceil/Round, 0 for Sign/Elu/ReduceL1, the corners of
HardSigmoid, ties for ReduceMin), where the gradient is zero or torch's convention. Then every official ONNX
node test case whose graph uses one of these ops and only registered ops (the `_expanded` function bodies
too) is converted to a cgtools graph and run forward against the stored outputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from opcheck import (
    SKIP,
    Case,
    Const,
    case,
    check_against_torch,
    check_finite_differences,
    check_keeps_float32,
    params,
    randn,
    rng,
)

import cgtools
from cgtools.ops import REGISTRY


def ints(values):
    return Const(values, np.int64)


def nonzero(*shape):  # at least 0.2 from 0, the kink of Sign, Elu, Selu, ReduceL1
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.5, shape)


def off_integers(*shape):
    """Values whose fractional parts keep 0.1 from integers and from halves: no jumps of Floor, Ceil, Round."""
    return rng.integers(-3, 3, shape) + rng.choice([0.15, 0.35, 0.65, 0.85], shape) + rng.uniform(-0.05, 0.05, shape)


def distinct(*shape):  # no ties for ReduceMin
    return ((rng.permutation(int(np.prod(shape))) - np.prod(shape) / 2) * 0.1 + 0.01).reshape(shape)


def away_from(x, points, margin=0.05):
    x = x.copy()
    for p in points:
        x[np.abs(x - p) < margin] = p + 2 * margin
    return x


CASES: list[Case] = []

# ---- math.py -------------------------------------------------------------------------------------------

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

CASE_BY_ID = {c.id: c for c in CASES}
assert len(CASE_BY_ID) == len(CASES), "case ids must be unique"

# Registered here with nothing to differentiate: outputs never float, or (Constant, ConstantOfShape) no float
# input. Their forward is checked by the tests below and by the official ONNX cases.
NON_FLOAT_OPS = {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor", "IsNaN",
                 "IsInf", "Shape", "Size", "ArgMax", "ArgMin", "Constant", "ConstantOfShape"}


@pytest.mark.parametrize("c", params(CASES))
def test_gradient_matches_finite_differences(c):
    check_finite_differences(c)


@pytest.mark.parametrize("c", params(CASES))
def test_matches_torch(c):
    check_against_torch(c)


FLOAT32_CASES = ["Gelu-default", "Gelu-tanh", "Softplus-basic", "Elu-alpha", "HardSigmoid-default", "Erf-basic",
                 "Mean-three-inputs-broadcast", "Einsum-12-...ij,...jk->...ik", "Einsum-7-...ii->...i",
                 "CumSum-exclusive-reverse", "ReduceL2-axes-attr-keepdims", "ReduceLogSumExp-all-axes",
                 "ReduceProd-with-zeros", "Range-float", "Pad-reflect", "Tile-2d", "GatherElements-axis1-repeated"]


@pytest.mark.parametrize("case_id", FLOAT32_CASES)
def test_float32_stays_float32(case_id):
    check_keeps_float32(CASE_BY_ID[case_id])


def graph(nodes, inputs=("x",), outputs=("L",), constants=()):
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": n} for n in inputs], "constants": list(constants),
                         "nodes": nodes, "outputs": list(outputs)})


def test_split_with_every_part_used_gets_every_gradient():
    x = randn(6, 2)
    g = graph([{"op": "Split", "inputs": ["x"], "outputs": ["a", "b", "c"], "attrs": {"num_outputs": 3}},
               {"op": "Mul", "inputs": ["a", "b"], "outputs": ["ab"]},
               {"op": "Sum", "inputs": ["ab", "c", "a"], "outputs": ["s"]},
               {"op": "ReduceSum", "inputs": ["s"], "outputs": ["L"], "attrs": {"keepdims": 0}}])
    tx = torch.tensor(x, requires_grad=True)
    a, b, c = torch.split(tx, 2)
    (a * b + c + a).sum().backward()
    np.testing.assert_allclose(g.run({"x": x}).grads["x"], tx.grad.numpy(), rtol=1e-12)


def test_cast_to_int_and_back_passes_no_gradient():
    g = graph([{"op": "Cast", "inputs": ["x"], "outputs": ["i"], "attrs": {"to": 7}},
               {"op": "Cast", "inputs": ["i"], "outputs": ["f"], "attrs": {"to": 11}},
               {"op": "Mul", "inputs": ["f", "x"], "outputs": ["y"]},
               {"op": "ReduceSum", "inputs": ["y"], "outputs": ["L"], "attrs": {"keepdims": 0}}])
    x = np.array([1.7, -2.2, 3.5])
    run = g.run({"x": x})
    np.testing.assert_array_equal(run.values["i"], [1, -2, 3])  # truncated towards zero, as ONNX and C cast
    assert run.values["i"].dtype == np.int64
    np.testing.assert_array_equal(run.grads["x"], [1.0, -2.0, 3.0])  # only through the Mul's direct use of x


def test_cast_float32_to_float64_and_its_gradient_back_to_float32():
    g = graph([{"op": "Cast", "inputs": ["x"], "outputs": ["d"], "attrs": {"to": 11}},
               {"op": "ReduceSumSquare", "inputs": ["d"], "outputs": ["L"], "attrs": {"keepdims": 0}}])
    run = g.run({"x": np.array([1.5, -2.0], np.float32)})
    assert run.values["d"].dtype == np.float64 and run.grads["x"].dtype == np.float32
    np.testing.assert_array_equal(run.grads["x"], [3.0, -4.0])


def test_comparisons_and_logic_give_bools_and_block_gradients():
    g = graph([{"op": "Greater", "inputs": ["x", "y"], "outputs": ["gt"]},
               {"op": "IsNaN", "inputs": ["x"], "outputs": ["nan"]},
               {"op": "Or", "inputs": ["gt", "nan"], "outputs": ["keep"]},
               {"op": "Where", "inputs": ["keep", "x", "y"], "outputs": ["m"]},
               {"op": "ReduceSum", "inputs": ["m"], "outputs": ["L"], "attrs": {"keepdims": 0}}],
              inputs=("x", "y"))
    run = g.run({"x": np.array([1.0, np.nan, -1.0]), "y": np.array([0.0, 0.0, 2.0])})
    np.testing.assert_array_equal(run.values["keep"], [True, True, False])
    assert run.values["keep"].dtype == bool
    np.testing.assert_array_equal(run.grads["x"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(run.grads["y"], [0.0, 0.0, 1.0])


def test_shape_size_range_constant_of_shape_make_tensors_from_shapes():
    g = graph([{"op": "Shape", "inputs": ["x"], "outputs": ["s"], "attrs": {"start": -2}},
               {"op": "Size", "inputs": ["x"], "outputs": ["n"]},
               {"op": "ConstantOfShape", "inputs": ["s"], "outputs": ["ones"],
                "attrs": {"value": {"dtype": "int32", "shape": [1], "data": [1]}}},
               {"op": "Range", "inputs": ["zero", "n", "three"], "outputs": ["r"]}],
              outputs=("s", "n", "ones", "r"),
              constants=[{"name": "zero", "dtype": "int64", "value": 0},
                         {"name": "three", "dtype": "int64", "value": 3}])
    values = g.run({"x": np.zeros((2, 3, 4))}, backward=False).values
    np.testing.assert_array_equal(values["s"], [3, 4])
    assert g.run({"x": np.zeros((2, 3, 4))}, backward=False).values["s"].dtype == np.int64
    assert values["n"] == 24 and values["n"].dtype == np.int64
    assert values["ones"].shape == (3, 4) and values["ones"].dtype == np.int32 and values["ones"].sum() == 12
    np.testing.assert_array_equal(values["r"], np.arange(0, 24, 3))


@pytest.mark.parametrize("attrs, expected", [
    ({"value": {"shape": [2, 2], "data": [1.0, 2.0, 3.0, 4.0]}}, np.array([[1.0, 2.0], [3.0, 4.0]])),
    ({"value": {"dtype": "int32", "data": 7}}, np.array(7, np.int32)),
    ({"value_float": 1.5}, np.array(1.5, np.float32)),
    ({"value_floats": [1.5, -2.0]}, np.array([1.5, -2.0], np.float32)),
    ({"value_int": 3}, np.array(3, np.int64)),
    ({"value_ints": [3, 4]}, np.array([3, 4], np.int64)),
])
def test_constant_makes_its_attribute_a_tensor(attrs, expected):
    g = graph([{"op": "Constant", "outputs": ["c"], "attrs": attrs}], inputs=(), outputs=("c",))
    np.testing.assert_array_equal(g.run(backward=False).values["c"], expected, strict=True)


def test_constant_wants_exactly_one_value():
    with pytest.raises(cgtools.CgError, match=r"nodes\[0\] \(Constant 'c'\): Constant needs exactly one of the "
                                              r"attributes value, .*; found value_int, value_ints"):
        graph([{"op": "Constant", "outputs": ["c"], "attrs": {"value_int": 1, "value_ints": [1]}}], inputs=(),
              outputs=("c",)).run(backward=False)


def test_argmax_select_last_index_and_keepdims():
    g = graph([{"op": "ArgMax", "inputs": ["x"], "outputs": ["first"], "attrs": {"axis": 1, "keepdims": 0}},
               {"op": "ArgMin", "inputs": ["x"], "outputs": ["last"], "attrs": {"axis": -1, "select_last_index": 1}}],
              outputs=("first", "last"))
    values = g.run({"x": np.array([[2.0, 5.0, 5.0, 0.0], [1.0, 0.0, 3.0, 0.0]])}, backward=False).values
    np.testing.assert_array_equal(values["first"], [1, 2])
    np.testing.assert_array_equal(values["last"], [[3], [3]])


@pytest.mark.parametrize("attrs, message", [
    ({"to": 16}, r"nodes\[0\] \(Cast 'L'\): cannot cast to ONNX type 16 \(attribute 'to'\)"),
    ({}, "needs attribute 'to'"),
])
def test_cast_errors_name_the_problem(attrs, message):
    with pytest.raises(cgtools.CgError, match=message):
        graph([{"op": "Cast", "inputs": ["x"], "outputs": ["L"], "attrs": attrs}]).run({"x": np.zeros(2)})


def test_split_without_sizes_or_count_says_what_it_needs():
    with pytest.raises(cgtools.CgError, match="num_outputs"):
        graph([{"op": "Split", "inputs": ["x"], "outputs": ["a", "L"]}]).run({"x": np.zeros(4)}, backward=False)


# ---- the official ONNX node test cases, forward --------------------------------------------------------

OUR_OPS = {name for name, cls in REGISTRY.items() if cls.__module__ in
           ("cgtools.ops.math", "cgtools.ops.logic", "cgtools.ops.slicing")}
BUILT_IN = {name for name, cls in REGISTRY.items() if cls.__module__.startswith("cgtools.ops.")}
NUMPY_KINDS = "biuf"  # bool, int, uint, float; bfloat16, float8, int4 and strings are not numpy's own


def official_cases() -> dict:
    """Name -> TestCase of every official node case using one of our ops and only built-in ops."""
    import onnx  # noqa: F401  (fails here, not at collection of other files, when onnx is missing)
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):  # the case scripts' own overflow warnings
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    chosen = {}
    for t in cases:
        ops = {node.op_type for node in t.model.graph.node}
        if ops & OUR_OPS and ops <= BUILT_IN:
            chosen[t.name] = t
    return chosen


OFFICIAL = official_cases()


def unsupported_dtype(t) -> str | None:
    """Why the case cannot run here: a value numpy holds only through extension types, or not at all."""
    for inputs, outputs in t.data_sets:
        for value in [*inputs, *outputs]:
            if not isinstance(value, (np.ndarray, np.generic)):  # a TensorProto: float8, int4, float4
                return f"{type(value).__name__} values (float8, int4 and the like)"
            if value.dtype.kind not in NUMPY_KINDS:
                return f"dtype {value.dtype}"
    return None


def attribute(a):
    from onnx import TensorProto, helper, numpy_helper

    value = helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, TensorProto):
        array = numpy_helper.to_array(value)
        return {"dtype": array.dtype.name, "shape": list(array.shape), "data": array.ravel().tolist()}
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    return value


def graph_dict(model) -> dict:
    """The cgtools graph of an ONNX model: graph inputs fed at run time, initializers as constants."""
    from onnx import numpy_helper

    g = model.graph
    initializers = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    nodes = []
    for node in g.node:
        attrs = {a.name: attribute(a) for a in node.attribute}
        if node.op_type == "Split" and not {"split", "num_outputs"} & set(attrs) and len(node.input) < 2:
            # ONNX splits into as many equal parts as the node has outputs; cgtools ops do not see their outputs
            attrs["num_outputs"] = len(node.output)
        nodes.append({"op": node.op_type, "inputs": list(node.input), "outputs": list(node.output), "attrs": attrs})
    return {"cgtools": "1.0", "inputs": [{"name": i.name} for i in g.input if i.name not in initializers],
            "constants": [{"name": name, "dtype": a.dtype.name, "shape": list(a.shape), "data": a.ravel().tolist()}
                          for name, a in initializers.items()],
            "nodes": nodes, "outputs": [o.name for o in g.output]}


# Cases that fail for want of a change outside the new ops (see the reason).
@pytest.mark.parametrize("name", [name for name in sorted(OFFICIAL) if not unsupported_dtype(OFFICIAL[name])])
def test_official_onnx_case(name):
    t = OFFICIAL[name]
    g = cgtools.load(graph_dict(t.model))
    initializers = {i.name for i in t.model.graph.initializer}
    input_names = [i.name for i in t.model.graph.input if i.name not in initializers]
    for inputs, outputs in t.data_sets:
        with np.errstate(all="ignore"):  # some cases take logs of zeros or cast NaNs on purpose
            values = g.run({name: np.asarray(x) for name, x in zip(input_names, inputs)}, backward=False).values
        for out, expected in zip(g.outputs, map(np.asarray, outputs), strict=True):
            got = values[out]
            assert got.shape == expected.shape and got.dtype == expected.dtype, \
                f"{out}: {got.dtype}{list(got.shape)}, expected {expected.dtype}{list(expected.shape)}"
            if expected.dtype.kind == "f":
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, equal_nan=True, err_msg=out)
            else:
                np.testing.assert_array_equal(got, expected, err_msg=out)


def test_every_op_added_here_has_official_cases():
    covered = set().union(*({node.op_type for node in t.model.graph.node} for t in OFFICIAL.values()))
    assert OUR_OPS <= covered, f"ops without official cases: {sorted(OUR_OPS - covered)}"
