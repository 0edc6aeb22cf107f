"""Scopes of ops and leaves, on hand-made scopes and on a real export (resnet18's module names)."""

import pytest

import cgtools
from cgtools.export.hierarchy import common_prefix, group_at, has_hierarchy, scopes


def scoped_graph():
    return cgtools.load({
        "cgtools": "1.0", "inputs": [{"name": "x", "shape": [2]}],
        "params": [{"name": "w1", "value": [1.0, 2.0]}, {"name": "w2", "value": [3.0, 4.0]}],
        "nodes": [{"op": "Mul", "inputs": ["x", "w1"], "outputs": ["a"], "scope": ["net", "layer1"]},
                  {"op": "Mul", "inputs": ["a", "w2"], "outputs": ["b"], "scope": ["net", "layer2", "mul"]},
                  {"op": "Add", "inputs": ["b", "x"], "outputs": ["y"], "scope": ["net"]}],
        "outputs": ["y"]})


def test_leaves_live_where_their_readers_do():
    found = scopes(scoped_graph())
    assert found["a"] == ("net", "layer1") and found["b"] == ("net", "layer2", "mul")
    assert found["w1"] == ("net", "layer1") and found["w2"] == ("net", "layer2", "mul")
    assert found["x"] == ()  # the graph's input is drawn outside every module, though only net reads it


def test_common_prefix_and_cuts():
    assert common_prefix([("a", "b", "c"), ("a", "b"), ("a", "b", "d")]) == ("a", "b")
    assert common_prefix([("a",), ("b",)]) == () and common_prefix([]) == ()
    assert group_at(("a", "b", "c"), 1) == ("a",) and group_at(("a",), 3) == ("a",)


def test_a_graph_without_scopes_has_no_hierarchy():
    assert has_hierarchy(scoped_graph())
    assert not has_hierarchy(cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": 1.0}],
                                           "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]}],
                                           "outputs": ["y"]}))


@pytest.mark.slow
def test_resnet18s_modules_are_its_scopes(exported):
    graph = cgtools.load(exported("resnet18").path)
    found = scopes(graph)
    top = {scope[:1] for name, scope in found.items() if name in {n.name for n in graph.nodes}}
    assert {("conv1",), ("layer1",), ("layer4",), ("fc",)} <= top
    convs = [n for n in graph.nodes if n.op == "Conv"]
    for conv in convs:  # a conv's weight is read by that conv alone, and lives in its module
        assert found[conv.inputs[1]] == conv.scope
