"""More real models through cgtools: MobileNet-v3-small (HardSwish, HardSigmoid, squeeze-and-excitation) and a
U-Net (ConvTranspose, bilinear Resize, skip Concat) exported from PyTorch at test time, forward against
onnxruntime and param gradients against PyTorch autograd; the onnx wheel's light AlexNet and Inception-v1 (LRN)
forward against onnxruntime and their stored outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import cgtools
from helpers import LIGHT, dummy_input

pytestmark = pytest.mark.slow  # each exports or runs a whole network

TORCH_MODELS = ["mobilenet_v3_small", "unet"]
LIGHT_MODELS = ["bvlc_alexnet", "inception_v1"]


def onnxruntime_outputs(path, feed: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def assert_close_to_scale(got, expected, rtol: float, what: str) -> None:
    """Every element within rtol of the tensor's largest magnitude: float32 sums of many terms cancel to
    near zero in places, where an elementwise relative tolerance would measure rounding alone."""
    assert got.shape == expected.shape, what
    worst = np.abs(got - expected).max() / np.abs(expected).max()
    assert worst <= rtol, f"{what}: max |difference| / max |expected| = {worst:.2e}"


@pytest.mark.parametrize("name", TORCH_MODELS)
@pytest.mark.parametrize("trainable", [False, True], ids=["folded", "batchnorm"])
def test_forward_equals_onnxruntime(name, trainable, exported):
    """Both exports: BatchNorm folded into the Conv before it (inference) and kept as its own op (training)."""
    model = exported(name, trainable=trainable)
    graph = cgtools.load(model.path)
    feed = {"x": model.x.numpy()}
    got = graph.run(feed, backward=False).values["y"]
    (expected,) = onnxruntime_outputs(model.path, feed)
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_param_gradients_equal_pytorchs(name, exported):
    """The loss Σ w·y with fixed random weights w (every output element weighs differently): the gradients of
    every param and of the input equal PyTorch's, the params found by name."""
    model = exported(name, trainable=True)
    graph = cgtools.load(model.path)
    x = model.x.clone().requires_grad_(True)
    y = model.model(x)
    w = np.random.default_rng(0).standard_normal(tuple(y.shape)).astype(np.float32)
    model.model.zero_grad()
    (y * torch.from_numpy(w)).sum().backward()
    params = dict(model.model.named_parameters())
    assert {leaf.name for leaf in graph.leaves_of("param")} == set(params)
    run = graph.run({"x": model.x.numpy()}, seed=w)
    assert_close_to_scale(run.values["y"], y.detach().numpy(), 1e-4, "y")
    assert_close_to_scale(run.grads["x"], x.grad.numpy(), 1e-4, "x")
    for pname, p in params.items():
        assert run.grads[pname].dtype == np.float32, pname
        assert_close_to_scale(run.grads[pname], p.grad.numpy(), 1e-4, pname)


def test_mobilenet_v3_runs_its_activations_and_the_unet_its_up_sampling(exported):
    """The ops these models are here for are in the exported graphs (an exporter change would hide them)."""
    ops = {name: {n.op_type for n in onnx.load(str(exported(name).path)).graph.node} for name in TORCH_MODELS}
    assert {"HardSwish", "HardSigmoid", "GlobalAveragePool", "Mul"} <= ops["mobilenet_v3_small"]
    assert {"ConvTranspose", "Resize", "Concat"} <= ops["unet"]
    resize = next(n for n in onnx.load(str(exported("unet").path)).graph.node if n.op_type == "Resize")
    assert {a.name: a.s for a in resize.attribute}["mode"] == b"linear"  # F.interpolate(mode="bilinear")


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_forward_equals_onnxruntime_and_the_stored_output(name):
    path = LIGHT / f"light_{name}.onnx"
    assert "LRN" in {n.op_type for n in onnx.load(str(path)).graph.node}
    graph = cgtools.load(path)
    feed = dict([dummy_input(graph)])
    (output,) = graph.outputs
    got = graph.run(feed, backward=False).values[output]
    (expected,) = onnxruntime_outputs(path, feed)
    stored = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / f"light_{name}_output_0.pb")))
    assert got.dtype == expected.dtype == stored.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got, stored, rtol=1e-4, atol=1e-7)
