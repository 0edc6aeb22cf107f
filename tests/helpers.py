"""What the tests share: paths, a graph with a NaN, graphs from node lists, and the CLI run as a user runs it."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# the light models the onnx wheel ships (light_NAME.onnx, light_NAME_output_0.pb), found without importing onnx
LIGHT = Path(importlib.util.find_spec("onnx").origin).parent / "backend" / "test" / "data" / "light"
# log of a negative number: the NaN starts at lx and flows on to ex and L
NAN_GRAPH = {"cgtools": "1.0", "inputs": [{"name": "x", "value": [-1.0, 2.0]}],
             "nodes": [{"op": "Log", "inputs": ["x"], "outputs": ["lx"]},
                       {"op": "Exp", "inputs": ["lx"], "outputs": ["ex"]},
                       {"op": "ReduceSum", "inputs": ["ex"], "outputs": ["L"], "attrs": {"keepdims": 0}}],
             "outputs": ["L"]}


def cgtools_command() -> list[str]:
    """The installed console script, beside this interpreter."""
    script = Path(sys.executable).with_name("cgtools")
    return [str(script)] if script.exists() else [shutil.which("cgtools") or "cgtools"]


def run_cli(*args, cwd=None, input=None, env=None) -> subprocess.CompletedProcess:
    """The real `cgtools` console script, in a subprocess."""
    return subprocess.run([*cgtools_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          input=input, timeout=120, env=env)


def run_in_process(capsys, *args) -> subprocess.CompletedProcess:
    """`cgtools.cli.main`, the console script's entry point, called in this process (no start-up cost);
    an exception escaping it is what the script would print as a traceback."""
    import traceback

    from cgtools.cli import main

    capsys.readouterr()
    code, crash = 0, ""
    try:
        main([str(arg) for arg in args])
    except SystemExit as e:
        code = e.code
    except Exception:
        code, crash = 1, traceback.format_exc()
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err + crash)


def error_of(call, *args, **kwargs) -> str:
    """The message of the CgError that `call` raises."""
    from cgtools.errors import CgError

    with pytest.raises(CgError) as info:
        call(*args, **kwargs)
    return str(info.value)


def graph_of(nodes, inputs=(), params=(), constants=(), outputs=None, **extra):
    """A checked graph from its nodes and leaves; the output defaults to the last node's first."""
    import cgtools

    return cgtools.load({"cgtools": "1.0", "inputs": list(inputs), "params": list(params),
                         "constants": list(constants), "nodes": nodes,
                         "outputs": outputs or [nodes[-1]["outputs"][0]], **extra})


def dummy_input(graph) -> tuple[str, np.ndarray]:
    """The input onnx's own runner feeds the light models (onnx/backend/test/runner, generate_dummy_data):
    arange(n) / n in float64, then cast to float32, in the input's declared shape."""
    (leaf,) = graph.leaves_of("input")
    n = int(np.prod(leaf.shape))
    return leaf.name, (np.arange(n).reshape(leaf.shape) / n).astype(np.float32)


# ---- ONNX round trips ----------------------------------------------------------------------------------

def onnxruntime_outputs(model, feed: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def assert_round_trip(source, feed: dict, folder, capsys) -> None:
    """`cgtools convert` source -> JSON -> ONNX: the model written passes onnx.checker with full shape inference,
    keeps the opset, and onnxruntime gives it the outputs it gives the original."""
    import onnx

    json_path, written = folder / "graph.json", folder / "written.onnx"
    there = run_in_process(capsys, "convert", source, json_path)
    assert there.returncode == 0, there.stderr
    assert str(json_path) in there.stdout.splitlines()
    back = run_in_process(capsys, "convert", json_path, written)
    assert back.returncode == 0, back.stderr
    model, original = onnx.load(str(written)), onnx.load(str(source))
    onnx.checker.check_model(model, full_check=True)  # raises on any shape inference error
    assert model.opset_import[0].version == original.opset_import[0].version
    got, expected = onnxruntime_outputs(model, feed), onnxruntime_outputs(original, feed)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def register_cube(op_type: str = "Cube", *, factor: float = 3.0, local_gradients=None):
    """x³ registered from Python, the lecture's way; its backward is factor·x² (3: right) and it states
    `local_gradients` (None: none)."""
    import cgtools

    formulas = local_gradients

    @cgtools.register_op(op_type)
    class Cube(cgtools.Operation):
        """x³"""

        local_gradients = formulas

        @staticmethod
        def forward(ctx, value):
            ctx.append(value)
            return value**3

        @staticmethod
        def backward(ctx, grad_output):
            return [factor * ctx[-1] ** 2 * grad_output]

    return Cube
