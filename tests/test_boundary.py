"""The command line's last line of defence and its size limits: a graph too large for Graphviz is refused with
advice before its run, numbers out of range in expressions are refused, a bug is said as one (exit 70) and
never printed as a traceback, and the fast schema check agrees with jsonschema."""

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cgtools
from cgtools.errors import CgError
from cgtools.export import draw
from cgtools.export.layout import FRAMES_LIMIT, GRAPHVIZ_LIMIT
from cgtools.expr import parse
from cgtools.json_format import fits_schema, json_schema
from helpers import error_of, run_in_process

EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.json"))


def chain(n: int, scoped: bool = False) -> dict:
    nodes = [{"op": "Relu", "inputs": [f"t{i - 1}" if i else "x"], "outputs": [f"t{i}"],
              **({"scope": [f"block{i // 100}"]} if scoped else {})} for i in range(n)]
    return {"cgtools": "1.0", "inputs": [{"name": "x", "value": 1.0}], "nodes": nodes, "outputs": [f"t{n - 1}"]}


@pytest.fixture(scope="module")
def long_chain(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "chain.json"
    path.write_text(json.dumps(chain(GRAPHVIZ_LIMIT + 1)))
    return path


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf", "dot"])
def test_a_graph_too_large_for_graphviz_is_refused_with_advice(capsys, long_chain, fmt):
    out = long_chain.with_suffix(f".{fmt}")
    result = run_in_process(capsys, "render", long_chain, "-o", out)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{GRAPHVIZ_LIMIT + 1:,} boxes are too many" in result.stderr
    assert "--focus NAME --depth 2" in result.stderr and "-f html" in result.stderr
    assert "--collapse" not in result.stderr  # a chain without scopes has no modules to collapse
    assert not out.exists()


def test_the_advice_offers_modules_when_the_graph_has_them():
    graph = cgtools.load(chain(GRAPHVIZ_LIMIT + 1, scoped=True))
    message = error_of(draw, graph, None, None, "svg")
    assert "--collapse 1 (one box per module)" in message


def test_a_part_of_a_large_graph_is_still_drawn(capsys, long_chain, graphviz):
    out = long_chain.with_name("focused.svg")
    result = run_in_process(capsys, "render", long_chain, "-o", out, "--focus", "t2500", "--depth", "2")
    assert result.returncode == 0, result.stderr
    assert "t2500" in out.read_text() and "t2000" not in out.read_text()


def test_the_refusal_comes_before_the_run(monkeypatch, capsys, long_chain):
    """The run of a graph this size takes seconds too: nothing is run before the answer."""
    def no_run(*args, **kwargs):
        raise AssertionError("ran the graph before refusing it")

    monkeypatch.setattr(cgtools.Graph, "run", no_run)
    result = run_in_process(capsys, "render", long_chain, "-o", long_chain.with_suffix(".svg"))
    assert result.returncode == 1 and "boxes are too many" in result.stderr


def test_frames_have_their_own_smaller_limit(capsys, tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(chain(FRAMES_LIMIT + 1)))
    result = run_in_process(capsys, "render", path, "--frames", tmp_path / "frames")
    assert result.returncode == 1 and f"too many for frames (at most {FRAMES_LIMIT:,}" in result.stderr
    assert not (tmp_path / "frames").exists() or not any((tmp_path / "frames").iterdir())


@pytest.mark.parametrize("text, expected", [
    ("x * 1e999", "the number 1e999 is out of range"),
    ("x * 1" + "0" * 400, "is out of range: numbers are float64"),
    ("x * " + "9" * 5000, "a whole number of more than 4,300 digits"),
    ("softmax(x, axis=99999999999999999999)", "whole numbers int64"),
])
def test_numbers_out_of_range_in_expressions_are_refused(capsys, text, expected):
    for args in (["new", text], ["render", "--expr", text, "-f", "dot", "-o", "-"]):
        result = run_in_process(capsys, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert expected in result.stderr


def test_large_finite_numbers_in_expressions_still_work():
    graph = cgtools.load(parse("y = x * 1e300 + 9223372036854775807", values={"x": 1.0}))
    assert graph.run(backward=False).values["y"] == pytest.approx(1e300)


def test_a_bug_is_said_as_one_with_its_own_exit_code(capsys, monkeypatch, tmp_path):
    from cgtools.cli.reporting import INTERNAL_ERROR

    monkeypatch.setattr(cgtools.Graph, "validate", lambda self: {}["no such key"])
    result = run_in_process(capsys, "validate", EXAMPLES[0])
    assert result.returncode == INTERNAL_ERROR and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: internal error (KeyError: 'no such key'); this is a bug in cgtools")
    monkeypatch.setenv("CGTOOLS_TRACEBACK", "1")
    assert "KeyError" in run_in_process(capsys, "validate", EXAMPLES[0]).stderr.splitlines()[0]


def test_running_out_of_memory_is_said_plainly(capsys, monkeypatch):
    def exhausted(self):
        raise MemoryError

    monkeypatch.setattr(cgtools.Graph, "validate", exhausted)
    result = run_in_process(capsys, "validate", EXAMPLES[0])
    assert result.returncode == 1 and result.stderr.startswith("error: out of memory")


def test_user_errors_keep_exit_code_1(capsys, tmp_path):
    assert run_in_process(capsys, "validate", tmp_path / "missing.json").returncode == 1
    assert run_in_process(capsys, "run", "--no-such-option").returncode == 1


# ---- the fast schema check is the schema ---------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.integers(-2**70, 2**70) | st.floats() |
                    st.sampled_from(["", "x", "1.0", "Add", "float64", "a b"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["name", "value", "shape", "dtype", "op", "inputs", "outputs", "attrs",
                                         "file", "key", "doc", "scope", "other"]), inner, max_size=3),
                    max_leaves=8)


def places(doc, path=()):
    """Every path into `doc`, containers first."""
    yield path
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield from places(value, (*path, key))


def mutated(doc, path, new, drop: bool):
    doc = json.loads(json.dumps(doc))
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


@settings(max_examples=300, deadline=None)
@given(example=st.sampled_from(EXAMPLES), data=st.data(), new=JSON, drop=st.booleans())
def test_the_fast_schema_check_agrees_with_jsonschema(example, data, new, drop):
    """jsonschema-rs decides whether a document fits: it must agree with jsonschema, which explains failures."""
    doc = json.loads(example.read_text())
    path = data.draw(st.sampled_from(list(places(doc))[:400]))
    doc = mutated(doc, path, new, drop and bool(path))
    valid, fast = jsonschema.Draft202012Validator(json_schema()).is_valid(doc), fits_schema(doc)
    # the one known difference is the safe one: jsonschema-rs refuses infinities and NaN (JSON has none), then
    # jsonschema decides (parts_of asks it whenever the fast check says no)
    assert fast == valid or (valid and any_non_finite(doc)), (path, new, drop)


def any_non_finite(item) -> bool:
    if isinstance(item, float):
        return not np.isfinite(item)
    children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
    return any(any_non_finite(child) for child in children)


def test_a_document_with_infinities_still_loads_through_jsonschema():
    doc = json.loads(EXAMPLES[0].read_text())
    doc["inputs"][0]["value"] = [float("inf")]
    assert not fits_schema(doc) and np.isinf(cgtools.load(doc).leaves["x"].value).all()


def test_documents_that_fit_load_through_the_fast_path_only(monkeypatch):
    import cgtools.json_format as json_format

    monkeypatch.setattr(json_format, "refuse_by_schema", lambda doc, file: pytest.fail("jsonschema was asked"))
    for example in EXAMPLES:
        cgtools.load(example)
    with pytest.raises(pytest.fail.Exception):
        cgtools.load({"cgtools": "1.0", "nodes": [], "outputs": 3})


def test_a_document_that_does_not_fit_is_explained_by_jsonschema():
    with pytest.raises(CgError, match=r"params\[0\].*'value'"):
        cgtools.load({"cgtools": "1.0", "params": [{"name": "a"}], "nodes": [], "outputs": ["a"]})


def test_traced_tensors_say_a_failing_op_in_words():
    from cgtools.tensor import Tensor

    message = error_of(lambda: Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3))))
    assert message.startswith("MatMul: forward failed on inputs float64[2, 3], float64[2, 3]: ")


SET_CASES = [
    ("1e999999", "--set x: expected a number of at most 1,000 characters within float64's range, found 1e999999"),
    ("9" * 5000, "--set x: expected a number of at most 1,000 characters within float64's range, found one of 5,000"),
    ("[" * 5000 + "]" * 5000, "--set x: expected a number or a JSON list, found '[[[["),
    ("[" * 50 + "1" + "]" * 50, "--set x[0][0][0] …: expected at most 40 levels"),
    ("[1e400, 1]", "--set x[0]: expected a number of at most 1,000 characters within float64's range, found 1e400"),
    ('"\\ud800"', "--set x: found a lone surrogate \\ud800"),
]


@pytest.mark.parametrize("value, expected", SET_CASES, ids=["huge", "long", "deep", "nested", "in-list", "surrogate"])
def test_set_values_are_read_within_the_limits_of_a_file(capsys, value, expected):
    result = run_in_process(capsys, "run", EXAMPLES[0], "--set", f"x={value}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {expected}"), result.stderr


def test_a_number_beyond_float64_in_a_file_is_refused_not_read_as_infinity(tmp_path):
    doc = json.loads(EXAMPLES[0].read_text())
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc).replace('"value": 1.0', '"value": 1e999', 1))
    assert "inputs[0].value: expected a number of at most 1,000 characters within float64's range, found 1e999" \
        in error_of(cgtools.load, path)
    path.write_text(json.dumps(doc).replace('"value": 1.0', '"value": Infinity', 1))
    assert np.isinf(cgtools.load(path).leaves["x"].value)  # written as Infinity, it is meant


NUMBER_TEXT = st.one_of(st.integers(-10**400, 10**400).map(str), st.floats().map(repr),
                        st.from_regex(r"\A[0-9]{1,30}(\.[0-9]{0,5})?(e[+-]?[0-9]{1,6})?\Z"))


def run_or_refuse(graph, inputs=None):
    try:
        with np.errstate(all="ignore"):
            graph.run(inputs)
    except CgError:
        pass


@settings(max_examples=200, deadline=None)
@given(a=NUMBER_TEXT, b=NUMBER_TEXT, op=st.sampled_from("+-*/"))
def test_numbers_in_expressions_make_a_graph_that_runs_or_a_cgerror(a, b, op):
    try:
        doc = parse(f"y = x {op} {a} {op} ({b})", values={"x": 1.0})
    except CgError:
        return
    run_or_refuse(cgtools.load(doc))


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=40), JSON.map(json.dumps), NUMBER_TEXT,
                      st.integers(1, 3000).map(lambda n: "[" * n + "1" + "]" * n)))
def test_set_values_are_a_value_or_a_cgerror(text):
    from cgtools.cli.options import parse_cli_value

    try:
        value = parse_cli_value(text)
    except CgError:
        return
    run_or_refuse(cgtools.load(EXAMPLES[0]), {"x": value})


@pytest.mark.parametrize("call", [
    lambda: cgtools.load("graph\0.json"), lambda: cgtools.load("model\0.onnx"),
    lambda: cgtools.load("graph\ud800.json"),
    lambda: cgtools.load(EXAMPLES[0]).save("out\0.json"), lambda: cgtools.convert(EXAMPLES[0], "out\0.onnx"),
], ids=["load-json", "load-onnx", "load-surrogate", "save", "convert"])
def test_paths_given_from_python_are_checked_like_any_input(call):
    assert "a path" in error_of(call)
