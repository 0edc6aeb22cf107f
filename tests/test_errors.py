"""User errors: every failure a user can cause is a CgError whose message names the file, the place (a JSON
path such as `nodes[1].inputs[0]`), what was expected and what was found, with a did-you-mean where a
known name is close. The CLI prints that message as `error: …` on stderr and exits with code 1, never
with a traceback.

Most cases are mutations of examples/affine_square.json, written as {json path: new value}. Each runs
through the library (`cgtools.load`, `Graph.run`) and through the CLI's entry point `cgtools.cli.main`
in-process; a representative subset also runs through the real `cgtools` console script in a subprocess
(every run costs ~0.3 s of start-up, so all of them would not fit the time budget).
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cgtools
from helpers import error_of, run_cli, run_in_process

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "affine_square.json"
AFFINE = json.loads(EXAMPLE.read_text(encoding="utf-8"))
DELETE = object()


# ---- helpers ------------------------------------------------------------------------------------------

def edited(changes: dict) -> dict:
    """A copy of affine_square.json with `changes` applied: {"nodes[1].inputs[0]": "cc"} sets a value,
    DELETE removes it, and a last part "+" appends ("params[+]")."""
    doc = copy.deepcopy(AFFINE)
    for path, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
        target = doc
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        elif last == "+":
            target.append(value)
        else:
            target[last] = value
    return doc


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return path





def assert_cli_error(result: subprocess.CompletedProcess, *expected: str, one_line: bool = True) -> None:
    """Exit code 1, nothing on stdout, a single `error: …` line on stderr holding every `expected` part."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stdout == ""
    if one_line:
        assert result.stderr.count("\n") == 1, result.stderr
    for part in expected:
        assert part in result.stderr


def softmax(**attrs) -> dict:
    return {"op": "Softmax", "inputs": ["d"], "outputs": ["e"], "attrs": attrs}


def npz(file: str, key: str = "alpha") -> dict:
    return {"params[0].value": {"file": file, "key": key}}


class Trap:
    """Unpickling it runs os.mkdir(marker): proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A graph folder holding .npz files (a good one, a pickled one, a fake one), with another .npz
    outside it; unpickling pickled.npz would create tmp_path/"unpickled"."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    np.savez(graphs / "weights.npz", alpha=np.array(3.0), beta=np.array(2.0))
    np.savez(graphs / "pickled.npz", a=np.array([Trap(str(tmp_path / "unpickled"))], dtype=object))
    (graphs / "notes.npz").write_text("not a zip archive, just text", encoding="utf-8")
    np.savez(tmp_path / "outside.npz", alpha=np.array(3.0))
    return graphs


# ---- files that are not graphs ---------------------------------------------------------------------------

def missing(tmp: Path) -> Path:
    return tmp / "nope.json"


def invalid_json(tmp: Path) -> Path:
    path = tmp / "bad.json"
    path.write_text('{\n  "cgtools": "1.0",\n  "nodes": [,]\n}\n', encoding="utf-8")
    return path


def empty(tmp: Path) -> Path:
    path = tmp / "empty.json"
    path.write_text("", encoding="utf-8")
    return path


def latin1(tmp: Path) -> Path:
    path = tmp / "latin1.json"
    path.write_bytes('{"cgtools": "1.0", "name": "café"}'.encode("latin-1"))
    return path


def json_list(tmp: Path) -> Path:
    path = tmp / "list.json"
    path.write_text("[]", encoding="utf-8")
    return path


FILE_CASES = [
    pytest.param(missing, ["no such file"], id="missing-file"),
    pytest.param(invalid_json, ["line 3 column 13", "invalid JSON"], id="invalid-json"),
    pytest.param(empty, ["line 1 column 1", "invalid JSON"], id="empty-file"),
    pytest.param(latin1, ["utf-8", "0xe9"], id="not-utf8"),
    pytest.param(json_list, ["top level", "object"], id="not-an-object"),
]


@pytest.mark.parametrize("make, expected", FILE_CASES)
def test_unreadable_file(tmp_path, make, expected):
    path = make(tmp_path)
    message = error_of(cgtools.load, path)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


@pytest.mark.slow
@pytest.mark.parametrize("make, expected", FILE_CASES)
def test_unreadable_file_cli(tmp_path, make, expected):
    path = make(tmp_path)
    assert_cli_error(run_cli("run", path), f"error: {path}: ", *expected)


def test_folder_instead_of_file(tmp_path):
    message = error_of(cgtools.load, tmp_path)
    assert message == f"{tmp_path}: expected a graph file, found a folder"
    for command in ("run", "validate"):
        assert_cli_error(run_cli(command, tmp_path), str(tmp_path), "is a directory")


# ---- broken graphs: schema, names, ops, arity, attributes, cycles, values ---------------------------

GRAPH_CASES = [
    # JSON Schema
    pytest.param({"cgtools": DELETE}, ["top level", "'cgtools'", "required"], id="no-version"),
    pytest.param({"nodes": DELETE}, ["top level", "'nodes'", "required"], id="no-nodes"),
    pytest.param({"outputs": DELETE}, ["top level", "'outputs'", "required"], id="no-outputs"),
    pytest.param({"outputs": []}, ["outputs: ", "expected at least 1 item", "found []"], id="empty-outputs"),
    pytest.param({"outputs": "e"}, ["outputs: ", 'expected array, found "e"'], id="outputs-not-a-list"),
    pytest.param({"nodez": []}, ["top level", "unexpected field 'nodez'", "(did you mean 'nodes'?)",
                                 "expected one of: cgtools, name"], id="unknown-top-field"),
    pytest.param({"inputs[0].valeu": 1.0}, ["inputs[0]: ", "'valeu'", "(did you mean 'value'?)"],
                 id="unknown-tensor-field"),
    pytest.param({"nodes[0].input": ["a"]}, ["nodes[0]: ", "'input'", "(did you mean 'inputs'?)"],
                 id="unknown-node-field"),
    pytest.param({"nodes[1].inputs[0]": 5}, ["nodes[1].inputs[0]: ", "expected string, found 5"], id="deep-wrong-type"),
    pytest.param({"nodes[2].outputs": DELETE}, ["nodes[2]: ", "'outputs'", "required"], id="node-no-outputs"),
    pytest.param({"cgtools": "2.0"}, ["cgtools: ", '"2.0"', '"1.0"'], id="bad-version"),
    pytest.param({"cgtools": 1.0}, ["cgtools: ", "expected string, found 1.0"], id="version-not-a-string"),
    pytest.param({"inputs[0].dtype": "float128"}, ["inputs[0].dtype: ", '"float128"', "float64"],
                 id="bad-dtype"),
    pytest.param({"inputs[0].value": {"dtype": "complex64", "data": [1.0]}},
                 ["inputs[0].value.dtype: ", '"complex64"', "float32"], id="bad-dtype-in-value"),
    pytest.param({"params[0].value": DELETE}, ["params[0]: ", "'value'", "required"],
                 id="param-without-value"),
    pytest.param({"inputs[0].value": "one"}, ["inputs[0].value: ", '"one"'], id="value-a-string"),
    pytest.param({"inputs[0].value": {"data": [1.0], "shape": [1], "units": "m"}},
                 ["inputs[0].value: ", "unexpected field 'units'"], id="value-object-stray-field"),
    pytest.param(npz("weights.txt"), ["params[0].value.file: ", '"weights.txt"', ".npz"],
                 id="npz-bad-suffix"),
    # names
    pytest.param({"params[+]": {"name": "x", "value": 1.0}},
                 ["params[2].name: ", "tensor 'x' is declared twice", "inputs[0]"],
                 id="two-leaves-same-name"),
    pytest.param({"nodes[0].outputs[0]": "b"},
                 ["nodes[0].outputs[0]: ", "tensor 'b' is made twice", "the param 'b'"],
                 id="node-makes-a-leaf"),
    pytest.param({"nodes[1].outputs[0]": "c"},
                 ["nodes[1].outputs[0]: ", "tensor 'c' is made twice", "nodes[0]"],
                 id="two-nodes-same-tensor"),
    pytest.param({"nodes[0].outputs": ["c", "c"]}, ["nodes[0].outputs[1]: ", "tensor 'c' is made twice"],
                 id="node-makes-a-tensor-twice"),
    pytest.param({"nodes[0].name": "step", "nodes[1].name": "step"},
                 ["nodes[1].name: ", "node name 'step'", "nodes[0]"], id="node-name-collision"),
    pytest.param({"nodes[0].name": "x"}, ["nodes[0].name: ", "node name 'x'", "the input 'x'"],
                 id="node-named-like-a-leaf"),
    pytest.param({"nodes[1].inputs[0]": "cc"},
                 ["nodes[1].inputs[0]: ", "unknown tensor 'cc'", "(did you mean 'c'?)"], id="unknown-input"),
    pytest.param({"outputs": ["ee"]}, ["outputs[0]: ", "unknown tensor 'ee'", "(did you mean 'e'?)"],
                 id="unknown-output"),
    pytest.param({"loss": "ee"}, ["loss: ", "unknown tensor 'ee'", "(did you mean 'e'?)"], id="unknown-loss"),
    # ops and arity
    pytest.param({"nodes[0].op": "Mull"}, ["nodes[0].op: ", "unknown op 'Mull'", "(did you mean 'Mul'?)",
                                           "cgtools ops"], id="unknown-op"),
    pytest.param({"nodes[0].inputs": ["a"]}, ["nodes[0] (Mul 'c').inputs: ", "Mul takes 2 inputs (a, b)",
                                              "found 1"], id="too-few-inputs"),
    pytest.param({"nodes[0].inputs": ["a", "x", "b"]}, ["nodes[0] (Mul 'c').inputs: ", "takes 2 inputs",
                                                        "found 3"], id="too-many-inputs"),
    pytest.param({"nodes[0].inputs": ["a", ""]}, ["nodes[0] (Mul 'c').inputs: ", "takes 2 inputs",
                                                  "input 'b' left empty"], id="required-input-empty"),
    # attributes
    pytest.param({"nodes[2]": softmax(axsi=0)}, ["nodes[2].attrs.axsi: ", "Softmax has no attribute 'axsi'",
                                                 "(did you mean 'axis'?)"], id="unknown-attr"),
    pytest.param({"nodes[2]": {"op": "Relu", "inputs": ["d"], "outputs": ["e"], "attrs": {"alpha": 0.1}}},
                 ["nodes[2].attrs.alpha: ", "Relu has no attribute 'alpha'", "none"],
                 id="attr-on-op-without"),
    pytest.param({"nodes[2]": softmax(axis="1")}, ["nodes[2].attrs.axis: ", "expected an integer",
                                                   "found '1'"], id="attr-string-for-int"),
    pytest.param({"nodes[2]": softmax(axis=1.5)}, ["nodes[2].attrs.axis: ", "expected an integer",
                                                   "found 1.5"], id="attr-float-for-int"),
    pytest.param({"nodes[2]": softmax(axis={"value": 1})}, ["nodes[2].attrs.axis: ", "attribute value"],
                 id="attr-object"),
    pytest.param({"nodes[2]": {"op": "Concat", "inputs": ["c", "d"], "outputs": ["e"]}},
                 ["nodes[2].attrs: ", "Concat needs attribute 'axis'", "an integer"],
                 id="required-attr-missing"),
    # cycles
    pytest.param({"nodes[0].inputs": ["a", "d"]}, ["nodes: ", "cycle", "c → d → c"], id="cycle"),
    pytest.param({"nodes[0].inputs": ["a", "c"]}, ["nodes: ", "cycle", "c → c"], id="self-loop"),
    # values
    pytest.param({"inputs[0].value": [[1.0, 2.0], [3.0]]}, ["inputs[0].value: ", "ragged"], id="ragged-list"),
    pytest.param({"inputs[0].value": {"shape": [2, 2], "data": [1.0, 2.0, 3.0]}},
                 ["inputs[0].value.data: ", "expected 4 elements for shape [2, 2], found 3"],
                 id="data-vs-shape"),
    pytest.param({"inputs[0].value": [1.0, 2.0], "inputs[0].shape": [3]},
                 ["inputs[0].value: ", "expected shape [3] as declared, found [2]"], id="declared-shape"),
    pytest.param({"inputs[0].value": [1.5], "inputs[0].dtype": "int32"},
                 ["inputs[0].value: ", "expected int32 values", "found 1.5"], id="int-dtype-non-integer"),
    pytest.param({"inputs[0].value": {"dtype": "int64", "data": [2, 2.5]}},
                 ["inputs[0].value: ", "expected int64 values", "found 2.5"], id="int-data-non-integer"),
    pytest.param(npz("nope.npz"), ["params[0].value.file: ", "no such file 'nope.npz'"],
                 id="npz-missing-file"),
    pytest.param(npz("weights.npz", "alpah"), ["params[0].value.key: ", "has no array 'alpah'",
                                               "(did you mean 'alpha'?)"], id="npz-missing-key"),
    pytest.param(npz("../outside.npz"), ["params[0].value.file: ", "inside the graph's folder",
                                         "'../outside.npz'"], id="npz-leaves-folder"),
    pytest.param(npz("pickled.npz", "a"), ["params[0].value.file: ", "'pickled.npz'", "plain numeric arrays"],
                 id="npz-object-array"),
]


@pytest.mark.parametrize("changes, expected", GRAPH_CASES)
def test_broken_graph(folder, changes, expected):
    path = write(folder / "graph.json", edited(changes))
    message = error_of(cgtools.load, path)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message
    assert not (folder.parent / "unpickled").exists()


@pytest.mark.parametrize("changes, expected", GRAPH_CASES)
def test_broken_graph_cli(folder, capsys, changes, expected):
    path = write(folder / "graph.json", edited(changes))
    assert_cli_error(run_in_process(capsys, "validate", path), f"error: {path}: ", *expected)


THROUGH_THE_SCRIPT = {  # the cases also run through the real console script
    "no-version", "unknown-top-field", "deep-wrong-type", "bad-version", "two-leaves-same-name",
    "unknown-input", "unknown-op", "too-few-inputs", "unknown-attr", "cycle", "ragged-list",
    "npz-missing-key", "npz-object-array",
    "no-value", "set-not-json", "set-json-string", "shape-mismatch",
}


@pytest.mark.slow
@pytest.mark.parametrize("changes, expected", [case for case in GRAPH_CASES if case.id in THROUGH_THE_SCRIPT])
def test_broken_graph_script(folder, changes, expected):
    """A representative subset through the real console script (all cases run in-process above, where
    start-up costs nothing): stderr is exactly `error: ` and the library's message."""
    path = write(folder / "graph.json", edited(changes))
    result = run_cli("validate", path)
    assert_cli_error(result, *expected)
    assert result.stderr == f"error: {error_of(cgtools.load, path)}\n"


def test_run_reports_load_errors_like_validate(folder):
    path = write(folder / "graph.json", edited({"nodes[1].inputs[0]": "cc"}))
    assert_cli_error(run_cli("run", path), f"error: {error_of(cgtools.load, path)}\n")


# ---- .npz files: confined to the graph's folder, never unpickled ----------------------------------------

@pytest.mark.parametrize("how", ["absolute", "symlink"])
def test_npz_outside_the_folder_is_refused(folder, how):
    outside = folder.parent / "outside.npz"
    if how == "absolute":
        file = str(outside)
    else:
        file = "link.npz"
        (folder / file).symlink_to(outside)
    message = error_of(cgtools.load, write(folder / "graph.json", edited(npz(file))))
    assert "params[0].value.file: " in message and "inside the graph's folder" in message


def test_npz_loads_never_allow_pickle(folder, monkeypatch):
    real_load, allowed = np.lib.format.read_array, []

    def spy(*args, **kwargs):
        bound = inspect.signature(real_load).bind(*args, **kwargs)
        bound.apply_defaults()
        allowed.append(bound.arguments["allow_pickle"])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "read_array", spy)
    assert cgtools.load(write(folder / "good.json", edited(npz("weights.npz")))).run().values["a"] == 3.0
    for file in ("pickled.npz", "notes.npz"):
        error_of(cgtools.load, write(folder / "graph.json", edited(npz(file, "a"))))
    assert allowed and not any(allowed)  # arrays were read, and never with allow_pickle=True
    assert not (folder.parent / "unpickled").exists()


def test_npz_that_is_not_an_npz(folder):
    """numpy's hint for a file it cannot read ("load it unsafely using allow_pickle / pickle.load") must not
    reach the user: the file is simply not an .npz."""
    message = error_of(cgtools.load, write(folder / "graph.json", edited(npz("notes.npz"))))
    assert "params[0].value.file: " in message and "'notes.npz'" in message
    assert "pickle" not in message


# ---- running: inputs, --set, shapes, the loss -------------------------------------------------------------

X_WITHOUT_VALUE = edited({"inputs[0]": {"name": "x"}})
ADD_3_4 = {"cgtools": "1.0",
           "inputs": [{"name": "a", "value": [1.0, 2.0, 3.0]}, {"name": "b", "value": [1.0, 2.0, 3.0, 4.0]}],
           "nodes": [{"op": "Add", "inputs": ["a", "b"], "outputs": ["s"]}], "outputs": ["s"]}
VECTOR_LOSS = {"cgtools": "1.0", "inputs": [{"name": "a", "value": [1.0, 2.0, 3.0]}],
               "nodes": [{"op": "Neg", "inputs": ["a"], "outputs": ["s"]}], "outputs": ["s"]}
TWO_OUTPUTS = {"cgtools": "1.0", "inputs": [{"name": "a", "value": 2.0}],
               "nodes": [{"op": "Neg", "inputs": ["a"], "outputs": ["s"]},
                         {"op": "Exp", "inputs": ["a"], "outputs": ["t"]}], "outputs": ["s", "t"]}
SHAPES_ONLY = {"cgtools": "1.0", "inputs": [{"name": "a", "shape": [3]}, {"name": "b", "shape": [4]}],
               "nodes": [{"op": "Add", "inputs": ["a", "b"], "outputs": ["s"]}], "outputs": ["s"]}
DECLARED = {"cgtools": "1.0", "inputs": [{"name": "x", "dtype": "int32", "shape": [2]}],
            "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["z"]}], "outputs": ["z"]}


def test_input_without_value():
    message = error_of(cgtools.load(X_WITHOUT_VALUE).run)
    assert "input 'x' has no value" in message and "--set x=" in message


def test_setting_an_unknown_name():
    message = error_of(cgtools.load(AFFINE).run, {"xx": 1.0})
    assert "cannot set 'xx'" in message and "(did you mean 'x'?)" in message


def test_shape_mismatch_names_the_node_and_the_shapes():
    message = error_of(cgtools.load(ADD_3_4).run, backward=False)
    assert message.startswith("nodes[0] (Add 's'): ")
    assert "float64[3], float64[4]" in message


def test_non_scalar_loss():
    message = error_of(cgtools.load(VECTOR_LOSS).run)
    assert "the loss 's' has shape [3], not a scalar" in message


def test_seed_of_the_wrong_shape():
    message = error_of(cgtools.load(VECTOR_LOSS).run, seed=[1.0, 2.0])
    assert "seed gradient of shape [2]" in message and "shape [3]" in message


def test_two_outputs_and_no_loss():
    graph = cgtools.load(TWO_OUTPUTS)
    message = error_of(graph.run)
    assert "2 outputs (s, t)" in message and '"loss"' in message
    assert set(graph.run(backward=False).values) == {"a", "s", "t"}


def test_validate_dry_run_finds_the_shape_mismatch():
    message = error_of(cgtools.load(SHAPES_ONLY).validate)
    assert message.startswith("nodes[0] (Add 's'): ") and "float64[3], float64[4]" in message
    agreeing = [{"name": "a", "shape": [3]}, {"name": "b", "shape": [3]}]
    cgtools.load({**SHAPES_ONLY, "inputs": agreeing}).validate()


@pytest.mark.parametrize("value, expected", [
    pytest.param("abc", ["'x'", "abc"], id="a-string"),
    pytest.param({"a": 1}, ["'x'"], id="an-object"),
    pytest.param([[1.0], [2.0, 3.0]], ["'x'", "ragged"], id="ragged"),
    pytest.param([1.5, 2.0], ["'x'", "expected int32 values"], id="non-integer-for-int"),
    pytest.param([1, 2, 3], ["'x'", "expected shape [2] as declared, found [3]"], id="shape-vs-declared"),
])
def test_given_values_are_checked_like_the_graphs_own(value, expected):
    """A value given at run time is decoded like one in the file: a CgError naming the input, not a
    numpy ValueError and not a silent truncation or a shape the graph did not declare."""
    message = error_of(cgtools.load(DECLARED).run, {"x": value}, backward=False)
    for part in expected:
        assert part in message


RUN_CASES = [
    pytest.param(X_WITHOUT_VALUE, [], ["input 'x' has no value", "--set x="], id="no-value"),
    pytest.param(AFFINE, ["--set", "xx=1"], ["cannot set 'xx'", "(did you mean 'x'?)"], id="set-unknown"),
    pytest.param(AFFINE, ["--set", "x"], ["--set: ", "expected NAME=VALUE, found 'x'"], id="set-no-equals"),
    pytest.param(AFFINE, ["--set", "=3"], ["--set: ", "expected NAME=VALUE, found '=3'"], id="set-no-name"),
    pytest.param(AFFINE, ["--set", "x=[1,"], ["--set x: ", "expected a number or a JSON list", "'[1,'"],
                 id="set-not-json"),
    pytest.param(AFFINE, ["--set", 'x="abc"'], ["--set x: ", "expected a number or a JSON list"],
                 id="set-json-string"),
    pytest.param(AFFINE, ["--set", "x={}"], ["--set x: ", "expected a number or a JSON list"],
                 id="set-json-object"),
    pytest.param(AFFINE, ["--set", "x=[[1], [2, 3]]"], ["'x'", "ragged"], id="set-ragged"),
    pytest.param(ADD_3_4, ["--no-backward"], ["nodes[0] (Add 's'): ", "float64[3], float64[4]"],
                 id="shape-mismatch"),
    pytest.param(VECTOR_LOSS, [], ["the loss 's' has shape [3], not a scalar"], id="vector-loss"),
    pytest.param(TWO_OUTPUTS, [], ["2 outputs (s, t)", '"loss"', "forward only"], id="two-outputs"),
]


@pytest.mark.parametrize("doc, args, expected", RUN_CASES)
def test_run_errors_cli(tmp_path, capsys, doc, args, expected):
    path = write(tmp_path / "graph.json", doc)
    assert_cli_error(run_in_process(capsys, "run", path, *args), *expected)


@pytest.mark.slow
@pytest.mark.parametrize("doc, args, expected", [case for case in RUN_CASES if case.id in THROUGH_THE_SCRIPT])
def test_run_errors_script(tmp_path, doc, args, expected):
    path = write(tmp_path / "graph.json", doc)
    assert_cli_error(run_cli("run", path, *args), *expected)


def test_two_outputs_run_forward_only_cli(tmp_path):
    result = run_cli("run", write(tmp_path / "graph.json", TWO_OUTPUTS), "--no-backward", "--json")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["values"]) == {"a", "s", "t"}


def test_validate_dry_run_cli(tmp_path):
    path = write(tmp_path / "graph.json", SHAPES_ONLY)
    assert_cli_error(run_cli("validate", path), "nodes[0] (Add 's'): ", "float64[3], float64[4]")


@pytest.mark.parametrize("doc, command, args", [
    pytest.param(SHAPES_ONLY, "validate", [], id="validate-dry-run"),
    pytest.param(ADD_3_4, "run", ["--no-backward"], id="run-shape-mismatch"),
    pytest.param(X_WITHOUT_VALUE, "run", [], id="run-no-value"),
    pytest.param(VECTOR_LOSS, "run", [], id="run-vector-loss"),
])
def test_runtime_errors_name_the_file(tmp_path, capsys, doc, command, args):
    """Like every load error, an error found while running a graph file says which file."""
    path = write(tmp_path / "graph.json", doc)
    assert_cli_error(run_in_process(capsys, command, path, *args), f"error: {path}: ")


# ---- the command line itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    pytest.param(["run", EXAMPLE, "--bogus"], ["No such option '--bogus'", "cgtools run --help"],
                 id="unknown-option"),
    pytest.param(["run"], ["Missing argument 'GRAPH'"], id="missing-argument"),
    pytest.param(["validate"], ["Missing argument 'GRAPH'"], id="validate-missing-argument"),
    pytest.param(["run", EXAMPLE, "--set"], ["Option '--set' requires an argument"],
                 id="option-without-value"),
    pytest.param(["run", EXAMPLE, "--precision", "abc"], ["'abc' is not a valid integer"],
                 id="bad-option-value"),
    pytest.param(["frobnicate"], ["No such command 'frobnicate'"], id="unknown-command"),
    pytest.param(["run", EXAMPLE, EXAMPLE], ["unexpected extra argument"], id="extra-argument"),
])
def test_cli_usage_errors(args, expected):
    assert_cli_error(run_cli(*args), *expected)


def test_cli_without_a_command_shows_usage_without_traceback():
    result = run_cli()
    assert "Traceback" not in result.stderr
    assert "Usage: cgtools" in result.stdout + result.stderr
    if result.returncode != 0:
        assert result.returncode == 1 and result.stderr.startswith("error: ")


@pytest.mark.slow
def test_cli_runs_a_valid_graph():
    """The control: the same commands succeed on the unchanged example."""
    assert run_cli("validate", EXAMPLE).returncode == 0
    result = run_cli("run", EXAMPLE, "--set", "x=2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["values"]["e"] == 64.0


@pytest.mark.parametrize("entry, expected", [
    pytest.param({"name": "x", "dtype": "bool", "value": [0, 2]}, ["bool values", "2"], id="bool-given-2"),
    pytest.param({"name": "x", "dtype": "int32", "value": 1e10}, ["int32 values", "cannot hold"], id="int32-overflow"),
])
def test_integer_and_bool_values_must_fit(entry, expected):
    doc = {"cgtools": "1.0", "inputs": [entry], "nodes": [{"op": "Identity", "inputs": ["x"], "outputs": ["y"]}],
           "outputs": ["y"]}
    message = error_of(cgtools.load, doc)
    for part in expected:
        assert part in message


def test_duplicate_json_keys_are_refused(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"cgtools": "1.0", "nodes": [], "outputs": ["x"], "outputs": ["y"]}')
    message = error_of(cgtools.load, path)
    assert message.startswith(f"{path}: ") and "'outputs' appears twice" in message


def test_bare_command_prints_help():
    result = run_cli()
    assert result.returncode == 0 and "Usage:" in result.stdout and "run" in result.stdout


# ---- values that do not fit, and names a terminal would act on ----------------------------------------------

@pytest.mark.parametrize("dtype, data, found", [
    ("int64", [9223372036854775808], "9223372036854775808"),  # numpy reads it as uint64; a cast would wrap
    ("int64", [1, 2**64 - 1], "1.8446744073709552e+19"),  # int64 and uint64 together: numpy reads floats
    ("int32", [-2**31 - 1], "-2147483649"),
    ("int64", [1.5e19], "1.5e+19"),
])
def test_an_integer_its_dtype_cannot_hold_is_refused_not_wrapped(dtype, data, found, tmp_path, capsys):
    doc = {"cgtools": "1.0", "inputs": [{"name": "i", "value": {"dtype": dtype, "shape": [len(data)], "data": data}}],
           "nodes": [{"op": "Identity", "inputs": ["i"], "outputs": ["o"]}], "outputs": ["o"]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    done = run_in_process(capsys, "run", path, "--no-backward")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"inputs[0].value: expected {dtype} values, found {found}, which {dtype} cannot hold" in done.stderr


def test_the_largest_integers_a_dtype_holds_load_unchanged():
    graph = cgtools.load({"cgtools": "1.0", "inputs": [
        {"name": "i", "value": {"dtype": "int64", "shape": [2], "data": [-2**63, 2**63 - 1]}}],
        "nodes": [{"op": "Identity", "inputs": ["i"], "outputs": ["o"]}], "outputs": ["o"]})
    assert graph.leaves["i"].value.tolist() == [-2**63, 2**63 - 1]


HOSTILE = "x\x1b]0;owned\x07\x1b[2J\x9b31m"  # set the title, clear the screen, a C1 CSI


@pytest.mark.parametrize("command", [("run",), ("run", "--stats"), ("gradcheck",), ("info",)])
def test_names_reach_the_terminal_with_control_characters_escaped(command, tmp_path, capsys):
    doc = {"cgtools": "1.0", "inputs": [{"name": HOSTILE, "value": [1.0, 2.0]}],
           "nodes": [{"op": "ReduceSum", "inputs": [HOSTILE], "outputs": ["L" + HOSTILE], "attrs": {"keepdims": 0}}],
           "outputs": ["L" + HOSTILE]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc))
    done = run_in_process(capsys, command[0], path, *command[1:])
    said = done.stdout + done.stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", said), said
    assert "x\\x1b]0;owned\\x07\\x1b[2J\\x9b31m" in said


@pytest.mark.parametrize("depth", [41, 500, 100_000])
def test_lists_nested_too_deeply_are_refused_in_files_and_dicts(depth, tmp_path, capsys):
    """Python's JSON reader, the schema's validator and numpy all recurse: a few hundred levels gave a
    RecursionError traceback. Past 40 levels (a tensor of numpy's 32 dimensions fits) it is a CgError."""
    value = "[" * depth + "1" + "]" * depth
    path = tmp_path / "deep.json"
    path.write_text('{"cgtools": "1.0", "inputs": [{"name": "x", "value": ' + value + '}], '
                    '"nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}')
    done = run_in_process(capsys, "run", path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {path}: ") and "40 levels" in done.stderr
    if depth < 1000:  # the same document given as a dict
        nested = 1.0
        for _ in range(depth):
            nested = [nested]
        doc = {"cgtools": "1.0", "inputs": [{"name": "x", "value": nested}],
               "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}
        with pytest.raises(cgtools.CgError, match="inputs\\[0\\].value … : expected at most 40 levels|40 levels"):
            cgtools.load(doc)


def test_a_tensor_of_32_dimensions_still_loads():
    nested = 2.0
    for _ in range(32):
        nested = [nested]
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": {"dtype": "float32", "data": nested}}],
                          "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]})
    assert graph.run(backward=False).values["y"].shape == (1,) * 32
