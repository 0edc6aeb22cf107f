"""The lecture's Python API: traced tensors, custom ops written its way, optimisers and training."""

import json
import shutil

import numpy as np
import pytest
import torch

import cgtools
from cgtools import optim
from cgtools.ops import Operation
from cgtools.tensor import Tensor, tensor_op
from cgtools.train import accuracy, load_data, train
from helpers import EXAMPLES


def lecture_tensors():
    a, x, b = Tensor(3.0, name="a", param=True), Tensor(1.0, name="x"), Tensor(2.0, name="b", param=True)
    c = (a * x).named("c")
    d = (c + b).named("d")
    e = (d**2).named("e")
    return a, x, b, c, d, e


def test_traced_lecture_example_matches_its_json_twin():
    a, x, b, c, d, e = lecture_tensors()
    e.backward()
    assert (e.value, d.grad, c.grad, a.grad, b.grad, x.grad) == (25, 10, 10, 10, 10, 30)
    assert e.graph(name="affine_square").name == "affine_square"
    traced, twin = e.graph(name="affine_square").run(), cgtools.load(EXAMPLES / "affine_square.json").run()
    for name in "xabcde":
        assert traced.values[name] == twin.values[name] and traced.grads[name] == twin.grads[name]
    kinds = {leaf.name: leaf.kind for leaf in e.graph().leaves.values()}
    assert kinds == {"a": "param", "x": "input", "b": "param", "2": "constant"}


def test_reflected_operators_fan_out_and_broadcasting_match_torch():
    rng = np.random.default_rng(1)
    m, row = rng.standard_normal((3, 4)), rng.standard_normal(4)
    tm, trow = Tensor(m, name="m"), Tensor(row, name="row")
    y = (2 + tm * tm - 1 / (3 + trow.exp()) + 0.5 * (tm @ trow).tanh().sum()).sum()
    y.backward()
    pm, prow = torch.tensor(m, requires_grad=True), torch.tensor(row, requires_grad=True)
    py = (2 + pm * pm - 1 / (3 + prow.exp()) + 0.5 * torch.tanh(pm @ prow).sum()).sum()
    py.backward()
    np.testing.assert_allclose(y.value, py.item(), rtol=1e-12)
    np.testing.assert_allclose(tm.grad, pm.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(trow.grad, prow.grad.numpy(), rtol=1e-10)  # reduced over the broadcast rows
    run = y.graph().run()  # the traced graph gives the same through the interpreter
    np.testing.assert_allclose(run.grads["m"], pm.grad.numpy(), rtol=1e-10)


def test_backward_twice_does_not_double_unless_asked():
    t = Tensor(2.0, name="t")
    y = t * t
    y.backward()
    y.backward()
    assert t.grad == 4
    y.backward(accumulate=True)
    assert t.grad == 8  # PyTorch's behaviour, when asked for
    y.zero_grad()
    assert t.grad is None
    with pytest.raises(cgtools.CgError, match="starts from a scalar"):
        (Tensor([1.0, 2.0]) * 2).backward()


def test_custom_op_written_the_lectures_way_serves_tensors_and_json():
    @tensor_op
    class lecture_relu(Operation):
        @staticmethod
        def forward(ctx, value):
            new_val = np.maximum(0, value)
            ctx.append(new_val)
            return new_val

        @staticmethod
        def backward(ctx, grad_output):
            value = ctx[-1]
            return [(value > 0).astype(float) * grad_output]

    x = Tensor([-1.0, 2.0, 3.0], name="x")
    y = (lecture_relu(x) * 5).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [0, 5, 5])
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "value": [-1.0, 2.0, 3.0]}],
           "nodes": [{"op": "lecture_relu", "inputs": ["x"], "outputs": ["r"]},
                     {"op": "ReduceSum", "inputs": ["r"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
           "outputs": ["s"]}
    np.testing.assert_array_equal(cgtools.load(doc).run().grads["x"], [0, 1, 1])


@pytest.mark.parametrize("make", [
    lambda ps: (optim.SGD(ps, lr=0.1), torch.optim.SGD),
    lambda ps: (optim.SGD(ps, lr=0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    lambda ps: (optim.Adam(ps, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
], ids=["sgd", "sgd-momentum", "adam"])
@pytest.mark.slow
def test_optimisers_match_torch_step_for_step(make):
    rng = np.random.default_rng(3)
    W0, X = rng.standard_normal((3, 2)), rng.standard_normal((5, 3))
    W = Tensor(W0.copy(), name="W", param=True)
    ours, theirs_class = make([W])
    tW = torch.tensor(W0.copy(), requires_grad=True)
    theirs = theirs_class([tW]) if not isinstance(theirs_class, type) else theirs_class([tW], lr=0.1)
    for _ in range(6):
        ours.zero_grad()
        loss = ((Tensor(X) @ W).tanh() ** 2).sum()
        loss.backward()
        ours.step()
        theirs.zero_grad()
        (torch.tanh(torch.from_numpy(X) @ tW) ** 2).sum().backward()
        theirs.step()
        np.testing.assert_allclose(W.value, tW.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_training_a_loaded_graph_lowers_the_loss():
    graph = cgtools.load(EXAMPLES / "mlp_moons.json")
    data = load_data(EXAMPLES / "data" / "moons.npz", graph)
    before = accuracy(graph, data)
    history = train(graph, data, optim.Adam(graph, lr=0.05), epochs=30, batch_size=32)
    assert history[-1] < 0.25 * history[0]
    assert sum(b < a for a, b in zip(history, history[1:])) >= 0.7 * (len(history) - 1)  # falls, mostly
    assert accuracy(graph, data) > max(before, 0.9)


@pytest.mark.slow
def test_train_command_writes_the_trained_params_back(tmp_path, cli):
    graph = tmp_path / "logistic.json"
    shutil.copy(EXAMPLES / "logistic_regression.json", graph)
    before = json.loads(graph.read_text())["params"]
    result = cli("train", graph, "--data", EXAMPLES / "data" / "blobs.npz", "--epochs", "15", "--lr", "0.5")
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "->" in result.stdout
    first, last = (float(v) for v in result.stdout.split("loss ")[1].split(" over")[0].split(" -> "))
    assert last < first / 2
    assert json.loads(graph.read_text())["params"] != before
    result = cli("train", graph, "--data", EXAMPLES / "data" / "moons.npz", "--epochs", "1")
    assert result.returncode == 0  # same input names: X, labels
    bad = tmp_path / "bad.npz"
    np.savez(bad, Y=np.zeros(3))
    result = cli("train", graph, "--data", bad)
    assert result.returncode == 1 and "'Y' is not an input" in result.stderr


@pytest.mark.parametrize("name", ["affine_square", "square_times_3x", "secret_number", "perceptron", "mlp_xent"])
def test_example_scripts_trace_their_json_twins(name):
    """examples/python/NAME.py builds, with the tracing API, the graph of examples/NAME.json."""
    import runpy

    built = runpy.run_path(str(EXAMPLES / "python" / f"{name}.py"))["build"]()
    traced = built[0] if isinstance(built, tuple) else built
    traced.backward()
    twin = cgtools.load(EXAMPLES / f"{name}.json").run()
    compared = set()
    for t in traced.upstream():
        if t.name in twin.values:
            np.testing.assert_allclose(t.value, twin.values[t.name], rtol=1e-12, err_msg=t.name)
            compared.add(t.name)
            if t.name in twin.grads:
                np.testing.assert_allclose(t.grad, twin.grads[t.name], rtol=1e-10, atol=1e-14, err_msg=t.name)
    assert set(twin.grads) <= compared, f"not traced: {sorted(set(twin.grads) - compared)}"
    assert traced.value == twin.values[traced.name]


def test_an_enum_attribute_is_declared_in_the_signature_and_checked_at_load(monkeypatch):
    from typing import Literal

    from cgtools.ops import REGISTRY, register_op

    monkeypatch.setitem(REGISTRY, "Rounded", None)

    @register_op("Rounded")
    class Rounded(Operation):
        """x rounded as `how` says"""

        @staticmethod
        def forward(ctx, x, *, how: Literal["down", "up"] = "down"):
            return np.floor(x) if how == "down" else np.ceil(x)

    assert Rounded.spec.attrs["how"] == ("enum", "down") and Rounded.spec.choices["how"] == ("down", "up")
    assert Rounded.spec.signature == "x; how='down' (or 'up')"

    def graph(how):
        return cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": 1.5}],
                             "nodes": [{"op": "Rounded", "inputs": ["x"], "outputs": ["y"], "attrs": {"how": how}}],
                             "outputs": ["y"]})

    assert graph("up").run(backward=False).values["y"] == 2.0
    with pytest.raises(cgtools.CgError, match=r"^nodes\[0\]\.attrs\.how: expected one of 'down', 'up', "
                                              r"found 'sideways'"):
        graph("sideways")


def test_traced_tensors_check_attributes_as_graphs_do():
    x = Tensor([1.0, -2.0], name="x")
    with pytest.raises(cgtools.CgError, match=r"attrs\.approximate: expected one of 'none', 'tanh', found 'fast'"):
        Tensor.apply("Gelu", x, approximate="fast")
    with pytest.raises(cgtools.CgError, match="Softmax has no attribute 'axes'"):
        Tensor.apply("Softmax", x, axes=0)
