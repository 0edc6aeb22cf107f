"""More real models through cgtools: MobileNet-v3-small (HardSwish, HardSigmoid, squeeze-and-excitation) and a
U-Net (ConvTranspose, bilinear Resize, skip Concat) exported from PyTorch at test time, forward against
onnxruntime and param gradients against PyTorch autograd; the onnx wheel's light AlexNet and Inception-v1 (LRN)
forward against onnxruntime and their stored outputs, and, with their weights drawn at random, every tensor
against onnxruntime's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import cgtools
from cgtools.compare import compare
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


def with_random_weights(path, target):
    """The light model with its weights, all 0.02 (ConstantOfShape nodes), drawn at random instead: with equal
    weights every channel holds the same values and the 1,000 outputs are all 0.001 whatever the ops compute."""
    model = onnx.load(str(path))
    shapes = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    rng, kept = np.random.default_rng(0), []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape":
            kept.append(node)
            continue
        shape = tuple(int(d) for d in shapes[node.input[0]])
        scale = 1 / np.sqrt(np.prod(shape[1:])) if len(shape) > 1 else 0.1  # weights by fan-in; biases small
        weight = (scale * rng.standard_normal(shape)).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(weight, node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    read = {name for node in kept for name in node.input}
    initializers = [t for t in model.graph.initializer if t.name in read]  # not the shapes the nodes read
    inputs = [v for v in model.graph.input if v.name not in shapes]  # IR 3 listed initializers as inputs too
    del model.graph.initializer[:], model.graph.input[:]
    model.graph.initializer.extend(initializers)
    model.graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 4)  # where an initializer need not be an input
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_with_random_weights_agrees_with_onnxruntime_at_every_tensor(name, tmp_path):
    path = with_random_weights(LIGHT / f"light_{name}.onnx", tmp_path / f"{name}.onnx")
    feed = dict([dummy_input(cgtools.load(path))])
    result = compare(path, inputs=feed, rtol=1e-4, atol=1e-5)  # (float32 sums of random weights cancel)
    nodes = onnx.load(str(path)).graph.node
    # Dropout's mask in inference: ones in ONNX's reference and in cgtools, zeros in onnxruntime before opset 12
    masks = {n.output[1] for n in nodes if n.op_type == "Dropout" and len(n.output) > 1}
    compared = {d.name: d for d in result.tensors}
    assert {out for n in nodes if n.op_type == "LRN" for out in n.output} <= set(compared)
    assert all(d.ok for d in result.tensors if d.name not in masks), result.report()
    assert result.outputs_agree, result.report()
    (output,) = result.outputs
    assert len(np.unique(result.run.values[output])) > 900  # the outputs differ: the weights did their part
