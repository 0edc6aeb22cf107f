"""`cgtools info`: a graph's ops, params, inputs and outputs, multiply-accumulates counted by hand, and what
reaches nothing."""

from __future__ import annotations

import json

import cgtools
from cgtools.info import info
from helpers import EXAMPLES, graph_of, run_in_process


def test_the_mlp_example_counted_by_hand():
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    facts = info(graph, graph.run(backward=False))
    assert facts.ops == {"MatMul": 2, "Add": 2, "Relu": 1, "SoftmaxCrossEntropyLoss": 1}
    assert (facts.params, facts.param_elements, facts.param_bytes) == (4, 3 * 5 + 5 + 5 * 3 + 3, 38 * 8)
    assert facts.inputs == [["X", "float64", [4, 3]], ["labels", "int64", [4]]]
    assert facts.outputs == [["L", "float64", []]]
    assert facts.macs == 4 * 5 * 3 + 4 * 3 * 5  # X·W1 and h·W2: output elements × the shared dimension
    assert facts.unused == [] and facts.without_gradient == []


def test_a_conv_counts_its_kernel_per_output_element():
    conv = graph_of([{"op": "Conv", "inputs": ["x", "w"], "outputs": ["y"]}],
                    inputs=[{"name": "x", "dtype": "float32", "shape": [1, 2, 5, 5]}],
                    params=[{"name": "w", "value": {"dtype": "float32", "shape": [3, 2, 3, 3], "data": [0.5] * 54}}])
    facts = info(conv, conv.run(conv.random_inputs(0), backward=False))
    assert facts.outputs == [["y", "float32", [1, 3, 3, 3]]] and facts.macs == 27 * (2 * 3 * 3)


def test_nodes_reaching_no_output_and_params_the_loss_ignores():
    graph = graph_of([{"op": "Mul", "inputs": ["x", "w"], "outputs": ["y"]},
                      {"op": "Mul", "inputs": ["x", "v"], "outputs": ["unused"]},
                      {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                     inputs=[{"name": "x", "value": [1.0, 2.0]}],
                     params=[{"name": "w", "value": [1.0, 1.0]}, {"name": "v", "value": [3.0, 3.0]}])
    facts = info(graph)
    assert facts.unused == ["unused"] and facts.without_gradient == ["v"] and facts.macs is None
    assert "nodes reaching no output: unused" in facts.report()


def test_the_command_on_a_model_without_input_values(capsys, tmp_path):
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({"cgtools": "1.0", "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 2, 5, 5]}],
                                "params": [{"name": "w", "value": {"dtype": "float32", "shape": [3, 2, 3, 3],
                                                                   "data": [0.5] * 54}}],
                                "nodes": [{"op": "Conv", "inputs": ["x", "w"], "outputs": ["y"]}], "outputs": ["y"]}))
    plain = run_in_process(capsys, "info", path)
    assert plain.returncode == 0 and "no value for x" in plain.stderr and "multiply" not in plain.stdout
    drawn = run_in_process(capsys, "info", path, "--random-inputs")
    assert "multiply-accumulates (Conv, Gemm, MatMul): 486" in drawn.stdout
    assert "output y: float32 [1, 3, 3, 3]" in drawn.stdout and "1 params: 54 elements, 216 bytes" in drawn.stdout
