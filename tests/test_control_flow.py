"""Control flow with subgraph bodies (If, Loop, Scan): forward equal to onnxruntime, bodies reading the enclosing
graph's tensors, the bodies kept through JSON and written back to ONNX, and gradients through the bodies (the
chains of tests/opcases/control.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sequences import test_chain_gradients_match_finite_differences_and_torch as check_chain  # one check

from cgtools import CgError, Graph
from cgtools.onnx.read import load_onnx
from cgtools.onnx.write import to_onnx
from opcases.control import CHAINS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, TP = onnx.helper, onnx.TensorProto


def loop_model(path):
    """y = x, then M times y = y * w + i (w read from the enclosing graph); scan output: every y."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Mul", ["y", "w"], ["yw"]),
         helper.make_node("Cast", ["i"], ["i_f"], to=TP.FLOAT), helper.make_node("Add", ["yw", "i_f"], ["y_out"]),
         helper.make_node("Identity", ["y_out"], ["scan"])], "body",
        [helper.make_tensor_value_info("i", TP.INT64, []), helper.make_tensor_value_info("c", TP.BOOL, []),
         helper.make_tensor_value_info("y", TP.FLOAT, [3])],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in (("c_out", TP.BOOL, []), ("y_out", TP.FLOAT, [3]),
                                                                 ("scan", TP.FLOAT, [3]))])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["w"]), helper.make_node("Loop", ["M", "", "x"], ["y", "ys"], body=body)],
        "loop", [helper.make_tensor_value_info("M", TP.INT64, []), helper.make_tensor_value_info("x", TP.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TP.FLOAT, [3]), helper.make_tensor_value_info("ys", TP.FLOAT, [None, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def if_model(path, then_output: str = "t"):
    """y = x·x where the sum of x is positive, else −x; the then branch names its tensor `then_output`."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "x"], [then_output])], "then", [],
                             [helper.make_tensor_value_info(then_output, TP.FLOAT, [3])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TP.FLOAT, [3])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0), helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)], "if",
        [helper.make_tensor_value_info("x", TP.FLOAT, [3])], [helper.make_tensor_value_info("y", TP.FLOAT, [3])],
        initializer=[onnx.numpy_helper.from_array(np.float32(0), "zero")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def ort_outputs(model_bytes, feeds):
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("make, feeds", [
    (loop_model, {"M": np.array(4, np.int64), "x": np.array([0.5, -1.0, 2.0], np.float32)}),
    (loop_model, {"M": np.array(1, np.int64), "x": np.array([1.5, 0.25, -2.0], np.float32)}),
    (if_model, {"x": np.array([0.5, -1.0, 2.0], np.float32)}),
    (if_model, {"x": np.array([-0.5, -1.0, 0.0], np.float32)}),
])
def test_bodies_read_the_enclosing_graph_and_match_onnxruntime(tmp_path, make, feeds):
    path = make(tmp_path / "model.onnx")
    graph = load_onnx(path)
    expected = ort_outputs(path.read_bytes(), feeds)
    run = graph.run(feeds, backward=False)
    for name, want in zip(graph.outputs, expected):
        np.testing.assert_allclose(run.values[name], want, rtol=1e-6)
    again = Graph.from_dict(graph.to_dict())  # the bodies kept as graph documents
    written = to_onnx(again, again.run(feeds, backward=False))  # and written back as ONNX subgraphs
    for name, got in zip(graph.outputs, ort_outputs(written.SerializeToString(), feeds)):
        np.testing.assert_allclose(got, run.values[name], rtol=1e-6)


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: c.id)
def test_body_gradients_match_finite_differences_and_torch(chain):
    """Backward replays the bodies: Loop and Scan last iteration first, If its branch taken, SequenceMap each
    element; the enclosing graph's tensors the bodies read add up their gradients."""
    check_chain(chain)


def test_loop_from_onnx_differentiates_like_torch(tmp_path):
    """The ONNX loop (w = x·x read by the body, y ← y·w + i) in float32: gradients of x equal torch's unrolled."""
    graph = load_onnx(loop_model(tmp_path / "model.onnx"))
    x = np.array([0.5, -1.0, 2.0], np.float32)
    seeds = {"y": np.array([1.0, -2.0, 0.5], np.float32), "ys": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)}
    run = graph.run({"M": np.array(4, np.int64), "x": x}, seeds=seeds)
    tx = torch.tensor(x, requires_grad=True)
    w, y, ys = tx * tx, tx, []
    for i in range(4):
        y = y * w + i
        ys.append(y)
    (y * torch.from_numpy(seeds["y"])).sum().add((torch.stack(ys) * torch.from_numpy(seeds["ys"])).sum()).backward()
    assert run.grads["x"].dtype == np.float32
    np.testing.assert_allclose(run.grads["x"], tx.grad.numpy(), rtol=1e-5)


def test_seeds_start_backward_from_several_outputs_and_name_unknown_ones():
    graph = Graph.from_dict({"cgtools": "1.0", "inputs": [{"name": "x"}],
                             "nodes": [{"op": "Mul", "inputs": ["x", "x"], "outputs": ["sq"]},
                                       {"op": "Sin", "inputs": ["x"], "outputs": ["s"]}], "outputs": ["sq", "s"]})
    x = np.array([0.3, -1.2])
    run = graph.run({"x": x}, seeds={"sq": np.array([1.0, 2.0]), "s": 3.0})
    np.testing.assert_allclose(run.grads["x"], 2 * x * [1.0, 2.0] + 3.0 * np.cos(x), rtol=1e-12)
    with pytest.raises(CgError, match="cannot start backward from 'sine': no tensor"):
        graph.run({"x": x}, seeds={"sine": 1.0})
