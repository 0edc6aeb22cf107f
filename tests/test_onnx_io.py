"""ONNX interop: JSON -> ONNX (onnx.checker, full check; onnxruntime gives our forward), ONNX -> JSON (the same
forward), how names, kinds, dtypes and opsets map, the CLI (`convert`, `run` and `render` on .onnx files), and
the errors: each a CgError naming the file, and through the CLI `error: …` with exit code 1, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import cgtools
from cgtools.io import convert
from cgtools.onnx.mapping import INSTALL_HINT
from cgtools.onnx.read import load_onnx
from cgtools.onnx.write import save_onnx, to_onnx
from helpers import EXAMPLES, error_of, run_cli, run_in_process

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
F = TensorProto.FLOAT


# ---- helpers --------------------------------------------------------------------------------------------

def model_of(nodes, inputs, outputs, initializers=(), opset=18, ir_version=None, **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test_graph", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def tensor(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def onnxruntime_run(model, feeds: dict) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # inputs with defaults are initializers named like inputs: ORT warns
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else Path(model).read_bytes()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)





def assert_cli_error(result, *expected: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
    for part in expected:
        assert part in result.stderr, result.stderr


def assert_same(got, expected, rtol=1e-6):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-12)


def mlp_model(hidden=40) -> onnx.ModelProto:
    """x[2,30] @ W[30,hidden] + b, ReLU, reshaped by an int64 initializer, scaled by a Constant node; node names
    left empty, repeated, or taken by a tensor."""
    rng = np.random.default_rng(0)
    W = numpy_helper.from_array(rng.standard_normal((30, hidden)).astype(np.float32), "layer/W")
    b = numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), "layer/b")
    shape = numpy_helper.from_array(np.array([-1], np.int64), "flat_shape")
    nodes = [helper.make_node("MatMul", ["x", "layer/W"], ["xW"], name="dense"),
             helper.make_node("Add", ["xW", "layer/b"], ["z"], name="dense"),
             helper.make_node("Relu", ["z"], ["h"], name=""),
             helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
             helper.make_node("Mul", ["h", "half"], ["hh"], name="x"),
             helper.make_node("Reshape", ["hh", "flat_shape"], ["y"], name="z")]
    return model_of(nodes, [tensor("x", F, [2, 30])], [tensor("y", F, [2 * hidden])], [W, b, shape])


X30 = np.random.default_rng(1).standard_normal((2, 30)).astype(np.float32)


# ---- JSON -> ONNX -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_run_the_same_in_onnxruntime(path, tmp_path):
    graph = cgtools.load(path)
    target = save_onnx(graph, tmp_path / f"{path.stem}.onnx")
    model = onnx.load(str(target))
    onnx.checker.check_model(model, full_check=True)
    feeds = {leaf.name: leaf.value for leaf in graph.leaves_of("input")}
    ours = graph.run(backward=False)
    for name, theirs in zip(graph.outputs, onnxruntime_run(model, feeds)):
        assert_same(theirs, ours.values[name], rtol=1e-12)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_come_back_from_onnx_unchanged(path, tmp_path):
    """Inputs keep their values (as ONNX defaults), params stay params, constants stay constants, and forward
    and backward give the same numbers."""
    graph = cgtools.load(path)
    back = cgtools.load(save_onnx(graph, tmp_path / "model.onnx"))
    assert {n: (leaf.kind, leaf.value is None) for n, leaf in back.leaves.items()} == \
        {n: (leaf.kind, leaf.value is None) for n, leaf in graph.leaves.items()}
    assert [(n.op, n.inputs, n.outputs, n.name) for n in back.nodes] == \
        [(n.op, n.inputs, n.outputs, n.name) for n in graph.nodes]
    assert back.outputs == graph.outputs and back.opset == 18 and back.path == str(tmp_path / "model.onnx")
    assert back.doc == graph.doc
    ours, theirs = graph.run(), back.run()
    for name in ours.values:
        assert_same(theirs.values[name], ours.values[name], rtol=0)
    assert dict(theirs.grads).keys() == dict(ours.grads).keys()
    for name in ours.grads:
        assert_same(theirs.grads[name], ours.grads[name], rtol=0)


def reduction_graph(opset=None) -> dict:
    doc = {"cgtools": "1.0",
           "inputs": [{"name": "x", "value": {"dtype": "float32", "data": [[1, -2, 3], [4, 5, -6]]}},
                      {"name": "t", "dtype": "float32", "shape": [2, 3]}],
           "params": [{"name": "w", "value": {"dtype": "float32", "data": [0.5, 1.5, 2.0]}}],
           "nodes": [{"op": "Mul", "inputs": ["x", "w"], "outputs": ["y"]},
                     {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"axes": [0], "keepdims": 0}},
                     {"op": "ReduceMean", "inputs": ["y"], "outputs": ["m"], "attrs": {"axes": [1]}},
                     {"op": "ReduceMax", "inputs": ["y"], "outputs": ["mx"], "attrs": {"axes": [-1], "keepdims": 0}},
                     {"op": "Unsqueeze", "inputs": ["s"], "outputs": ["s1"], "attrs": {"axes": [0]}},
                     {"op": "Squeeze", "inputs": ["s1"], "outputs": ["s2"], "attrs": {"axes": [0]}},
                     {"op": "MSELoss", "inputs": ["y", "t"], "outputs": ["L"]}],
           "outputs": ["L", "s2", "m", "mx"], "loss": "L"}
    if opset:
        doc["opset"] = opset
    return doc


@pytest.mark.parametrize("opset", [None, 11, 13])
def test_axes_attributes_follow_the_opset(opset):
    """At opset 18 (the default) every axes attribute becomes an int64 Constant input; at 13 only ReduceSum's,
    Squeeze's and Unsqueeze's; at 11 none. Each model passes the full check and runs as ours does."""
    graph = cgtools.load(reduction_graph(opset))
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == (opset or 18)
    made = {node.output[0]: node for node in model.graph.node}
    moved = {"s": 13, "s1": 13, "s2": 13, "m": 18, "mx": 18}  # ReduceSum, Unsqueeze, Squeeze, ReduceMean, -Max
    for out, since in moved.items():
        as_input = (opset or 18) >= since
        assert (len(made[out].input) == 2) == as_input, out
        assert any(a.name == "axes" for a in made[out].attribute) != as_input, out
        if as_input:
            assert made[made[out].input[1]].op_type == "Constant"
    t = np.full((2, 3), 0.25, np.float32)
    ours = graph.run({"t": t}, backward=False)
    for name, theirs in zip(graph.outputs, onnxruntime_run(model, {"x": graph.leaves["x"].value, "t": t})):
        assert_same(theirs, ours.values[name])


@pytest.mark.parametrize("opset", [9, 18])
def test_slice_attributes_follow_the_opset(opset):
    """Slice's starts, ends and axes were attributes before opset 10: a JSON graph giving them so is written as
    attributes at opset 9 and as int64 Constant inputs since, and runs in onnxruntime as ours does."""
    graph = cgtools.load({"cgtools": "1.0", "opset": opset,
                          "inputs": [{"name": "x", "value": {"dtype": "float32", "data": [[1, 2, 3], [4, 5, 6]]}}],
                          "nodes": [{"op": "Slice", "inputs": ["x"], "outputs": ["y"],
                                     "attrs": {"starts": [1], "ends": [3], "axes": [1]}}],
                          "outputs": ["y"]})
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    (node,) = [n for n in model.graph.node if n.op_type == "Slice"]
    assert (len(node.input) == 1) == (opset < 10)
    (theirs,) = onnxruntime_run(model, {"x": graph.leaves["x"].value})
    assert_same(theirs, graph.run(backward=False).values["y"])
    assert theirs.tolist() == [[2, 3], [5, 6]]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_is_written_as_sub_mul_and_a_reduction(reduction):
    doc = reduction_graph()
    doc["nodes"] = [doc["nodes"][0], {"op": "MSELoss", "inputs": ["y", "t"], "outputs": ["L"],
                                      "attrs": {"reduction": reduction}}]
    doc["outputs"], doc["loss"] = ["L"], None
    del doc["loss"]
    graph = cgtools.load(doc)
    model = to_onnx(graph)
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["Mul", "Sub", "Mul"] + {"mean": ["ReduceMean"], "sum": ["ReduceSum"], "none": []}[reduction]
    t = np.arange(6, dtype=np.float32).reshape(2, 3)
    (theirs,) = onnxruntime_run(model, {"x": graph.leaves["x"].value, "t": t})
    assert_same(theirs, graph.run({"t": t}, backward=False).values["L"])


TANH = {"cgtools": "1.0", "inputs": [{"name": "x", "dtype": "float32", "shape": [2]}],
        "nodes": [{"op": "Tanh", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}


def test_without_a_forward_pass_shape_inference_types_the_outputs(monkeypatch):
    import cgtools.onnx.write

    monkeypatch.setattr(cgtools.onnx.write, "_forward_values", lambda graph, run: None)
    model = to_onnx(cgtools.load(TANH))
    assert model.graph.output[0].type.tensor_type.elem_type == F
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [2]
    (y,) = onnxruntime_run(model, {"x": np.array([0.5, -1], np.float32)})
    np.testing.assert_allclose(y, np.tanh([0.5, -1]), rtol=1e-6)


def test_an_input_without_a_shape_cannot_be_written():
    graph = cgtools.load({**TANH, "inputs": [{"name": "x", "dtype": "float32"}]})
    assert error_of(to_onnx, graph) == "input 'x': an ONNX graph input needs a shape: give the input a value or " \
                                       "a \"shape\""


def test_a_run_supplies_the_intermediate_types(tmp_path):
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    model = to_onnx(graph, graph.run())
    infos = {v.name: v for v in model.graph.value_info}
    assert set(infos) == {"XW1", "z1", "h", "hW2", "logits"}
    assert [d.dim_value for d in infos["h"].type.tensor_type.shape.dim] == [4, 5]
    assert infos["h"].type.tensor_type.elem_type == TensorProto.DOUBLE


def test_an_op_onnx_lacks_is_refused(monkeypatch):
    from cgtools.ops import REGISTRY, Operation, register_op

    monkeypatch.setitem(REGISTRY, "Twice", None)

    @register_op("Twice")
    class Twice(Operation):
        """2x"""

        @staticmethod
        def forward(ctx, x):
            return 2 * x

    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": 1.0}],
                          "nodes": [{"op": "Twice", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]})
    assert error_of(to_onnx, graph) == "nodes[0] (Twice 'y'): Twice has no ONNX equivalent, so the graph cannot " \
                                       "be written as ONNX"


def test_mixed_dtypes_onnx_refuses_are_named():
    graph = cgtools.load({**reduction_graph(), "params": [{"name": "w", "value": [0.5, 1.5, 2.0]}]})
    message = error_of(to_onnx, graph)
    assert message.startswith("the graph does not make a valid ONNX model (opset 18): ")
    assert "Mul" in message and "type" in message


# ---- ONNX -> Graph -> JSON ------------------------------------------------------------------------------

def test_onnx_model_loads_with_its_kinds_names_and_opset(tmp_path):
    path = save(mlp_model(), tmp_path / "mlp.onnx")
    graph = cgtools.load(path)  # .onnx dispatches to load_onnx
    kinds = {name: (leaf.kind, leaf.dtype, leaf.shape) for name, leaf in graph.leaves.items()}
    assert kinds == {"x": ("input", "float32", (2, 30)), "layer/W": ("param", "float32", None),
                     "layer/b": ("param", "float32", None), "flat_shape": ("constant", "int64", None),
                     "half": ("constant", "float32", None)}
    assert graph.leaves["x"].value is None
    # "dense" twice, "" once, "x" taken by the input, "z" kept (only a tensor, not a leaf, has that name)
    assert [node.name for node in graph.nodes] == ["xW", "z_1", "h", "hh", "z"]
    assert graph.opset == 18 and graph.path == str(path) and graph.name == "test_graph"
    ours = graph.run({"x": X30}, backward=False)
    W, b = (graph.leaves[name].value for name in ("layer/W", "layer/b"))
    assert_same(ours.values["y"], (np.maximum(X30 @ W + b, 0) * np.float32(0.5)).reshape(-1))
    # (onnxruntime refuses this model: two nodes are named "dense"; written back by cgtools, it runs it)
    (theirs,) = onnxruntime_run(to_onnx(graph, ours), {"x": X30})
    assert_same(theirs, ours.values["y"])


def test_node_names_stay_distinct_from_leaves_and_each_other():
    x = tensor("x", F, [2])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="b"),  # kept: unique, no leaf
             helper.make_node("Relu", ["a"], ["b"], name=""),  # falls back to its output 'b', taken: b_1
             helper.make_node("Relu", ["b"], ["c"], name="x"),  # 'x' is the input: falls back to 'c'
             helper.make_node("Relu", ["c"], ["d"], name="same"),
             helper.make_node("Relu", ["d"], ["e"], name="same")]  # repeated: both fall back to their outputs
    graph = load_model(model_of(nodes, [x], [tensor("e", F, [2])]))
    assert [node.name for node in graph.nodes] == ["b", "b_1", "c", "d", "e"]


def load_model(model, tmp=None) -> cgtools.Graph:
    import tempfile

    folder = Path(tmp or tempfile.mkdtemp())
    return load_onnx(save(model, folder / "model.onnx"))


def test_onnx_to_json_and_back_gives_the_same_forward(tmp_path):
    source = save(mlp_model(hidden=40), tmp_path / "mlp.onnx")  # W has 1,200 elements: it goes to the .npz
    written = convert(source, tmp_path / "mlp.json")
    assert written == [tmp_path / "mlp.json", tmp_path / "mlp.npz"]
    doc = json.loads((tmp_path / "mlp.json").read_text(encoding="utf-8"))
    assert doc["opset"] == 18
    assert doc["params"][0] == {"name": "layer/W", "value": {"file": "mlp.npz", "key": "layer/W"}}
    assert doc["inputs"] == [{"name": "x", "dtype": "float32", "shape": [2, 30]}]
    from_json, from_onnx = cgtools.load(tmp_path / "mlp.json"), cgtools.load(source)
    seed = np.linspace(-1, 1, 80, dtype=np.float32)
    a, b = from_json.run({"x": X30}, seed=seed), from_onnx.run({"x": X30}, seed=seed)
    assert set(b.grads) == {"x", "layer/W", "layer/b", "xW", "z", "h", "hh", "y"}
    for name in b.values:
        assert_same(a.values[name], b.values[name], rtol=0)
    for name in b.grads:
        assert_same(a.grads[name], b.grads[name], rtol=0)
    # and on to ONNX again: onnxruntime agrees
    convert(tmp_path / "mlp.json", tmp_path / "again.onnx")
    (theirs,) = onnxruntime_run(tmp_path / "again.onnx", {"x": X30})
    assert_same(theirs, b.values["y"])


@pytest.mark.parametrize("name", ["file", "allow_pickle"])  # np.savez's own parameter names
def test_any_tensor_name_survives_the_npz(tmp_path, name):
    w = numpy_helper.from_array(np.arange(1001, dtype=np.float32), name)
    model = model_of([helper.make_node("Mul", ["x", name], ["y"])], [tensor("x", F, [1001])],
                     [tensor("y", F, [1001])], [w])
    written = convert(save(model, tmp_path / "m.onnx"), tmp_path / "m.json")
    assert written == [tmp_path / "m.json", tmp_path / "m.npz"]
    np.testing.assert_array_equal(cgtools.load(tmp_path / "m.json").leaves[name].value, np.arange(1001))


def test_small_models_convert_without_an_npz(tmp_path):
    source = save(mlp_model(hidden=4), tmp_path / "small.onnx")
    assert convert(source, tmp_path / "small.json") == [tmp_path / "small.json"]
    assert not (tmp_path / "small.npz").exists()


def test_symbolic_dims_leave_the_shape_unknown():
    x = helper.make_tensor_value_info("x", F, ["batch", 3])
    graph = load_model(model_of([helper.make_node("Relu", ["x"], ["y"])], [x], [tensor("y", F, ["batch", 3])]))
    assert graph.leaves["x"].shape is None and graph.leaves["x"].dtype == "float32"
    assert graph.run({"x": np.ones((5, 3))}, backward=False).values["y"].shape == (5, 3)


def test_small_integer_initializers_keep_their_type_through_json_and_back(tmp_path):
    table = numpy_helper.from_array(np.array([255, 0, 7], np.uint8), "table")
    model = model_of([helper.make_node("Cast", ["table"], ["t"], to=F), helper.make_node("Add", ["x", "t"], ["y"])],
                     [tensor("x", F, [3])], [tensor("y", F, [3])], [table])
    graph = load_model(model, tmp_path)
    leaf = graph.leaves["table"]
    assert leaf.kind == "constant" and leaf.value.dtype == np.uint8 and leaf.value.tolist() == [255, 0, 7]
    assert leaf.doc == ""
    x = np.array([1, 2, 3], np.float32)
    assert graph.run({"x": x}, backward=False).values["y"].tolist() == [256, 2, 10]
    graph.save(tmp_path / "narrow.json")
    written = to_onnx(cgtools.load(tmp_path / "narrow.json"))
    constant = next(node for node in written.graph.node if node.output[0] == "table")  # constants: Constant nodes
    assert constant.op_type == "Constant" and constant.attribute[0].t.data_type == TensorProto.UINT8
    (y,) = onnxruntime_run(written, {"x": x})
    assert y.tolist() == [256, 2, 10]


def test_ir3_initializers_listed_as_inputs_are_weights_and_ir4_ones_are_defaults():
    w = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    nodes = [helper.make_node("Mul", ["x", "w"], ["y"])]
    inputs = [tensor("x", F, [2]), tensor("w", F, [2])]
    old = load_model(model_of(nodes, inputs, [tensor("y", F, [2])], [w], opset=8, ir_version=3))
    assert old.leaves["w"].kind == "param" and old.leaves["x"].kind == "input"
    new = load_model(model_of(nodes, inputs, [tensor("y", F, [2])], [w], ir_version=8))
    assert new.leaves["w"].kind == "input" and new.leaves["w"].value.tolist() == [1.0, 2.0]


def test_softmax_before_opset_13_keeps_its_axis_1_default():
    x = tensor("x", F, [2, 3])
    graph = load_model(model_of([helper.make_node("Softmax", ["x"], ["y"])], [x], [tensor("y", F, [2, 3])],
                                opset=11))
    assert graph.nodes[0].attrs == {"axis": 1}


def test_split_before_opset_18_makes_as_many_parts_as_outputs():
    x = tensor("x", F, [6])
    model = model_of([helper.make_node("Split", ["x"], ["a", "b", "c"], axis=0)], [x],
                     [tensor(name, F, [2]) for name in "abc"], opset=13)
    graph = load_model(model)
    assert graph.nodes[0].attrs == {"axis": 0, "num_outputs": 3}
    x6 = np.arange(6, dtype=np.float32)
    assert [graph.run({"x": x6}, backward=False).values[k].tolist() for k in "abc"] == [[0, 1], [2, 3], [4, 5]]
    written = to_onnx(graph, graph.run({"x": x6}, backward=False))
    assert written.opset_import[0].version == 13 and [a.name for a in written.graph.node[0].attribute] == ["axis"]
    assert [part.tolist() for part in onnxruntime_run(written, {"x": x6})] == [[0, 1], [2, 3], [4, 5]]


def early_opset_model() -> onnx.ModelProto:
    """Opset 10: every attribute form a later opset made an input (ReduceSum's and ReduceMean's axes,
    Squeeze's and Unsqueeze's, Split's split, Pad's pads and value, Dropout's ratio)."""
    nodes = [helper.make_node("Pad", ["x"], ["p"], name="pad", pads=[0, 1, 0, 1], value=0.5),
             helper.make_node("ReduceSum", ["p"], ["s"], name="sum", axes=[0], keepdims=1),
             helper.make_node("ReduceMean", ["p"], ["m"], name="mean", axes=[1], keepdims=0),
             helper.make_node("Squeeze", ["s"], ["q"], name="squeeze", axes=[0]),
             helper.make_node("Unsqueeze", ["m"], ["u"], name="unsqueeze", axes=[1]),
             helper.make_node("Split", ["q"], ["a", "b"], name="split", axis=0, split=[1, 4]),
             helper.make_node("Dropout", ["u"], ["d"], name="dropout", ratio=0.25)]
    outputs = [tensor("a", F, [1]), tensor("b", F, [4]), tensor("d", F, [2, 1])]
    return model_of(nodes, [tensor("x", F, [2, 3])], outputs, opset=10)


def test_early_opset_attributes_are_read_as_constant_inputs_and_written_back():
    model = early_opset_model()
    graph = load_model(model)
    moved = {"pad": ["pads", "value"], "sum": ["axes"], "mean": ["axes"], "squeeze": ["axes"],
             "unsqueeze": ["axes"], "split": ["split"], "dropout": ["ratio"]}
    for node in graph.nodes:  # one form for every op: the inputs, never the attributes
        assert not set(moved[node.name]) & set(node.attrs), node.name
        assert node.inputs[1:] == [f"{node.name}.{attr}" for attr in moved[node.name]], node.name
    assert graph.leaves["pad.pads"].value.dtype == np.int64 and graph.leaves["pad.value"].value.dtype == np.float32
    assert graph.leaves["dropout.ratio"].value.tolist() == 0.25  # a scalar, as the input form takes it
    assert {leaf.kind for name, leaf in graph.leaves.items() if name != "x"} == {"constant"}
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    ours = graph.run({"x": x}, backward=False)
    for name, theirs in zip(["a", "b", "d"], onnxruntime_run(model, {"x": x})):
        assert_same(theirs, ours.values[name])
    written = to_onnx(graph, ours)  # at opset 10 again: the constant inputs are attributes once more
    assert written.opset_import[0].version == 10
    assert [(n.op_type, list(n.input)) for n in written.graph.node] == [(n.op_type, list(n.input))
                                                                         for n in model.graph.node]
    for mine, original in zip(written.graph.node, model.graph.node):
        assert {a.name: helper.get_attribute_value(a) for a in mine.attribute} == \
            {a.name: helper.get_attribute_value(a) for a in original.attribute}, mine.name


def test_softmax_written_before_opset_13_says_its_axis():
    graph = cgtools.load({"cgtools": "1.0", "opset": 11,
                          "inputs": [{"name": "x", "value": {"dtype": "float32", "data": [[[1, 2], [3, 5]]]}}],
                          "nodes": [{"op": "Softmax", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]})
    written = to_onnx(graph)
    assert [(a.name, a.i) for a in written.graph.node[0].attribute] == [("axis", -1)]
    (y,) = onnxruntime_run(written, {"x": graph.leaves["x"].value})
    assert_same(y, graph.run(backward=False).values["y"])


def test_attributes_early_opsets_needed_and_ours_do_not_are_dropped():
    """BatchNormalization at opset 6 carried spatial=1 and is_test=1 (today's meaning); is_test=0 (training) is
    kept, and the op refuses it by name."""
    x = tensor("x", F, [1, 2, 3, 3])
    stats = [numpy_helper.from_array(np.full(2, v, np.float32), n) for n, v in zip("sbmv", (2, 1, 0.5, 4))]

    def bn(**attrs):
        node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn", **attrs)
        return model_of([node], [x], [tensor("y", F, [1, 2, 3, 3])], stats, opset=6)

    graph = load_model(bn(spatial=1, is_test=1, epsilon=0.0))
    assert graph.nodes[0].attrs == {"epsilon": 0.0}
    x1 = np.ones((1, 2, 3, 3), np.float32)
    np.testing.assert_allclose(graph.run({"x": x1}, backward=False).values["y"], 2 * (1 - 0.5) / 2 + 1)
    message = error_of(load_model, bn(spatial=1, is_test=0))
    assert "node 0 (BatchNormalization 'bn').attrs.is_test: BatchNormalization has no attribute 'is_test'" in message


def test_a_loss_survives_the_round_trip(tmp_path):
    graph = cgtools.load(reduction_graph())
    back = cgtools.load(save_onnx(graph, tmp_path / "r.onnx"))
    assert back.loss == "L" and back.outputs == ["L", "s2", "m", "mx"]
    t = np.zeros((2, 3), np.float32)
    assert_same(back.run({"t": t}).grads["w"], graph.run({"t": t}).grads["w"])


def test_node_scopes_come_from_names_or_metadata_and_survive_json_and_onnx(tmp_path):
    """The TorchScript exporter's `/layer1/conv1/Conv` and the dynamo exporter's name_scopes metadata give a node
    its scope; JSON and ONNX written by cgtools keep it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    named = helper.make_node("Relu", ["x"], ["a"], name="/layer1/layer1.0/relu/Relu")
    tagged = helper.make_node("Neg", ["a"], ["b"], name="node_neg")
    tagged.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'head', 'it\\'s', 'neg']")
    plain = helper.make_node("Abs", ["b"], ["y"], name="Abs_3")
    path = tmp_path / "m.onnx"
    onnx.save(model_of([named, tagged, plain], [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]),
              path)
    graph = cgtools.load(path)
    expected = [("layer1", "layer1.0", "relu"), ("head", "it\\'s"), ()]
    assert [n.scope for n in graph.nodes] == expected
    assert [n.scope for n in cgtools.load(graph.to_dict()).nodes] == expected
    assert graph.to_dict()["nodes"][0]["scope"] == ["layer1", "layer1.0", "relu"]
    back = load_onnx(save_onnx(graph, tmp_path / "back.onnx"))
    assert [n.scope for n in back.nodes] == expected


# ---- the CLI --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_converts_both_ways_and_runs_and_renders_onnx(tmp_path):
    done = run_cli("convert", EXAMPLES / "affine_square.json", tmp_path / "affine.onnx")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'affine.onnx'}\n"
    done = run_cli("run", tmp_path / "affine.onnx", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["values"]["e"] == 25 and result["grads"]["x"] == 30 and result["grads"]["a"] == 10
    done = run_cli("run", tmp_path / "affine.onnx", "--set", "x=2")
    assert done.returncode == 0 and "64" in done.stdout, done.stderr
    for suffix, start in (("svg", "<?xml"), ("html", "<!DOCTYPE html>")):
        out = tmp_path / f"affine.{suffix}"
        done = run_cli("render", tmp_path / "affine.onnx", "-o", out)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{out}\n" and out.read_text(encoding="utf-8").lstrip().startswith(start)
        assert "∂e/∂" in out.read_text(encoding="utf-8")
    done = run_cli("convert", tmp_path / "affine.onnx", tmp_path / "back.json")
    assert done.returncode == 0 and done.stdout == f"{tmp_path / 'back.json'}\n", done.stderr
    back = cgtools.load(tmp_path / "back.json")
    assert back.run().values["e"] == 25 and back.leaves["two"].kind == "constant"


@pytest.mark.slow
def test_cli_runs_an_onnx_model_whose_input_needs_a_value(tmp_path):
    path = save(mlp_model(hidden=4), tmp_path / "mlp.onnx")
    done = run_cli("run", path, "--no-backward")
    assert_cli_error(done, "input 'x' has no value")
    done = run_cli("run", path, "--no-backward", "--json", "--set", f"x={json.dumps(X30.tolist())}")
    assert done.returncode == 0, done.stderr
    expected = cgtools.load(path).run({"x": X30}, backward=False).values["y"]
    np.testing.assert_allclose(json.loads(done.stdout)["values"]["y"], expected, rtol=1e-6)
    done = run_cli("render", path, "-o", tmp_path / "mlp.svg")  # drawn without values, with a note
    assert done.returncode == 0 and "note: no value for x" in done.stderr, done.stderr


# ---- errors ---------------------------------------------------------------------------------------------

def corrupt(folder: Path) -> Path:
    path = folder / "corrupt.onnx"
    path.write_bytes(b"\x08\x07\x12\x0bnot a model\xff\xfe\x00 truncated")
    return path


def truncated(folder: Path) -> Path:
    path = folder / "truncated.onnx"
    path.write_bytes(mlp_model().SerializeToString()[:500])
    return path


def unsupported(folder: Path) -> Path:
    """Two ops of a domain cgtools will never have, three of ONNX's Det, one more of that domain."""
    x = tensor("x", F, [2, 2])
    nodes = [helper.make_node("Mystery", ["x"], ["a"], domain="com.example"), helper.make_node("Det", ["a"], ["b"]),
             helper.make_node("Det", ["x"], ["c"]), helper.make_node("Mystery", ["x"], ["d"], domain="com.example"),
             helper.make_node("Det", ["d"], ["e"]), helper.make_node("Add", ["b", "c"], ["f"]),
             helper.make_node("Add", ["f", "e"], ["y"]),
             helper.make_node("Riddle", ["x"], ["z"], domain="com.example")]
    inputs = [x]
    outputs = [tensor("y", F, []), tensor("z", F, [2, 2])]
    model = model_of(nodes, inputs, outputs)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return save(model, folder / "unsupported.onnx")


def outside(folder: Path) -> Path:
    np.arange(4, dtype=np.float32).tofile(folder / "weights.bin")
    (folder / "model").mkdir()
    w = TensorProto(name="w", data_type=F, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "../weights.bin"), ("offset", "0"), ("length", "16")):
        w.external_data.add(key=key, value=value)
    model = model_of([helper.make_node("Add", ["x", "w"], ["y"])], [tensor("x", F, [4])], [tensor("y", F, [4])],
                     [w])
    return save(model, folder / "model" / "outside.onnx")


def sequence(folder: Path) -> Path:
    s = helper.make_tensor_sequence_value_info("s", F, [2])
    model = model_of([helper.make_node("SequenceAt", ["s", "i"], ["y"])],
                     [s, tensor("i", TensorProto.INT64, [])], [tensor("y", F, [2])])
    return save(model, folder / "sequence.onnx")


def string_input(folder: Path) -> Path:
    model = model_of([helper.make_node("Identity", ["x"], ["y"])], [tensor("x", TensorProto.STRING, [2])],
                     [tensor("y", TensorProto.STRING, [2])])
    return save(model, folder / "string.onnx")


ERROR_CASES = [
    pytest.param(corrupt, ["cannot read as an ONNX model"], id="corrupt"),
    pytest.param(truncated, ["cannot read as an ONNX model"], id="truncated"),
    pytest.param(unsupported, ["unsupported ops: Det ×3, com.example.Mystery ×2, com.example.Riddle ×1 "],
                 id="unsupported-ops"),
    pytest.param(outside, ["initializer 'w': external data at '../weights.bin' is outside the model's folder"],
                 id="external-data-outside"),
    pytest.param(sequence, ["graph input 's': has a sequence type"], id="sequence-input"),
    pytest.param(string_input, ["graph input 'x': has dtype string; cgtools runs the numeric types"],
                 id="string-input"),
]


@pytest.mark.parametrize("make, expected", ERROR_CASES)
def test_onnx_errors_name_the_file_and_the_place(tmp_path, make, expected):
    path = make(tmp_path)
    message = error_of(cgtools.load, path)
    assert message.startswith(f"{path}: "), message
    for part in expected:
        assert part in message


@pytest.mark.slow
@pytest.mark.parametrize("make, expected", ERROR_CASES)
def test_onnx_errors_through_the_cli(tmp_path, make, expected):
    path = make(tmp_path)
    for command in (("run", path), ("convert", path, tmp_path / "out.json"), ("render", path, "-o",
                                                                              tmp_path / "out.svg")):
        assert_cli_error(run_cli(*command), f"error: {path}: ", *expected)
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.svg").exists()


def test_external_data_inside_the_folder_is_read(tmp_path):
    path = outside(tmp_path)
    (tmp_path / "model" / "weights.bin").write_bytes((tmp_path / "weights.bin").read_bytes())
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data[0].value = "weights.bin"
    graph = cgtools.load(save(model, path))
    assert graph.leaves["w"].value.tolist() == [0, 1, 2, 3]


def test_missing_onnx_package(tmp_path, monkeypatch, capsys):
    model = save(mlp_model(hidden=4), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    assert error_of(cgtools.load, model) == INSTALL_HINT
    assert error_of(convert, EXAMPLES / "affine_square.json", tmp_path / "a.onnx") == INSTALL_HINT
    assert error_of(save_onnx, cgtools.load(EXAMPLES / "affine_square.json"), tmp_path / "a.onnx") == INSTALL_HINT
    assert_cli_error(run_in_process(capsys, "run", model), f"error: {INSTALL_HINT}")
    assert_cli_error(run_in_process(capsys, "convert", EXAMPLES / "affine_square.json", tmp_path / "a.onnx"),
                     f"error: {INSTALL_HINT}")
    assert not (tmp_path / "a.onnx").exists()


@pytest.mark.parametrize("source, target, expected", [
    ("affine_square.json", "out.json", "convert reads model.onnx and writes graph.json, or reads graph.json and "
                                       "writes model.onnx; found 'affine_square.json' -> 'out.json'"),
    ("affine_square.json", "out.pb", "found 'affine_square.json' -> 'out.pb'"),
    ("affine_square.json", "missing/out.onnx", "no such folder"),
])
def test_convert_refuses_what_it_cannot_do(tmp_path, capsys, source, target, expected):
    assert expected in error_of(convert, EXAMPLES / source, tmp_path / target)
    assert_cli_error(run_in_process(capsys, "convert", EXAMPLES / source, tmp_path / target), expected)


def test_convert_names_a_missing_source(tmp_path, capsys):
    assert_cli_error(run_in_process(capsys, "convert", tmp_path / "nothing.onnx", tmp_path / "x.json"),
                     f"error: {tmp_path / 'nothing.onnx'}: no such file")


def test_onnx_is_imported_lazily():
    code = ("import sys, cgtools.onnx.read, cgtools.onnx.write, cgtools.onnx.conformance, cgtools.cli; "
            "assert 'onnx' not in sys.modules, 'onnx imported at import time'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_dtype_code_table_agrees_with_onnx():
    import onnx

    from cgtools.onnx import mapping

    def name_of(name, code):  # the numpy dtype onnx reads the type as (ml_dtypes' for bfloat16 …), by name
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(code)
        except (KeyError, ValueError):
            return name.lower()
        return name.lower() if dtype.kind in "OUSc" else dtype.name

    names = {code: name_of(name, code) for name, code in onnx.TensorProto.DataType.items()}
    assert {code: names[code] for code in mapping.TYPE_NAMES} == mapping.TYPE_NAMES
    assert len(mapping.NUMPY_TYPES) == 25  # every numeric type: numpy's 11 floats and ints, bool, ml_dtypes' 13
    for code, dtype in mapping.NUMPY_TYPES.items():
        assert onnx.helper.np_dtype_to_tensor_dtype(dtype) == code == mapping.code_of(dtype)
    assert sorted(mapping.FLOAT_TYPES) == [1, 10, 11]
