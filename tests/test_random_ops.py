"""Seeded random ops draw what onnx's ReferenceEvaluator draws for the same node and seed; unseeded ones differ
from run to run. (The backend suite's expected Bernoulli outputs were drawn unseeded, so only their shape and
dtype can be compared.)"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from cgtools.onnx.read import load_onnx


def one_node_model(tmp_path, op, attrs, x):
    out_type = attrs.get("dtype", TensorProto.FLOAT)
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", out_type, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return model, path


@pytest.mark.parametrize("op, attrs", [("Bernoulli", {"seed": 3.0}),
                                       ("RandomUniformLike", {"seed": 5.0, "low": -2.0, "high": 3.0}),
                                       ("RandomNormalLike", {"seed": 7.0, "mean": 1.0, "scale": 0.5,
                                                             "dtype": TensorProto.DOUBLE})])
def test_seeded_draws_match_onnx_reference(tmp_path, op, attrs):
    x = np.random.default_rng(0).uniform(0, 1, (4, 5)).astype(np.float32)
    model, path = one_node_model(tmp_path, op, attrs, x)
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    got = load_onnx(path).run({"x": x}, backward=False).values["y"]
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    if op == "Bernoulli":
        assert 0 < got.sum() < got.size  # both outcomes drawn: the probabilities were used


def test_unseeded_draws_differ(tmp_path):
    x = np.zeros((50,), np.float32)
    _, path = one_node_model(tmp_path, "RandomUniformLike", {}, x)
    graph = load_onnx(path)
    first, second = (graph.run({"x": x}, backward=False).values["y"] for _ in range(2))
    assert first.shape == (50,) and not np.array_equal(first, second)
