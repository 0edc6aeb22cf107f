"""The debugging tools on real models exported at test time (tests/models.py): every tensor agrees with
onnxruntime, a deliberately altered copy is caught at exactly the altered node, and the gradients pass gradcheck."""

from __future__ import annotations

import onnx
import pytest
from models import REAL_MODELS
from onnx import numpy_helper

import cgtools
from cgtools.compare import compare
from cgtools.gradcheck import gradcheck
from cgtools.parts import Node

pytestmark = pytest.mark.slow


def summed(path) -> cgtools.Graph:
    """The model with L = Σ y as its loss: a scalar for gradcheck to differentiate."""
    graph = cgtools.load(path)
    total = Node("ReduceSum", ["y"], ["L"], {"keepdims": 0})
    return cgtools.Graph(list(graph.leaves.values()), [*graph.nodes, total], ["L"])


@pytest.mark.parametrize("name", REAL_MODELS)
def test_every_tensor_agrees_with_onnxruntime(name, exported):
    model = exported(name)
    result = compare(model.path, inputs={"x": model.x.numpy()})
    assert result.outputs_agree and result.divergence is None, result.report()
    made = {out for node in onnx.load(str(model.path)).graph.node for out in node.output if out}
    assert made <= {d.name for d in result.tensors}  # every intermediate was compared
    assert all(d.ok for d in result.tensors)


def altered(source, target, change):
    model = onnx.load(str(source))
    changed = change(model)
    onnx.save(model, str(target))
    return target, changed


def change_a_weight(op_type: str, index: int):
    def change(model):
        node = [n for n in model.graph.node if n.op_type == op_type][index]
        (weight,) = [t for t in model.graph.initializer if t.name == node.input[1]]
        array = numpy_helper.to_array(weight).copy()
        array += 0.25  # every tap: a corner tap alone may only ever see padding on a 1×1 feature map
        weight.CopyFrom(numpy_helper.from_array(array, weight.name))
        return node

    return change


def change_an_attribute(op_type: str, attribute: str, value):
    def change(model):
        node = next(n for n in model.graph.node if n.op_type == op_type)
        (attr,) = [a for a in node.attribute if a.name == attribute]
        attr.f = value
        return node

    return change


@pytest.mark.parametrize("name, change, leaves", [
    ("resnet18", change_a_weight("Conv", 7), True),
    ("densenet121", change_a_weight("Conv", 40), True),
    ("mobilenet_v2", change_a_weight("Conv", 20), True),
    ("resnet18", change_an_attribute("Gemm", "alpha", 2.0), False),
    ("transformer_encoder", change_an_attribute("LayerNormalization", "epsilon", 0.5), False),
], ids=["resnet18-weight", "densenet121-weight", "mobilenet_v2-weight", "resnet18-attribute",
        "transformer_encoder-attribute"])
def test_an_altered_copy_is_caught_at_the_altered_node(name, change, leaves, exported, tmp_path):
    model = exported(name)
    other, node = altered(model.path, tmp_path / "altered.onnx", change)
    result = compare(model.path, other, inputs={"x": model.x.numpy()})
    assert result.divergence is not None, result.report()  # (an untrained mobilenet's logits barely move)
    assert result.divergence.op == node.op_type and f"'{node.name}'" in result.divergence.place, result.report()
    differing = [name for _, name in result.divergence.leaves_differing]
    assert differing == ([node.input[1]] if leaves else [])


@pytest.mark.parametrize("name", REAL_MODELS)
def test_gradients_pass_gradcheck(name, exported):
    """The input's gradient runs through every layer; the first and last params stand for the rest (each
    element checked costs two float64 runs of the whole model). The trainable export has no exact zeros at
    ReLU's kink: an untrained model's folded BatchNorm makes biases of exactly 0 there, where the finite
    difference sees half a slope."""
    model = exported(name, trainable=True)
    graph = summed(model.path)
    params = [leaf.name for leaf in graph.leaves_of("param")]
    checked = ["x", params[0], params[-1]]
    report = gradcheck(graph, {"x": model.x.numpy()}, max_elements=4, rtol=1e-4, atol=1e-6, tensors=checked)
    ok = report.ok  # (asserted by name: pytest would print the whole report's repr)
    assert ok, report.table()
    assert sorted(t.name for t in report.tensors) == sorted(checked)

