"""The first run is the one the command line makes: `cgtools run` loads only what a run needs, has the ONNX
checker read the model's bytes rather than the model serialized again, maps a model's large inline weights
from its file rather than copying them, and interprets its one run rather than compiling the plan. Structure,
not wall time: these hold however busy the machine is."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cgtools
from cgtools.onnx.wire import WALKED_FROM, without_weights
from helpers import error_of

pytestmark = pytest.mark.slow  # a fresh interpreter importing numpy, onnx and cgtools

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# what `run` never needs: the drawing code and its packages, the other runtimes, the comparison and authoring code
NOT_NEEDED = ("onnx.reference", "onnxruntime", "torch", "pyvis", "jinja2", "jsonschema", "graphviz", "scipy",
              "networkx", "cgtools.export.scene", "cgtools.export.dot", "cgtools.export.html", "cgtools.export.layout",
              "cgtools.compare", "cgtools.gradcheck", "cgtools.expr", "cgtools.train", "cgtools.optim",
              "cgtools.onnx.write")

# runs `cgtools run` in a fresh interpreter, recording what the ONNX checker was given and which plans compiled
PROBE = r"""
import contextlib, io, json, sys

import onnx.checker

import cgtools.compiled as compiled
from cgtools.cli import main

seen = {"checked": [], "compiled": []}


def spied(record, real):
    def call(first, *args, **kwargs):
        record(first)
        return real(first, *args, **kwargs)
    return call


onnx.checker.check_model = spied(lambda m: seen["checked"].append(type(m).__name__), onnx.checker.check_model)
for name in ("compile_forward", "compile_backward"):
    setattr(compiled, name, spied(lambda steps, name=name: seen["compiled"].append(name), getattr(compiled, name)))
table = io.StringIO()
with contextlib.redirect_stdout(table):
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        seen["exit"] = e.code
seen["table"] = table.getvalue()
seen["modules"] = sorted(sys.modules)
print(json.dumps(seen))
seen["compiled"] = []  # the same graph compiled at once, to show that the spies see a compilation
import cgtools  # noqa: E402
cgtools.load(sys.argv[-1]).run(compiling=compiled.COMPILE_AT_ONCE)
print(json.dumps(seen["compiled"]))
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("first-run") / "mlp.onnx"
    cgtools.convert(EXAMPLES / "mlp_xent.json", path)
    return path


@pytest.fixture(scope="module")
def seen(model) -> dict:
    """What `cgtools run MODEL` did in a fresh interpreter, and (as "compiled_at_once") the compilations of the
    same graph run with the plan compiled at once."""
    done = subprocess.run([sys.executable, "-c", PROBE, "run", str(model)], capture_output=True, text=True,
                          check=True)
    first, at_once = done.stdout.splitlines()[-2:]
    return {**json.loads(first), "compiled_at_once": json.loads(at_once)}


def test_run_of_an_onnx_model_loads_only_what_a_run_needs(model, seen):
    assert seen["exit"] == 0
    expected = cgtools.load(model).run()  # the table is the run's
    assert f"{expected.values[expected.loss].item():.4g}" in seen["table"]
    loaded = set(seen["modules"])
    assert [name for name in NOT_NEEDED if name in loaded] == []
    assert "cgtools.onnx.read" in loaded and "numpy" in loaded  # the probe saw the run's imports


def test_the_checker_reads_the_bytes_of_the_file_not_the_model_serialized_again(seen):
    assert seen["checked"] == ["bytes"]


def test_one_run_is_interpreted_not_compiled(seen):
    """Compiling a plan costs about what interpreting it a few times does: a command that runs once never pays
    for it, forward or backward."""
    assert seen["exit"] == 0 and seen["compiled"] == []
    assert "∂" in seen["table"]  # backward ran too
    assert seen["compiled_at_once"] == ["compile_forward", "compile_backward"]  # what compiling would have shown


# ---- inline weights, mapped from the file ----------------------------------------------------------------

def weights_model(path: Path, width: int = 600, relus: int = 1, pad: int = 0, **tensor_fields) -> Path:
    """x [1, width] → MatMul w (float32, width², its raw_data inline) → + b (float32 cast of int64 c) → Relu ×
    `relus` → y, written to `path`: over WALKED_FROM bytes, so its weights are lifted. `pad` letters of the
    first node's name move the weights' offsets in the file; `tensor_fields` replace fields of w's TensorProto
    (to make it one the walk leaves alone)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32), "w")
    for field, value in tensor_fields.items():
        w.ClearField(field)
        if isinstance(value, list):
            getattr(w, field).extend(value)
        elif value is not None:
            setattr(w, field, value)
    c = numpy_helper.from_array(np.arange(width, dtype=np.int64), "c")  # 8 bytes a value, mapped too
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="m" * pad),
             helper.make_node("Cast", ["c"], ["b"], to=1), helper.make_node("Add", ["h", "b"], ["r0"])]
    nodes += [helper.make_node("Relu", [f"r{i}"], [f"r{i + 1}"]) for i in range(relus)]
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], [w, c])
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


def mapped_file(array: np.ndarray) -> str | None:
    """The file an array is a memory map of, else None."""
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap):
            return str(array.filename)
        array = array.base
    return None


def aligned_weights_model(path: Path) -> Path:
    """weights_model with w's bytes at an offset that is a multiple of 4, so it is mapped."""
    for pad in range(4):
        if without_weights(weights_model(path, pad=pad))[1]["w"].offset % 4 == 0:
            return path
    raise AssertionError("no padding aligns w")


def test_large_inline_weights_are_maps_of_the_file_where_aligned_and_run_as_onnxruntime_does(tmp_path):
    """A weight at an offset that is a multiple of its item size is a map of the file; any other is copied
    once into aligned memory (numpy would copy an unaligned array at every use). Both equal onnx's reading."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    seen = set()
    for pad in range(8):
        path = weights_model(tmp_path / f"w{pad}.onnx", pad=pad)
        assert path.stat().st_size >= WALKED_FROM
        lifted, graph = without_weights(path)[1], cgtools.load(path)
        for name in ("w", "c"):
            value, aligned = graph.leaves[name].value, lifted[name].offset % lifted[name].dtype.itemsize == 0
            assert (mapped_file(value) == str(path.resolve())) == aligned and value.flags.aligned
            expected = numpy_helper.to_array(next(t for t in onnx.load(path).graph.initializer if t.name == name))
            assert value.dtype == expected.dtype and np.array_equal(value, expected)
            seen.add(aligned)
        x = np.random.default_rng(1).standard_normal((1, 600)).astype(np.float32)
        (y,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
        np.testing.assert_allclose(graph.run({"x": x}, backward=False).values["y"], y, rtol=1e-4, atol=1e-4)
    assert seen == {True, False}


def test_writing_into_a_mapped_weight_changes_neither_the_file_nor_another_load(tmp_path):
    path = aligned_weights_model(tmp_path / "w.onnx")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    first, second = cgtools.load(path), cgtools.load(path)
    assert mapped_file(first.leaves["w"].value) == str(path.resolve())
    original = second.leaves["w"].value.copy()
    first.leaves["w"].value[:] = 7.0  # copy-on-write: the pages written become this load's own
    assert np.all(first.leaves["w"].value == 7.0)
    assert np.array_equal(second.leaves["w"].value, original)
    assert np.array_equal(cgtools.load(path).leaves["w"].value, original)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_the_checker_still_judges_a_model_whose_weights_were_lifted_out(tmp_path):
    """The checker reads the model less its weights: what it refuses in a node is still refused, with its words."""
    from onnx import helper

    path = weights_model(tmp_path / "w.onnx")
    model = __import__("onnx").load(path)
    model.graph.node.append(helper.make_node("Relu", ["y", "y"], ["z"]))  # Relu takes one input
    model.graph.output[0].name = "z"
    path.write_bytes(model.SerializeToString())
    assert without_weights(path) is not None  # the walk did lift w
    message = error_of(cgtools.load, path)
    assert message.startswith(f"{path}: not a valid ONNX model: ") and "input size 2" in message


@pytest.mark.parametrize("fields, expected", [
    ({"raw_data": b"\0" * 1_400_000}, "raw_data size (1,400,000 bytes) is too small"),  # under its dims: the checker
    ({"raw_data": b"\0" * 1_440_004}, "cannot read the tensor"),  # over them: onnx's reader
], ids=["short", "long"])
def test_weights_of_the_wrong_size_are_left_to_onnx_and_refused_as_before(tmp_path, fields, expected):
    path = weights_model(tmp_path / "w.onnx", **fields)
    assert "w" not in without_weights(path)[1]  # c is lifted, w is not
    assert expected.replace(",", "") in error_of(cgtools.load, path).replace(",", "")


def test_weights_the_walk_leaves_alone_are_read_by_onnx(tmp_path):
    """Typed data fields (float_data) rather than raw_data: read as before, equal to what onnx reads."""
    values = np.random.default_rng(0).standard_normal(600 * 600).astype(np.float32)
    path = weights_model(tmp_path / "w.onnx", raw_data=None, float_data=values.tolist())
    assert "w" not in without_weights(path)[1]
    w = cgtools.load(path).leaves["w"].value
    assert mapped_file(w) is None and np.array_equal(w.ravel(), values)


def test_a_graph_of_many_small_nodes_is_parsed_whole_not_walked(tmp_path):
    """Walking costs microseconds a field: a file of many nodes and few weights gives up early, read as before."""
    path = weights_model(tmp_path / "w.onnx", relus=3000)
    assert path.stat().st_size // 4096 + 2000 < 3000 and without_weights(path) is None
    graph = cgtools.load(path)
    assert mapped_file(graph.leaves["w"].value) is None and len(graph.nodes) == 3003


def test_a_truncated_model_with_large_weights_says_so(tmp_path):
    path = weights_model(tmp_path / "w.onnx")
    path.write_bytes(path.read_bytes()[:-200_000])  # through w's raw_data
    assert without_weights(path) is None
    assert "cannot read as an ONNX model (is the file complete?)" in error_of(cgtools.load, path)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_a_real_models_weights_are_lifted_aligned_and_equal_to_onnxs_reading(exported, name):
    import onnx
    from onnx import numpy_helper

    model = exported(name)
    graph, lifted = cgtools.load(model.path), without_weights(model.path)[1]
    expected = {t.name: numpy_helper.to_array(t) for t in onnx.load(model.path).graph.initializer}
    assert sum(expected[n].nbytes for n in lifted) > 0.99 * sum(a.nbytes for a in expected.values())
    assert any(mapped_file(graph.leaves[n].value) for n in lifted)
    for key, array in expected.items():
        value = graph.leaves[key].value
        assert value.flags.aligned and value.dtype == array.dtype and np.array_equal(value, array), key
