"""Sequences and optionals: the chains of tests/opcases/sequence.py differentiated (finite differences, torch
autograd), sequences and optionals through the engine, the conformance comparison of sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cgtools.errors import CgError
from cgtools.graph import Graph
from cgtools.onnx import conformance
from cgtools.parts import Leaf, Node
from opcases.sequence import CHAINS

EPS = 1e-6


def graph_of(chain) -> Graph:
    leaves = [Leaf(name, "input", value) for name, value in chain.inputs.items()]
    leaves += [Leaf(name, "constant", np.asarray(value, np.int64)) for name, value in chain.constants.items()]
    nodes = [Node(op, inputs, outputs, attrs) for op, inputs, outputs, attrs in chain.nodes]
    return Graph(leaves, nodes, ["y"])


def weighted(graph, seed, inputs=None) -> float:
    return float(np.sum(graph.run(inputs, backward=False).values["y"] * seed))


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: c.id)
def test_chain_gradients_match_finite_differences_and_torch(chain):
    graph = graph_of(chain)
    y = graph.run(backward=False).values["y"]
    seed = np.random.default_rng(1).standard_normal(y.shape)
    run = graph.run(seed=seed)
    tensors = {name: torch.tensor(value, requires_grad=True) for name, value in chain.inputs.items()}
    expected = chain.torch_fn(*tensors.values())
    np.testing.assert_allclose(run.values["y"], expected.detach().numpy(), rtol=1e-12)
    (expected * torch.tensor(seed)).sum().backward()
    for name, value in chain.inputs.items():
        numeric = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[i] += EPS
            down[i] -= EPS
            numeric[i] = (weighted(graph, seed, {name: up}) - weighted(graph, seed, {name: down})) / (2 * EPS)
        np.testing.assert_allclose(run.grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)
        by_torch = np.zeros_like(value) if tensors[name].grad is None else tensors[name].grad.numpy()  # unused
        np.testing.assert_allclose(run.grads[name], by_torch, rtol=1e-12, err_msg=name)


def test_an_element_nobody_reads_gets_no_gradient():
    graph = graph_of(CHAINS[0])  # x split into columns [0] and [1:4]; only the second is read
    grads = graph.run(seed=np.ones((3, 3))).grads["x"]
    assert np.all(grads[:, 0] == 0) and np.all(grads[:, 1:] == 1)


def test_sequences_and_empty_optionals_stay_what_they_are():
    x = np.arange(6.0).reshape(2, 3)
    graph = Graph([Leaf("x", "input", x), Leaf("none", "input", None, "optional")],
                  [Node("SplitToSequence", ["x"], ["s"], {"axis": 1}), Node("SequenceLength", ["s"], ["n"]),
                   Node("OptionalHasElement", ["none"], ["has"]), Node("Optional", ["x"], ["o"]),
                   Node("OptionalHasElement", ["o"], ["has_x"])], ["s", "n", "has", "has_x"])
    values = graph.run(backward=False).values
    assert type(values["s"]) is list and [v.tolist() for v in values["s"]] == [[[0.0], [3.0]], [[1.0], [4.0]],
                                                                                [[2.0], [5.0]]]
    assert values["n"] == 3 and values["n"].dtype == np.int64
    assert not values["has"] and values["has_x"]


def test_a_position_out_of_range_is_a_clear_error():
    graph = graph_of(CHAINS[0])  # a sequence of 2 tensors, read at position 7
    graph.leaves["one"].value = np.array(7)
    with pytest.raises(CgError, match="position 7 is out of range for a sequence of 2 tensors"):
        graph.run(backward=False)


def test_the_comparison_reads_sequences_element_by_element():
    a = [np.ones(2, np.float32), np.zeros(3, np.float32)]
    assert conformance.mismatch("s", [v.copy() for v in a], a) is None
    assert "a sequence of 1, expected a sequence of 2" in conformance.mismatch("s", a[:1], a)
    assert "output 's[1]'" in conformance.mismatch("s", [a[0], a[1] + 1], a)
    assert "none, expected a tensor" not in (conformance.mismatch("o", None, None) or "")
    assert "a tensor, expected none" in conformance.mismatch("o", a[0], None)
