"""Real models through cgtools: the light ResNet-50 and DenseNet-121 the onnx wheel ships (forward against their
stored outputs, drawn as SVG and HTML, round trips through JSON and back to ONNX), and a LeNet and an MLP
exported from PyTorch (forward and backward against autograd)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

import cgtools
from cgtools.export import draw
from cgtools.io import convert
from cgtools.onnx.write import to_onnx
from helpers import LIGHT, dummy_input, run_in_process

pytestmark = pytest.mark.slow  # real models: ResNet-50, DenseNet-121, exported from PyTorch

LIGHT_MODELS = ["resnet50", "densenet121"]


@pytest.fixture(scope="module", params=LIGHT_MODELS)
def light(request):
    """(name, graph, its forward run on the dummy input, the stored output)"""
    name = request.param
    graph = cgtools.load(LIGHT / f"light_{name}.onnx")
    feed = dict([dummy_input(graph)])
    run = graph.run(feed, backward=False)
    expected = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / f"light_{name}_output_0.pb")))
    return name, graph, feed, run, expected


def test_light_model_forward_equals_the_stored_output(light):
    name, graph, _, run, expected = light
    (output,) = graph.outputs
    got = run.values[output]
    assert got.dtype == expected.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("fmt, start", [("svg", b"<?xml"), ("html", b"<!DOCTYPE html>")])
def test_light_model_draws(light, fmt, start, graphviz):
    name, graph, _, run, _ = light
    data = draw(graph, run, fmt=fmt)
    assert data.lstrip().startswith(start)
    assert graph.nodes[-1].name.encode() in data or fmt == "svg"  # svg escapes and wraps; the page names them
    assert len(data) > 100_000


def test_light_model_through_json_gives_the_same_forward(light, tmp_path):
    name, graph, feed, run, _ = light
    written = convert(LIGHT / f"light_{name}.onnx", tmp_path / f"{name}.json")
    assert written[0] == tmp_path / f"{name}.json"
    again = cgtools.load(written[0]).run(feed, backward=False)
    (output,) = graph.outputs
    np.testing.assert_array_equal(again.values[output], run.values[output])


def test_light_model_written_back_runs_in_onnxruntime(light):
    import onnxruntime as ort

    name, graph, feed, run, expected = light
    model = to_onnx(graph, run)
    assert model.opset_import[0].version == graph.opset == 9
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, feed)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("light", ["resnet50"], indirect=True)
def test_resnet_backward_reaches_the_input(light):
    name, graph, feed, run, _ = light
    (output,) = graph.outputs
    seed = np.zeros(run.values[output].shape, np.float32)
    seed[0, 7] = 1
    back = graph.run(feed, seed=seed)
    (x,) = feed
    assert back.grads[x].shape == feed[x].shape and np.isfinite(back.grads[x]).all()


# ---- PyTorch models, exported to ONNX offline -----------------------------------------------------------

class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 5))

    def forward(self, x):
        return self.layers(x)


TORCH_MODELS = {"lenet": (LeNet, (3, 1, 28, 28)), "mlp": (MLP, (4, 20))}


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_pytorch_model_forward_and_backward_match_autograd(name, tmp_path):
    make, shape = TORCH_MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(*shape)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    graph = cgtools.load(path)
    params = dict(model.named_parameters())
    assert {leaf.name for leaf in graph.leaves_of("param")} == set(params)
    assert [leaf.name for leaf in graph.leaves_of("input")] == ["x"] and graph.opset == 17

    x.requires_grad_(True)
    y = model(x)
    y.sum().backward()  # the loss: the sum of the outputs
    run = graph.run({"x": x.detach().numpy()}, seed=np.ones(tuple(y.shape), np.float32))
    np.testing.assert_allclose(run.values["y"], y.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run.grads["x"], x.grad.numpy(), rtol=1e-3, atol=1e-5)
    for pname, p in params.items():
        assert run.grads[pname].dtype == np.float32
        np.testing.assert_allclose(run.grads[pname], p.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=pname)


def test_a_classifiers_gradients_from_the_command_line(tmp_path, capsys):
    """`run model.onnx --inputs x.npz --upstream-grad ones` gives PyTorch's gradients of the summed logits;
    `--upstream-grad mean` a hundredth of them for 100 logits; `render` says which it used."""
    torch.manual_seed(0)
    model = LeNet().eval()
    x = torch.randn(2, 1, 28, 28)
    path = tmp_path / "lenet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    np.savez(tmp_path / "x.npz", x=x.numpy())
    x.requires_grad_(True)
    y = model(x)
    y.sum().backward()
    done = run_in_process(capsys, "run", path, "--inputs", tmp_path / "x.npz", "--upstream-grad", "ones", "--json")
    assert done.returncode == 0, done.stderr
    grads = json.loads(done.stdout)["grads"]
    np.testing.assert_allclose(np.array(grads["x"]), x.grad.numpy(), rtol=1e-3, atol=1e-5)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(np.array(grads[name]), p.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
    mean = run_in_process(capsys, "run", path, "--inputs", tmp_path / "x.npz", "--upstream-grad", "mean", "--json")
    np.testing.assert_allclose(np.array(json.loads(mean.stdout)["grads"]["x"]), x.grad.numpy() / y.numel(),
                               rtol=1e-3, atol=1e-7)
    drawn = run_in_process(capsys, "render", path, "--inputs", tmp_path / "x.npz", "--upstream-grad", "random:3",
                           "-o", tmp_path / "l.dot")
    assert drawn.returncode == 0 and "gradients of 'y' from the upstream gradient random:3" in drawn.stderr
    wrong = run_in_process(capsys, "run", path, "--inputs", tmp_path / "x.npz", "--upstream-grad", "twos")
    assert wrong.returncode == 1 and "expected --upstream-grad ones, mean, random[:SEED] or FILE.npy" in wrong.stderr
    unknown = run_in_process(capsys, "run", path, "--inputs", tmp_path / "x.npz", "--loss", "yy")
    assert unknown.returncode == 1 and "did you mean 'y'?" in unknown.stderr
