"""Properties over many random shapes (hypothesis): broadcast gradients against PyTorch, the format's round
trip, and expressions that are never run."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import broadcastable_shapes

import cgtools
from cgtools.expr import parse

OPS = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}


@settings(max_examples=60, deadline=None)
@given(shapes=broadcastable_shapes(shape=(3, 1, 4), min_dims=0, max_dims=4),
       op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2**31))
def test_broadcast_gradients_match_torch(shapes, op, seed):
    """Whatever the broadcast, each input's gradient has its shape and equals torch's."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.5, 2, (3, 1, 4)), rng.uniform(0.5, 2, shapes)
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "a"}, {"name": "b"}],
                          "nodes": [{"op": op, "inputs": ["a", "b"], "outputs": ["y"]},
                                    {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                          "outputs": ["s"]})
    run = graph.run({"a": a, "b": b})
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    OPS[op](ta, tb).sum().backward()
    assert run.grads["a"].shape == a.shape and run.grads["b"].shape == b.shape
    np.testing.assert_allclose(run.grads["a"], ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(run.grads["b"], tb.grad.numpy(), rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=8),
       name=st.text(min_size=1, max_size=12))
def test_any_name_and_values_survive_the_round_trip(values, name):
    doc = {"cgtools": "1.0", "params": [{"name": name, "value": values}],
           "nodes": [{"op": "ReduceSum", "inputs": [name], "outputs": ["s" + name], "attrs": {"keepdims": 0}}],
           "outputs": ["s" + name]}
    graph = cgtools.load(doc)
    again = cgtools.Graph.from_networkx(graph.to_networkx())
    assert again.to_dict() == graph.to_dict()
    assert graph.run().grads[name].tolist() == [1.0] * len(values)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_expressions_are_parsed_never_run(text):
    """Any text either becomes a graph or a CgError: no other exception, nothing executed."""
    try:
        doc = parse(text)
    except cgtools.CgError:
        return
    assert doc["nodes"] and doc["outputs"]
