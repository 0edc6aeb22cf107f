"""Limits on what cgtools reads: number literals, names and text, declared shapes, elements per tensor and in
all, .npz members (checked from their headers and the zip directory before anything is decompressed), and dry
runs that use declared shapes rather than allocations. Each case is refused with a CgError naming the file and
the place, through the library and the CLI (in-process, and as the real console script for a few), never with
a traceback, and within a small time and memory budget where size is the attack."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import cgtools
from cgtools import json_format, limits
from cgtools.files import read_npz
from cgtools.limits import MAX_ELEMENTS, MAX_TOTAL_ELEMENTS
from helpers import error_of, run_cli, run_in_process

onnx = pytest.importorskip("onnx")


def relu_graph(**x) -> dict:
    return {"cgtools": "1.0", "inputs": [{"name": "x", **x}],
            "nodes": [{"op": "Relu", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}


def write(path: Path, text_or_doc) -> Path:
    path.write_text(text_or_doc if isinstance(text_or_doc, str) else json.dumps(text_or_doc), encoding="utf-8")
    return path


def refused(capsys, path: Path, *expected: str, command: str = "validate") -> str:
    """The message of both the library's CgError and the CLI's `error:` line, which must agree and hold each
    `expected` part."""
    message = error_of(cgtools.load, path)
    done = run_in_process(capsys, command, path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {path}: "), done.stderr
    for part in expected:
        assert part in message and part in done.stderr, (part, message)
    return message


# ---- number literals, names and text ---------------------------------------------------------------------

@pytest.mark.parametrize("literal", ["9" * 5000, "-" + "1" * 4400, "1." + "5" * 5000, "1" * 1001 + "e5"])
def test_overlong_number_literals_are_refused_with_their_place(literal, tmp_path, capsys):
    """Python refuses to convert integers of more than 4,300 digits (a ValueError traceback before)."""
    text = json.dumps(relu_graph(value=0)).replace('"value": 0', f'"value": {literal}')
    path = write(tmp_path / "g.json", text)
    refused(capsys, path, "inputs[0].value: ", f"found one of {len(literal):,}", "at most 1,000 characters")


def test_number_literals_at_the_limit_still_load(tmp_path):
    text = json.dumps(relu_graph(value=0)).replace('"value": 0', '"value": 7.5' + "0" * 997)
    assert cgtools.load(write(tmp_path / "g.json", text)).run(backward=False).values["y"] == 7.5


@pytest.mark.parametrize("escape, found", [("\\ud800", "a lone surrogate \\ud800"), ("\\udfff", "lone surrogate"),
                                           ("\\u0000", "a NUL character")])
def test_unwritable_characters_in_names_are_refused_at_load(escape, found, tmp_path, capsys):
    """A lone surrogate ran, then crashed render, convert and save with UnicodeEncodeError; a NUL broke the
    sidecar's zip member and ONNX. Both are refused where the document names them."""
    text = json.dumps(relu_graph(value=1.0)).replace('"name": "x"', f'"name": "a{escape}"')
    path = write(tmp_path / "g.json", text.replace('"inputs": ["x"]', f'"inputs": ["a{escape}"]'))
    refused(capsys, path, "inputs[0].name: ", found, "in a name")  # its first place in the file
    for command in ("run", "render"):
        done = run_in_process(capsys, command, path)
        assert done.returncode == 1 and "Traceback" not in done.stderr and found in done.stderr
    doc = json.loads(text)  # the same through a dict: json.loads keeps the lone surrogate
    with pytest.raises(cgtools.CgError, match="inputs\\[0\\].name"):
        cgtools.load(doc)


def test_control_characters_other_than_nul_stay_allowed_in_names():
    doc = relu_graph(value=1.0)
    doc["inputs"][0]["name"] = doc["nodes"][0]["inputs"][0] = "x\x1b[2J\nθ"
    assert cgtools.load(doc).run(backward=False).values["y"] == 1.0


def test_unwritable_text_in_docs_and_overlong_names_are_refused(tmp_path):
    doc = relu_graph(value=1.0, doc="a\udc00b")
    assert "inputs[0].doc: found a lone surrogate \\udc00 in text" in error_of(cgtools.load, doc)
    doc = relu_graph(value=1.0)
    doc["nodes"][0]["name"] = "n" * 1025
    assert "nodes[0].name: expected a name of at most 1,024 characters, found 1,025" in error_of(cgtools.load, doc)


# ---- declared shapes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, found", [
    ([4611686018427387904, 4], "18,446,744,073,709,551,616"), ([0, 10**20], "100,000,000,000,000,000,000"),
    ([1_000_000, 1_000_000], "1,000,000,000,000"), ([MAX_ELEMENTS + 1], f"{MAX_ELEMENTS + 1:,}")])
def test_declared_shapes_over_the_element_limit_are_refused(shape, found, tmp_path, capsys):
    """Their product overflowed numpy (a ValueError traceback) or asked a dry run for terabytes."""
    path = write(tmp_path / "g.json", relu_graph(shape=shape))
    refused(capsys, path, "inputs[0].shape: ", f"at most {MAX_ELEMENTS:,}", found)


def test_array_values_check_their_shape_before_numpy_does():
    doc = relu_graph(value={"dtype": "float32", "shape": [2**62, 4], "data": [1.0]})
    assert "inputs[0].value.shape: " in error_of(cgtools.load, doc)
    doc = relu_graph(value={"dtype": "float32", "shape": [1] * 33, "data": [1.0]})
    assert "at most 32 dimensions" in error_of(cgtools.load, doc)


def test_values_of_a_graph_are_limited_in_total(monkeypatch):
    """The same check that refuses 2**29 elements, at a scale a test can afford."""
    monkeypatch.setattr(json_format, "MAX_TOTAL_ELEMENTS", 10)
    doc = relu_graph(value=[1.0] * 6)
    doc["params"] = [{"name": "w", "value": [1.0] * 6}]
    assert "params[0].value: expected at most 10 elements in all the values of a graph, found 12" in error_of(
        cgtools.load, doc)


# ---- dry runs -------------------------------------------------------------------------------------------

def peak_of(*args, cwd=None) -> tuple[subprocess.CompletedProcess, int]:
    """The CLI run in a fresh interpreter, and that process's peak resident memory in MiB."""
    if not Path("/proc/self/status").exists():
        pytest.skip("measures memory through /proc")
    # VmHWM is this program's own peak; ru_maxrss would also count the pytest process it was started from
    script = ("import re, sys\nfrom cgtools.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
              "    kib = re.search('VmHWM:[ \\t]*([0-9]+)', open('/proc/self/status').read()).group(1)\n"
              "    print('peak', int(kib) // 1024, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    return done, int(done.stderr.rsplit("peak ", 1)[1])


def test_validate_of_a_large_declared_input_answers_at_once():
    graph = cgtools.load(relu_graph(shape=[16000, 16000]))
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="declare 256,000,000 elements, more than the 16,777,216"):
        graph.validate()
    assert time.perf_counter() - start < 0.5


@pytest.mark.slow
def test_validate_and_convert_of_a_large_declared_input_use_no_memory(tmp_path):
    """[16000, 16000] is 256M elements, under the per-tensor limit: the dry run skips it with a note rather
    than allocating 2 GiB for the input and as much for each op."""
    path = write(tmp_path / "g.json", relu_graph(shape=[16000, 16000]))
    done, peak = peak_of("validate", path)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "note: the inputs without a value declare 256,000,000 elements" in done.stderr
    assert "shapes are not checked" in done.stderr and f"{path}: ok (1 leaves, 1 nodes)" in done.stdout
    assert peak < 250, peak
    done, peak = peak_of("convert", path, tmp_path / "g.onnx")
    assert done.returncode == 0 and "ONNX shape inference types the outputs instead" in done.stderr
    assert peak < 250, peak
    model = onnx.load(str(tmp_path / "g.onnx"))
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [16000, 16000]


def test_dry_runs_under_the_budget_still_check_shapes(tmp_path, capsys):
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "shape": [1000, 3]}],
           "nodes": [{"op": "MatMul", "inputs": ["x", "x"], "outputs": ["y"]}], "outputs": ["y"]}
    path = write(tmp_path / "g.json", doc)
    done = run_in_process(capsys, "validate", path)
    assert done.returncode == 1 and "nodes[0] (MatMul 'y')" in done.stderr and "note:" not in done.stderr


# ---- .npz files -----------------------------------------------------------------------------------------

def npy_header(shape, descr="<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue()


def handmade_zip(path: Path, members) -> Path:
    """A zip of deflated members as given: (name, compressed bytes, crc, size the directory claims). Python's
    zipfile cannot write a member it did not compress itself, nor one whose claimed size is a lie."""
    local, central = b"", b""
    for name, data, crc, size in members:
        name = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                               len(name), 0, 0, 0, 0, 0, len(local)) + name
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
        local += name + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(local + central + end)
    return path


def deflated(header: bytes, zeros: int) -> tuple[bytes, int, int]:
    """`header` then `zeros` zero bytes, raw-deflated in chunks: (compressed, crc, size)."""
    packer, crc, chunk = zlib.compressobj(9, zlib.DEFLATED, -15), zlib.crc32(header), bytes(2**24)
    parts = [packer.compress(header)]
    for start in range(0, zeros, len(chunk)):
        piece = chunk[:min(len(chunk), zeros - start)]
        parts.append(packer.compress(piece))
        crc = zlib.crc32(piece, crc)
    return b"".join(parts) + packer.flush(), crc, len(header) + zeros


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """24 members of 2**28 bytes of zeros each (uint8 arrays): 6 MB on disk, 6 GiB decompressed."""
    header = npy_header([MAX_ELEMENTS], "|u1")
    data, crc, size = deflated(header, MAX_ELEMENTS)
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    return handmade_zip(path, [(f"m{k}.npy", data, crc, size) for k in range(24)])


def test_a_zip_bomb_is_refused_before_decompressing(bomb, tmp_path, capsys):
    assert bomb.stat().st_size < 8 * 2**20
    message = error_of(read_npz, bomb)
    assert f"holds {24 * MAX_ELEMENTS:,} elements" in message and f"{MAX_TOTAL_ELEMENTS:,}" in message
    path = write(tmp_path / "g.json", relu_graph(shape=[2]))
    done, peak = peak_of("run", path, "--inputs", bomb)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: --inputs ") and f"holds {24 * MAX_ELEMENTS:,} elements" in done.stderr
    assert peak < 250, peak


@pytest.mark.slow
def test_one_member_of_a_bomb_is_read_alone(bomb, tmp_path):
    """A {file, key} value reads only its member: one 256 MiB array is within every limit."""
    (tmp_path / "bomb.npz").write_bytes(bomb.read_bytes())
    graph = cgtools.load(write(tmp_path / "g.json", relu_graph(value={"file": "bomb.npz", "key": "m3"})))
    assert graph.leaves["x"].value.shape == (MAX_ELEMENTS,) and not graph.leaves["x"].value.any()


def test_a_member_that_decompresses_to_more_than_its_directory_says_fails_while_read(tmp_path):
    """The directory claims 100 floats; the stream holds 64 MiB. Reading stops at the claimed size and the
    CRC of the whole stream does not match what was read."""
    header = npy_header([100])
    data, crc, _ = deflated(header, 2**26)
    path = handmade_zip(tmp_path / "liar.npz", [("a.npy", data, crc, len(header) + 800)])
    assert "cannot read 'liar.npz'" in error_of(read_npz, path, "liar.npz")


def test_headers_are_never_trusted(tmp_path, capsys):
    """A 300-byte archive whose header claims 10**9 floats said "holds object arrays"; a header claiming
    fewer bytes than its member holds, or more, is refused too, before reading."""
    claims = [("huge", [10**9], "<f8", 64, f"at most {MAX_ELEMENTS:,}"),
              ("short", [100], "<f8", 64, "claims 100 elements of float64 (800 bytes) but its member holds 64"),
              ("long", [2], "<f8", 800, "claims 2 elements of float64 (16 bytes) but its member holds 800"),
              ("text", [2], "<U3", 24, "holds <U3; expected plain numeric arrays")]
    for name, shape, descr, stored, expected in claims:
        header = npy_header(shape, descr)
        data, crc, size = deflated(header, stored)
        path = handmade_zip(tmp_path / f"{name}.npz", [("a.npy", data, crc, size)])
        assert path.stat().st_size < 400
        message = error_of(read_npz, path, f"{name}.npz")
        assert expected in message and "object" not in message, message
        graph = write(tmp_path / "g.json", relu_graph(value={"file": f"{name}.npz", "key": "a"}))
        refused(capsys, graph, "inputs[0].value.file: ", expected)


def test_members_not_asked_for_are_never_read(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.arange(3.0))
    with open(tmp_path / "w.npz", "ab"):
        pass
    import zipfile

    with zipfile.ZipFile(tmp_path / "w.npz", "a") as archive:
        archive.writestr("broken.npy", npy_header([10**9]) + b"\0" * 8)
    graph = cgtools.load(write(tmp_path / "g.json", relu_graph(value={"file": "w.npz", "key": "a"})))
    assert graph.run(backward=False).values["y"].tolist() == [0.0, 1.0, 2.0]
    assert "the array 'broken'" in error_of(read_npz, tmp_path / "w.npz")


def test_nul_in_a_file_path_is_refused_with_its_place(tmp_path, capsys):
    path = write(tmp_path / "g.json", relu_graph(value={"file": "a\u0000.npz", "key": "k"}))
    refused(capsys, path, "inputs[0].value.file: ", "a NUL character")
    assert "inputs[0].value.file: " in error_of(cgtools.load, relu_graph(value={"file": "a\0.npz", "key": "k"}))


# ---- ONNX models ----------------------------------------------------------------------------------------

def onnx_model(path: Path, weight_name="w", dims=(3,), weight=None) -> Path:
    helper, TensorProto = onnx.helper, onnx.TensorProto
    weight = weight if weight is not None else onnx.numpy_helper.from_array(np.ones(3, np.float32), weight_name)
    graph = helper.make_graph([helper.make_node("Add", ["x", weight.name], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_convert_refuses_an_onnx_name_holding_nul(tmp_path, capsys):
    """It exited 0 and wrote a graph that could not load."""
    model = onnx_model(tmp_path / "m.onnx", "w\0evil")
    done = run_in_process(capsys, "convert", model, tmp_path / "g.json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == f"error: {model}: initializer 'w\\x00evil': found a NUL character in a name; names and " \
                          "text may not hold NUL (files cannot store it)\n"
    assert not (tmp_path / "g.json").exists()


def test_onnx_names_that_are_not_utf8_are_refused(tmp_path):
    model = onnx_model(tmp_path / "m.onnx", "wXYZ")
    model.write_bytes(model.read_bytes().replace(b"wXYZ", b"w\xed\xa0\x80"))  # a surrogate, UTF-8-encoded
    message = error_of(cgtools.load, model)
    assert "initializer b'w\\xed\\xa0\\x80': expected UTF-8 text" in message


def test_onnx_declared_shapes_are_checked(tmp_path):
    assert f"graph input 'x': expected a shape whose non-zero dimensions multiply to at most {MAX_ELEMENTS:,}" in \
        error_of(cgtools.load, onnx_model(tmp_path / "m.onnx", dims=(2**40, 2**40)))
    graph = cgtools.load(onnx_model(tmp_path / "n.onnx", dims=(-1,)))  # some exporters' way to say "unknown"
    assert graph.leaves["x"].shape is None and graph.leaves["x"].dims == (None,)


@pytest.mark.parametrize("location, length, expected", [
    ("w\0.bin", "", "a NUL character"), ("w.bin", "", "external data of 4,000 bytes for a float32 tensor of "
                                                      "shape [3] (12 bytes)"),
    ("w.bin", "x", "whole numbers")])
def test_onnx_external_data_is_checked_before_it_is_read(location, length, expected, tmp_path, capsys):
    (tmp_path / "w.bin").write_bytes(bytes(4000))
    weight = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[3])
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", length)):
        if value:
            weight.external_data.add(key=key, value=value)
    model = onnx_model(tmp_path / "m.onnx", weight=weight)
    assert "initializer 'w'" in error_of(cgtools.load, model) and expected in error_of(cgtools.load, model)
    done = run_in_process(capsys, "run", model)
    assert done.returncode == 1 and "Traceback" not in done.stderr and expected in done.stderr


# ---- the console script ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_console_script_reports_each_limit_on_one_line(tmp_path):
    cases = [relu_graph(shape=[2**62, 4]), relu_graph(value={"file": "a\0.npz", "key": "k"})]
    paths = [write(tmp_path / f"g{k}.json", doc) for k, doc in enumerate(cases)]
    paths.append(write(tmp_path / "long.json", json.dumps(relu_graph(value=0)).replace(
        '"value": 0', '"value": ' + "9" * 5000)))
    for path in paths:
        done = run_cli("validate", path)
        assert done.returncode == 1 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"error: {path}: inputs[0]."), done.stderr


def test_deeply_nested_scope_metadata_in_onnx_is_not_followed(tmp_path):
    """cgtools' scope metadata is JSON; nested 40,000 levels deep, Python's reader raised RecursionError."""
    model = onnx.load(str(onnx_model(tmp_path / "m.onnx")))
    onnx.helper.set_metadata_props(model.graph.node[0], {"cgtools.scope": "[" * 40_000 + "]" * 40_000})
    onnx.save(model, str(tmp_path / "deep.onnx"))
    graph = cgtools.load(tmp_path / "deep.onnx")
    assert graph.nodes[0].scope == ()


def test_random_inputs_are_sized_within_the_limits(tmp_path, capsys):
    """--dim sizes come from the command line, after load: they are checked before anything is drawn."""
    model = onnx_model(tmp_path / "m.onnx", dims=("batch",))
    done = run_in_process(capsys, "run", model, "--random-inputs", "--dim", f"batch={2**62}", "--no-backward")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"input 'x': expected a shape whose non-zero dimensions multiply to at most {MAX_ELEMENTS:,}" in done.stderr
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": f"x{k}", "shape": [2**27]} for k in range(5)],
                          "nodes": [{"op": "Sum", "inputs": [f"x{k}" for k in range(5)], "outputs": ["y"]}],
                          "outputs": ["y"]})
    assert f"at most {MAX_TOTAL_ELEMENTS:,} elements in all, found inputs of {5 * 2**27:,}" in error_of(
        graph.random_inputs)


def test_graph_files_over_the_size_limit_are_refused_before_parsing(tmp_path, capsys):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(limits.MAX_DOCUMENT_BYTES + 1)  # sparse: no disk space, no time
    start = time.perf_counter()
    refused(capsys, path, f"expected a graph file of at most {limits.MAX_DOCUMENT_BYTES:,} bytes")
    assert time.perf_counter() - start < 5
