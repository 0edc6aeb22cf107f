"""Graphs from expressions: the lecture's example, and text that must never run."""

import json

import numpy as np
import pytest

import cgtools
from cgtools.expr import parse
from helpers import EXAMPLES


def same_numbers(a, b, names):
    ra, rb = a.run(), b.run()
    for name in names:
        np.testing.assert_allclose(ra.values[name], rb.values[name])
        np.testing.assert_allclose(ra.grads[name], rb.grads[name])


def test_new_reproduces_the_lecture_example(tmp_path, cli):
    out = tmp_path / "affine.json"
    result = cli("new", "c = a*x; d = c + b; e = d**2", "--set", "a=3", "--set", "x=1", "--set", "b=2",
                 "--param", "a,b", "-o", out)
    assert result.returncode == 0, result.stderr
    made, lecture = cgtools.load(out), cgtools.load(EXAMPLES / "affine_square.json")
    same_numbers(made, lecture, ["x", "a", "b", "c", "d", "e"])
    assert [leaf.kind for leaf in made.leaves.values()] == ["input", "param", "param", "constant"]
    assert json.loads(out.read_text())["doc"] == "c = a*x; d = c + b; e = d**2"


def test_single_expression_with_generated_names():
    doc = parse("(a*x + b)**2", values={"a": 3, "x": 1, "b": 2})
    run = cgtools.load(doc).run()
    assert run.values["f"] == 25 and run.grads["x"] == 30 and doc["outputs"] == ["f"]
    assert [n["outputs"][0] for n in doc["nodes"]] == ["t1", "t2", "f"]  # named in the order computed


def test_functions_attributes_and_fan_out():
    doc = parse("h = relu(W @ x + b); y = softmax(h, axis=0); L = sum(y * y) + sum(h) * h2",
                values={"W": [[1.0, -1.0], [0.5, 2.0]], "x": [1.0, 2.0], "b": [0.1, -0.2], "h2": 3.0})
    run = cgtools.load(doc).run()
    assert set(run.grads) >= {"W", "x", "b", "h", "y"}
    assert any(n["op"] == "Softmax" and n["attrs"] == {"axis": 0} for n in doc["nodes"])


@pytest.mark.parametrize("text, expected", [
    ("__import__('os').system('echo pwned')", "cannot be called"),
    ("x.__class__", "attribute access is not allowed"),
    ("(lambda: 1)()", "cannot be called"),
    ("lambda: 1", "a lambda is not allowed"),
    ("x[0]", "indexing is not allowed"),
    ("import os", "Import is not allowed"),
    ("x ** 100000", "too large"),
    ("2 ** 10 ** 10", "written as one number"),
    ("'a' * 3", "expected a number"),
    ("relux(x)", "did you mean 'relu'"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("f(x)(y)", "cannot be called"),
    ("c = x; c = 2 * x", "already defined"),
    ("x +", "invalid syntax"),
])
def test_refused_with_a_clear_error(text, expected):
    with pytest.raises(cgtools.CgError) as caught:
        parse(text)
    assert expected in str(caught.value) and "column" in str(caught.value)  # says where


def test_unknown_names_in_set_and_param_list_the_leaves():
    with pytest.raises(cgtools.CgError, match=r"'z' is not a leaf.*its leaves are: a, x"):
        parse("a * x", values={"z": 1})


def test_malicious_text_through_the_cli_never_runs(tmp_path, cli):
    marker = tmp_path / "pwned"
    result = cli("new", f"__import__('os').system('touch {marker}')")
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_render_an_expression_directly(tmp_path, cli, graphviz):
    result = cli("render", "--expr", "(a*x + b)**2", "--set", "a=3", "--set", "x=1", "--set", "b=2",
                 "--param", "a,b", "-o", tmp_path / "e.svg")
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "e.svg").read_text()
    assert "∂f/∂x = 30" in svg and "f = 25" in svg
    result = cli("render", EXAMPLES / "affine_square.json", "--expr", "x")
    assert result.returncode == 1 and "one of the two" in result.stderr


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(cgtools.CgError, match="nested at most a few hundred levels"):
        parse(" + ".join(["x"] * 3000))


def test_reductions_along_an_axis_and_list_attributes():
    doc = parse("s = sum(x, axis=0); m = mean(x, axis=[0, 1]); y = s + m", values={"x": [[1.0, 2.0], [3.0, 5.0]]})
    run = cgtools.load(doc).run(backward=False)
    np.testing.assert_allclose(run.values["s"], [4.0, 7.0])
    assert run.values["m"] == 2.75
    with pytest.raises(cgtools.CgError, match="must be a number, a string or a list of numbers"):
        parse("sum(x, axis=y)")
