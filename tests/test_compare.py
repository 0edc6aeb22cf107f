"""`cgtools compare`: every tensor of a run against onnxruntime, onnx's ReferenceEvaluator or another graph, and
the first node whose output differs while its inputs agree, on models exported from PyTorch here and on the
light models inside the onnx wheel."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from cgtools.compare import compare
from helpers import EXAMPLES, run_in_process

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SQUEEZENET = LIGHT / "light_squeezenet.onnx"
INCEPTION_V1 = LIGHT / "light_inception_v1.onnx"


class SmallNet(nn.Module):
    """Conv, BatchNorm, ReLU, pooling, a second Conv, then a linear classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


@pytest.fixture(scope="module")
def small_net(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = SmallNet().eval()
    path = tmp_path_factory.mktemp("compare") / "small.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (torch.randn(2, 3, 8, 8),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"])
    return path


def altered(source: Path, target: Path, change) -> Path:
    model = onnx.load(str(source))
    change(model)
    onnx.save(model, str(target))
    return target


def test_an_exported_model_agrees_with_onnxruntime_on_every_tensor(small_net):
    result = compare(small_net, random_seed=1)
    assert result.against == "onnxruntime" and result.outputs_agree and result.divergence is None
    node_outputs = {out for node in onnx.load(str(small_net)).graph.node for out in node.output}
    assert node_outputs <= {d.name for d in result.tensors}  # every intermediate was compared
    assert all(d.ok and d.max_abs < 1e-5 for d in result.tensors)


def test_a_changed_weight_is_found_at_its_conv(small_net, tmp_path):
    def change(model):
        conv = [n for n in model.graph.node if n.op_type == "Conv"][1]
        (weight,) = [t for t in model.graph.initializer if t.name == conv.input[1]]
        array = numpy_helper.to_array(weight).copy()
        array[0, 0, 0, 0] += 0.5
        weight.CopyFrom(numpy_helper.from_array(array, weight.name))

    other = altered(small_net, tmp_path / "weight.onnx", change)
    result = compare(small_net, other, random_seed=1)
    conv = [n for n in onnx.load(str(small_net)).graph.node if n.op_type == "Conv"][1]
    assert not result.outputs_agree
    assert result.divergence.op == "Conv" and f"'{conv.name}'" in result.divergence.place
    assert result.divergence.leaves_differing == [["param", conv.input[1]]]


def test_a_changed_attribute_is_found_at_its_node(small_net, tmp_path):
    def change(model):
        conv = [n for n in model.graph.node if n.op_type == "Conv"][0]
        (pads,) = [a for a in conv.attribute if a.name == "pads"]
        pads.ints[:] = [0, 0, 0, 0]

    other = altered(small_net, tmp_path / "pads.onnx", change)
    result = compare(small_net, other, random_seed=1)
    first_conv = [n for n in onnx.load(str(small_net)).graph.node if n.op_type == "Conv"][0]
    assert f"'{first_conv.name}'" in result.divergence.place and result.divergence.leaves_differing == []
    (out,) = result.divergence.outputs
    assert out.problem == "shape [2, 8, 8, 8] against [2, 8, 6, 6]"


def test_a_json_graph_is_written_as_a_model_and_compared():
    import cgtools

    result = compare(EXAMPLES / "mlp_xent.json")
    computed = [out for node in cgtools.load(EXAMPLES / "mlp_xent.json").nodes for out in node.outputs]
    assert result.outputs_agree and result.divergence is None and [d.name for d in result.tensors] == computed


@pytest.mark.slow
def test_squeezenet_the_reference_evaluator_reads_softmax_with_the_newest_default_axis(capsys):
    """The light SqueezeNet (opset 9) ends in a Softmax with no axis: opset 9 means axis 1 (the 1,000 classes);
    the ReferenceEvaluator normalises over the last axis, of length 1, and answers 1.0 for every class."""
    result = compare(SQUEEZENET, against="reference", random_seed=0)
    assert not result.outputs_agree
    assert result.divergence.place == "nodes[104] (Softmax 'n65')" and result.divergence.attrs == {"axis": 1}
    assert [d.name for d in result.tensors if not d.ok] == ["softmaxout_1"]
    done = run_in_process(capsys, "compare", SQUEEZENET, "--against", "reference", "--random-inputs")
    assert done.returncode == 1 and "first divergence: nodes[104] (Softmax 'n65')" in done.stdout


@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_exported_model_agrees_with_onnxruntime_through_the_cli_at_any_thread_count(capsys, small_net, threads):
    done = run_in_process(capsys, "compare", small_net, "--random-inputs", "3", "--json", "--threads", threads)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outputs_agree"] and report["against"] == "onnxruntime"
    assert all(t["ok"] for t in report["tensors"])


def test_a_dropout_mask_is_the_one_difference_in_the_light_inception_v1(capsys):
    """onnxruntime gives an all-False mask in inference, ONNX an all-True one. (The light SqueezeNet is no test
    of agreement: its synthetic weights make logits near 7e9, where float32's step is 512, so its softmax
    follows the summation order, which changes with the number of BLAS threads.)"""
    done = run_in_process(capsys, "compare", INCEPTION_V1, "--random-inputs", "3", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outputs_agree"] and [t["name"] for t in report["tensors"] if not t["ok"]] == ["r140"]


def test_inputs_without_values_or_shapes_are_a_clear_error(capsys, tmp_path):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"cgtools": "1.0", "inputs": [{"name": "x"}],
                                 "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]}))
    done = run_in_process(capsys, "compare", graph, "--random-inputs")
    assert done.returncode == 1 and "input 'x' declares no fixed shape" in done.stderr
    assert "Traceback" not in done.stderr


def test_tensor_differences_count_nan_and_infinities_as_values():
    from cgtools.compare import tensor_diff

    same = np.array([1.0, np.nan, np.inf])
    assert tensor_diff("t", same, same.copy(), 1e-4, 1e-5).ok
    off = tensor_diff("t", same, np.array([1.0, 0.0, np.inf]), 1e-4, 1e-5)
    assert not off.ok and off.problem == "NaN on one side only"
    near = tensor_diff("t", np.array([1.0, 2.0]), np.array([1.0, 2.0001]), 1e-4, 1e-5)
    assert near.ok and near.max_abs == pytest.approx(1e-4)
    assert not tensor_diff("t", np.array([1.0, 2.0]), np.array([1.0, 2.01]), 1e-4, 1e-5).ok
