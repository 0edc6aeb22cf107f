"""Weights read when first used: an ONNX model's external data and a graph's .npz arrays are memory-mapped, so
info, validate and render --no-values never bring them into memory, and a forward run reads them in place.
Evidence without patching: the kernel's own count of the resident pages of the mapping (/proc/self/smaps) and
the peak resident memory of a real `cgtools` process."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import cgtools
from cgtools.export import draw
from cgtools.export.scene import View
from cgtools.info import info
from helpers import cgtools_command, error_of, run_in_process

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

MiB = 2**20
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")


def external_model(folder, width: int = 512, layers: int = 3):
    """x [1, width] → (MatMul, Relu) × layers → + b → y, its weights (width² float32 each) in one external file;
    the constant b, under onnx's 1 KiB threshold, stays inside the model."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32),
                                       f"w{i}") for i in range(layers)]
    bias = numpy_helper.from_array(np.array([0.5], np.float32), "b")
    nodes, previous = [], "x"
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"h{i}"]),
                  helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]
        previous = f"r{i}"
    nodes.append(helper.make_node("Add", [previous, "b"], ["y"]))
    graph = helper.make_graph(nodes, "lazy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
                              [*weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin")
    return path


def resident_bytes(file) -> int:
    """Bytes of `file` this process has in memory through its mappings, as the kernel counts them."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                inside = line.rstrip("\n").endswith(str(file))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


def test_external_weights_are_mapped_and_stay_on_disk_through_info_validate_and_drawing(tmp_path):
    path = external_model(tmp_path)
    weights = tmp_path / "weights.bin"
    graph = cgtools.load(path)
    params = graph.leaves_of("param")
    assert sorted(p.name for p in params) == ["w0", "w1", "w2"]  # roles judged without reading them
    assert all(isinstance(graph.leaves[f"w{i}"].value, np.memmap) for i in range(3))
    about = info(graph)
    graph.validate()
    svg = draw(graph, None, View(show=frozenset({"names"}))).decode()
    assert about.param_bytes == 3 * 512 * 512 * 4 and "w2" in svg and "μ=" not in svg
    assert resident_bytes(weights) == 0
    graph.run({"x": np.ones((1, 512), np.float32)}, backward=False)
    assert resident_bytes(weights) >= 3 * 512 * 512 * 4  # the run read them, where they are


def test_a_mapped_models_forward_equals_onnxruntimes(tmp_path):
    import onnxruntime as ort

    path = external_model(tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 512)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    run = cgtools.load(path).run({"x": x}, backward=False)
    np.testing.assert_allclose(run.values["y"], expected, rtol=1e-5, atol=1e-6)


def test_writing_into_a_mapped_weight_never_changes_its_file(tmp_path):
    path = external_model(tmp_path)
    before = (tmp_path / "weights.bin").read_bytes()
    graph = cgtools.load(path)
    graph.leaves["w0"].value[:] = 0
    assert not graph.leaves["w0"].value.any() and (tmp_path / "weights.bin").read_bytes() == before
    assert cgtools.load(path).leaves["w0"].value.any()


def test_external_data_shorter_than_its_tensor_is_refused(tmp_path):
    path = external_model(tmp_path)
    with open(tmp_path / "weights.bin", "r+b") as f:
        f.truncate(3 * 512 * 512 * 4 - 8)
    message = error_of(cgtools.load, path)
    assert "initializer 'w2'" in message and "needs 1,048,576 bytes" in message


def test_render_no_values_draws_the_structure_without_a_number(tmp_path, capsys, graphviz):
    path = external_model(tmp_path, width=64)
    drawn = run_in_process(capsys, "render", path, "--no-values", "--random-inputs", "-f", "dot", "-o", "-")
    with_values = run_in_process(capsys, "render", path, "--random-inputs", "--upstream-grad", "ones", "-f", "dot",
                                 "-o", "-")
    assert drawn.returncode == 0 and with_values.returncode == 0, drawn.stderr + with_values.stderr
    assert "μ=" in with_values.stdout and "∂" in with_values.stdout  # the same drawing with its numbers
    bare = run_in_process(capsys, "render", path, "-f", "dot", "-o", "-")  # x has no value: no run to draw
    assert "μ=" not in drawn.stdout and "∂" not in drawn.stdout and drawn.stdout == bare.stdout
    assert all(f"w{i}" in drawn.stdout for i in range(3))
    refused = run_in_process(capsys, "render", path, "--no-values", "--color-by", "value", "-o", "-")
    assert refused.returncode == 1 and "--no-values draws no numbers" in refused.stderr


def test_npz_weights_of_a_graph_are_mapped_and_compressed_inputs_still_read(tmp_path, capsys):
    w = np.arange(400 * 1000, dtype=np.float32).reshape(400, 1000) / 1000  # 1.6 MB: mapped (files.MAPPED_FROM)
    value = {"dtype": "float32", "shape": [400, 1000], "data": w.ravel().tolist()}
    cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "shape": [1, 400], "dtype": "float32"}],
                  "params": [{"name": "w", "value": value}],
                  "nodes": [{"op": "MatMul", "inputs": ["x", "w"], "outputs": ["y"]}],
                  "outputs": ["y"]}).save(tmp_path / "g.json")
    graph = cgtools.load(tmp_path / "g.json")
    assert isinstance(graph.leaves["w"].value, np.memmap) and resident_bytes(tmp_path / "g.npz") == 0
    np.savez_compressed(tmp_path / "x.npz", x=np.ones((1, 400), np.float32))
    done = run_in_process(capsys, "run", tmp_path / "g.json", "--inputs", tmp_path / "x.npz", "--no-backward",
                          "--json")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.ravel(json.loads(done.stdout)["values"]["y"]), w.sum(axis=0), rtol=1e-5)


# Run by a fresh, small interpreter: Linux counts the memory of the process a child was spawned from (this test
# process, holding the model it made) in the child's peak, so the child is spawned from a small one.
PEAK = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "_, status, usage = os.wait4(child.pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")


def peak_mib(*args) -> float:
    """The peak resident memory of one `cgtools` process."""
    done = subprocess.run([sys.executable, "-c", PEAK, *cgtools_command(), *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    code, kib = map(int, done.stdout.split())
    assert code == 0, done.stderr
    return kib / 1024


@pytest.mark.slow
def test_a_200_mib_models_structure_costs_no_memory_and_its_run_no_copy(tmp_path):
    path = external_model(tmp_path, width=4096, layers=3)  # 3 × 64 MiB
    weights = (tmp_path / "weights.bin").stat().st_size / MiB
    looked_at = [peak_mib("info", path), peak_mib("validate", path),
                 peak_mib("render", path, "--no-values", "-f", "dot", "-o", tmp_path / "model.dot")]
    ran = peak_mib("run", path, "--no-backward", "--random-inputs")
    assert max(looked_at) < 0.5 * weights, looked_at  # the interpreter and its libraries, no weights
    assert ran < min(looked_at) + 1.2 * weights, (ran, looked_at)  # the weights once, in place (issue 14: +20%)
