"""gradcheck: analytic gradients against float64 central finite differences, from Python and the command line."""

import json

import numpy as np
import pytest

import cgtools
from cgtools.gradcheck import gradcheck
from helpers import EXAMPLES, error_of, graph_of, register_cube, run_in_process

CUBE_INPUT = {"name": "x", "value": [1.0, -2.0, 0.5]}


def summed(tensor: str) -> dict:
    """The node L = Σ tensor, a scalar loss."""
    return {"op": "ReduceSum", "inputs": [tensor], "outputs": ["L"], "attrs": {"keepdims": 0}}


def cube_graph(op_type: str) -> dict:
    """L = Σ op(x): the custom op's input x is the only tensor checked."""
    return {"cgtools": "1.0", "inputs": [CUBE_INPUT],
            "nodes": [{"op": op_type, "inputs": ["x"], "outputs": ["y"]},
                      summed("y")],
            "outputs": ["L"]}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_graph_passes(path):
    report = gradcheck(cgtools.load(path))
    assert report.ok, report.table()
    assert report.tensors and all(t.checked == np.prod(t.shape, dtype=int) for t in report.tensors)


def test_the_lecture_example_passes_with_its_gradients():
    report = gradcheck(cgtools.load(EXAMPLES / "affine_square.json"))
    assert report.ok and report.loss == "e"
    found = {t.name: (t.kind, t.analytic, t.numeric) for t in report.tensors}
    assert set(found) == {"x", "a", "b"} and found["x"][0] == "input" and found["a"][0] == "param"
    for name, expected in {"x": 30, "a": 10, "b": 10}.items():
        assert found[name][1] == pytest.approx(expected) and found[name][2] == pytest.approx(expected, rel=1e-8)


def test_the_traced_lecture_example_passes():
    from cgtools.tensor import Tensor

    a, x, b = Tensor(3.0, name="a", param=True), Tensor(1.0, name="x"), Tensor(2.0, name="b", param=True)
    e = (((a * x).named("c") + b).named("d") ** 2).named("e")
    assert gradcheck(e.graph(name="affine")).ok


def test_a_custom_op_with_a_wrong_backward_fails_and_is_named():
    register_cube("GcCubeWrong", factor=2.0)  # 2x², not 3x²
    report = gradcheck(cgtools.load(cube_graph("GcCubeWrong")))
    assert not report.ok
    worst = report.tensors[0]
    assert (worst.name, worst.kind, worst.passed, worst.checked) == ("x", "input", False, 3)
    assert worst.max_rel_error == pytest.approx(1 / 3, rel=1e-6)  # 2x² against 3x²
    assert worst.worst_index == (1,) and worst.analytic == pytest.approx(8) and worst.numeric == pytest.approx(12)
    assert "'x'" in report.summary() and "GcCubeWrong 'y'" in report.summary()
    assert "FAIL" in report.table()


def test_the_same_custom_op_with_the_right_backward_passes():
    register_cube("GcCubeRight")
    report = gradcheck(cgtools.load(cube_graph("GcCubeRight")))
    assert report.ok and report.tensors[0].max_rel_error < 1e-8
    assert "FAIL" not in report.table()


def test_float32_graphs_are_checked_in_float64():
    w = {"name": "w", "value": {"dtype": "float32", "data": [0.3, -1.7, 2.2]}}
    g = graph_of([{"op": "Tanh", "inputs": ["w"], "outputs": ["t"]},
                  summed("t")], params=[w])
    report = gradcheck(g)
    assert report.ok and report.tensors[0].max_abs_error < 1e-8  # float32 differences would be off by ~1e-2
    assert g.leaves["w"].value.dtype == np.float32  # the graph itself is left as it was


def test_a_large_param_is_sampled_reproducibly():
    forwards = []

    @cgtools.register_op("GcCounted")
    class Counted(cgtools.Operation):
        @staticmethod
        def forward(ctx, value):
            forwards.append(1)
            return value * value

        @staticmethod
        def backward(ctx, grad_output):
            return [grad_output]  # wrong (2x), so the worst element depends on the sample

    W = {"name": "W", "value": np.linspace(-1, 1, 100).reshape(10, 10).tolist()}
    g = graph_of([{"op": "GcCounted", "inputs": ["W"], "outputs": ["s"]},
                  summed("s")], params=[W])
    first = gradcheck(g, max_elements=16, seed=3)
    assert first.tensors[0].checked == 16 and len(forwards) == 1 + 2 * 16  # one analytic run, two per element
    again, other = gradcheck(g, max_elements=16, seed=3), gradcheck(g, max_elements=16, seed=4)
    assert again.to_dict() == first.to_dict()
    assert other.to_dict() != first.to_dict()
    assert gradcheck(g, max_elements=100).tensors[0].checked == 100


def test_given_inputs_are_checked_at_their_values():
    report = gradcheck(cgtools.load(EXAMPLES / "affine_square.json"), {"x": 2.0})
    assert {t.name: t.analytic for t in report.tensors}["x"] == pytest.approx(2 * 3 * (3 * 2 + 2))


def test_a_loss_that_is_no_scalar_is_a_clear_error():
    g = graph_of([{"op": "Exp", "inputs": ["x"], "outputs": ["y"]}], inputs=[CUBE_INPUT])
    message = error_of(gradcheck, g)
    assert "scalar loss" in message and "'y'" in message and "[3]" in message and "reduce" in message


def test_the_command_passes_a_good_graph(capsys):
    result = run_in_process(capsys, "gradcheck", EXAMPLES / "affine_square.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["tensor", "kind"] and "ok" in result.stdout
    assert "gradcheck failed" not in result.stderr


def test_the_command_fails_a_wrong_backward_and_names_the_tensor(capsys, tmp_path):
    register_cube("GcCubeCli", factor=2.0)
    path = tmp_path / "cube.json"
    path.write_text(json.dumps(cube_graph("GcCubeCli")))
    result = run_in_process(capsys, "gradcheck", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "gradcheck failed" in result.stderr and "'x'" in result.stderr and "FAIL" in result.stdout


def test_the_command_prints_json_and_takes_its_options(capsys):
    result = run_in_process(capsys, "gradcheck", EXAMPLES / "mlp_xent.json", "--json", "--max-elements", "2",
                            "--set", "b2=[0.1, 0.2, 0.3]")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["loss"] == "L"
    assert all(row["checked"] <= 2 for row in doc["tensors"]) and {r["name"] for r in doc["tensors"]} >= {"W1", "b2"}


def test_the_command_reports_user_errors_without_a_traceback(capsys):
    result = run_in_process(capsys, "gradcheck", EXAMPLES / "affine_square.json", "--set", "nope=1")
    assert result.returncode == 1 and result.stderr.startswith("error:") and "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_only_the_named_tensors_are_checked_and_unknown_names_are_refused(capsys):
    done = run_in_process(capsys, "gradcheck", EXAMPLES / "mlp_xent.json", "--tensor", "W2,b1", "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(t["name"] for t in json.loads(done.stdout)["tensors"]) == ["W2", "b1"]
    wrong = run_in_process(capsys, "gradcheck", EXAMPLES / "mlp_xent.json", "--tensor", "W3")
    assert wrong.returncode == 1 and "no float input or param 'W3'" in wrong.stderr and "W2" in wrong.stderr
