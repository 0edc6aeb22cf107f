"""A small float CNN exported from PyTorch, quantized by onnxruntime's own tools (static QDQ with per-channel
weights, static QOperator, dynamic), run by cgtools against onnxruntime.

onnxruntime's graph optimizations fuse QDQ patterns into integer kernels that round intermediate results
differently from the model as written, so the oracle is onnxruntime with those optimizations off: every
integer tensor of the model (each quantized activation, integer product and dynamic scale's zero point) must
equal it exactly, the float output within rtol 1e-4 (it is in fact equal)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import cgtools
from helpers import assert_round_trip

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

pytestmark = pytest.mark.slow  # exports and quantizes a model, runs onnxruntime


class SmallCNN(nn.Module):
    """Conv-Relu-MaxPool-Conv-Relu, then a MatMul and a bias (not Gemm, which only onnxruntime's own ops
    quantize in the QOperator format)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.weight = nn.Parameter(0.1 * torch.randn(16 * 4 * 4, 10))
        self.bias = nn.Parameter(torch.randn(10))

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        return torch.relu(self.conv2(x)).flatten(1) @ self.weight + self.bias


SHAPE = (2, 3, 16, 16)


class Calibration(quantization.CalibrationDataReader):
    """A few random batches for quantize_static to measure the activations' ranges on."""

    def __init__(self):
        self.batches = iter([{"x": np.random.default_rng(k).standard_normal(SHAPE, np.float32)} for k in range(4)])

    def get_next(self):
        return next(self.batches, None)


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("quantized") / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(SmallCNN().eval(), (torch.randn(*SHAPE),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    return path


FORMATS = {"qdq": quantization.QuantFormat.QDQ, "qoperator": quantization.QuantFormat.QOperator}


def quantized(float_model, how: str):
    """The model quantized by onnxruntime: "qdq", "qoperator" (static) or "dynamic"."""
    path = float_model.with_name(f"cnn-{how}.onnx")
    ops = ["Conv", "MatMul"]
    if how == "dynamic":
        quantization.quantize_dynamic(str(float_model), str(path), op_types_to_quantize=ops)
    else:
        quantization.quantize_static(str(float_model), str(path), Calibration(), op_types_to_quantize=ops,
                                     quant_format=FORMATS[how],
                                     per_channel=how == "qdq")
    return path


def onnxruntime_run(path, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """onnxruntime's values of `names` (made graph outputs), the model run as written (no fusions)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(path))
    typed = {v.name: v for v in model.graph.value_info}
    model.graph.output.extend(typed[n] for n in names if n not in {o.name for o in model.graph.output})
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True))


EXPECTED_OPS = {"qdq": {"QuantizeLinear", "DequantizeLinear"},
                "qoperator": {"QLinearConv", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear"},
                "dynamic": {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}}


@pytest.mark.parametrize("how", EXPECTED_OPS)
def test_quantized_model_runs_as_onnxruntime_does(float_model, how):
    path = quantized(float_model, how)
    graph = cgtools.load(path)
    assert EXPECTED_OPS[how] <= {node.op for node in graph.nodes}
    x = np.random.default_rng(9).standard_normal(SHAPE, np.float32)
    run = graph.run({"x": x}, backward=False)
    integers = [name for name, v in run.values.items() if v.dtype.kind in "iu" and name not in graph.leaves]
    assert len(integers) >= 3, "the quantized activations and integer products are compared"
    expected = onnxruntime_run(path, x, integers)
    for name in integers:
        assert run.values[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(run.values[name], expected[name], err_msg=name)
    assert run.values["y"].dtype == np.float32
    np.testing.assert_allclose(run.values["y"], expected["y"], rtol=1e-4, atol=0)


def test_no_gradient_reaches_the_input_through_rounding(float_model):
    """Backward runs through a QDQ model: the input's gradient is zero (rounding has none, as in PyTorch);
    the float bias added after the last DequantizeLinear gets the seed summed over the batch."""
    graph = cgtools.load(quantized(float_model, "qdq"))
    x = np.random.default_rng(3).standard_normal(SHAPE, np.float32)
    seed = np.random.default_rng(4).standard_normal((2, 10)).astype(np.float32)
    run = graph.run({"x": x}, seed=seed)
    assert run.grads["x"].shape == SHAPE and not np.any(run.grads["x"])
    np.testing.assert_allclose(run.grads["bias"], seed.sum(axis=0), rtol=1e-6)


@pytest.mark.parametrize("how", EXPECTED_OPS)
def test_the_quantized_model_round_trips_through_json(float_model, how, tmp_path, capsys):
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    assert_round_trip(quantized(float_model, how), {"x": x}, tmp_path, capsys)
