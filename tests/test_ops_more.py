"""The later op families beyond their case tables (tests/opcases/extended.py): graphs of several of their
ops, their refusals, and that every op those tables cover has node test cases in ONNX's suite (which
test_onnx_conformance.py runs).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import cgtools
from helpers import error_of, graph_of
from opcases import extended
from opcheck import node_suite_cases, randn


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
    ({"to": 8}, r"nodes\[0\] \(Cast 'L'\): cannot cast to ONNX type 8 \(attribute 'to'\)"),  # string
    ({}, "needs attribute 'to'"),
])
def test_cast_errors_name_the_problem(attrs, message):
    with pytest.raises(cgtools.CgError, match=message):
        graph([{"op": "Cast", "inputs": ["x"], "outputs": ["L"], "attrs": attrs}]).run({"x": np.zeros(2)})


@pytest.mark.parametrize("op, attrs, expected", [
    ("Pad", {"mode": "mirror"}, "one of 'constant', 'reflect', 'edge', 'wrap', found 'mirror'"),
    ("ScatterND", {"reduction": "sum"}, "one of 'none', 'add', 'mul', 'max', 'min', found 'sum'"),
    ("Gelu", {"approximate": "fast"}, "one of 'none', 'tanh', found 'fast'"),
    ("MSELoss", {"reduction": "avg"}, "one of 'mean', 'sum', 'none', found 'avg'"),
    ("Pad", {"mode": 1}, "one of 'constant', 'reflect', 'edge', 'wrap', found 1"),
])
def test_enum_attributes_are_checked_at_load(op, attrs, expected):
    arity = {"ScatterND": 3, "MSELoss": 2}.get(op, 1)
    node = {"op": op, "inputs": ["x"] * arity, "outputs": ["L"], "attrs": attrs}
    with pytest.raises(cgtools.CgError, match=re.escape(f"nodes[0].attrs.{next(iter(attrs))}: expected {expected}")):
        graph([node])


def test_split_without_sizes_or_count_says_what_it_needs():
    with pytest.raises(cgtools.CgError, match="num_outputs"):
        graph([{"op": "Split", "inputs": ["x"], "outputs": ["a", "L"]}]).run({"x": np.zeros(4)}, backward=False)


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint8", "uint16", "uint32", "uint64"])
def test_comparisons_and_clip_on_integer_dtypes_the_format_does_not_feed(dtype):
    """ONNX's cases of these dtypes are refused by the format's loader (cgtools.onnx.conformance counts them as
    unsupported), yet the ops compute them: fed directly, they agree with numpy."""
    ops = {"Equal": np.equal, "Greater": np.greater, "Less": np.less, "GreaterOrEqual": np.greater_equal,
           "LessOrEqual": np.less_equal}
    g = graph([{"op": op, "inputs": ["x", "y"], "outputs": [op]} for op in ops]
              + [{"op": "Clip", "inputs": ["x", "lo", "hi"], "outputs": ["clip"]}],
              inputs=("x", "y", "lo", "hi"), outputs=(*ops, "clip"))
    x, y = np.array([0, 3, 7, 100], dtype), np.array([0, 4, 6, 100], dtype)
    lo, hi = np.array(2, dtype), np.array(50, dtype)
    values = g.run({"x": x, "y": y, "lo": lo, "hi": hi}, backward=False).values
    for op, fn in ops.items():
        np.testing.assert_array_equal(values[op], fn(x, y), strict=True, err_msg=op)
    np.testing.assert_array_equal(values["clip"], np.clip(x, lo, hi), strict=True)


# ---- ONNX's own node test cases (each runs in test_onnx_conformance.py) -----------------------------------

FAMILY_OPS = {c.op for c in extended.CASES} | extended.NON_FLOAT_OPS
NODE_CASES = node_suite_cases(FAMILY_OPS)


@pytest.mark.onnx_suite
def test_every_op_here_has_onnx_node_cases():
    covered = set().union(*(case.ops for case in NODE_CASES))
    assert FAMILY_OPS <= covered, f"ops without ONNX node cases: {sorted(FAMILY_OPS - covered)}"


def test_an_older_opsets_attribute_form_feeds_its_input_and_not_both():
    """ReduceSum's axes as the attribute of opsets before 13 or as the input since: the same op, the same
    numbers; given both ways at once, the graph is refused at load, naming the node."""
    x = {"name": "x", "value": [[1.0, 2.0], [3.0, 4.0]]}
    as_attr = graph_of([{"op": "ReduceSum", "inputs": ["x"], "outputs": ["s"], "attrs": {"axes": [0], "keepdims": 0}}],
                       inputs=[x])
    as_input = graph_of([{"op": "ReduceSum", "inputs": ["x", "axes"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                        inputs=[x], constants=[{"name": "axes", "value": {"dtype": "int64", "data": [0]}}])
    sums = [g.run(backward=False).values["s"].tolist() for g in (as_attr, as_input)]
    assert sums == [[4, 6], [4, 6]]
    both = {"cgtools": "1.0", "inputs": [x], "constants": [{"name": "axes", "value": {"dtype": "int64", "data": [0]}}],
            "nodes": [{"op": "ReduceSum", "inputs": ["x", "axes"], "outputs": ["s"], "attrs": {"axes": [0]}}],
            "outputs": ["s"]}
    message = error_of(cgtools.load, both)
    assert "nodes[0] (ReduceSum 's').attrs" in message and "not both" in message
