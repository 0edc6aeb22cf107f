"""The training domain's optimiser steps (Momentum, Adagrad, Adam) against torch.optim over several steps, and
their domain kept through an ONNX round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cgtools

DOMAIN = "ai.onnx.preview.training."


def step_graph(op: str, states: int, attrs: dict):
    """One optimiser node over one tensor: inputs R, T, X, G and its states; outputs the new X and states."""
    state_names = [f"S{k}" for k in range(states)]
    inputs = [{"name": "R"}, {"name": "T", "dtype": "int64"}, {"name": "X"}, {"name": "G"}]
    outputs = ["X_new"] + [f"{s}_new" for s in state_names]
    return cgtools.load({
        "cgtools": "1.0", "inputs": inputs + [{"name": s} for s in state_names],
        "nodes": [{"op": DOMAIN + op, "inputs": ["R", "T", "X", "G", *state_names], "outputs": outputs,
                   "attrs": attrs}],
        "outputs": outputs})


def loss_gradient(x):
    """The gradient of a fixed quartic loss, the same numbers fed to torch and to cgtools."""
    return 4 * x ** 3 - np.arange(x.size).reshape(x.shape)


@pytest.mark.parametrize("op, states, attrs, optimiser, first_t", [
    ("Momentum", 1, {"alpha": 0.9, "beta": 0.7, "mode": "standard", "norm_coefficient": 0.01},
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01), 0),
    ("Momentum", 1, {"alpha": 0.8, "beta": 1.0, "mode": "nesterov", "norm_coefficient": 0.0},
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True), 0),
    ("Adagrad", 1, {"decay_factor": 0.1, "epsilon": 1e-10, "norm_coefficient": 0.02},
     lambda p: torch.optim.Adagrad(p, lr=0.05, lr_decay=0.1, eps=1e-10, weight_decay=0.02), 0),
    # torch adds epsilon to the bias-corrected root, ONNX to the raw one: equal as epsilon goes to 0
    ("Adam", 2, {"alpha": 0.8, "beta": 0.95, "epsilon": 1e-14, "norm_coefficient": 0.01},
     lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.95), eps=1e-14, weight_decay=0.01), 1),
], ids=["momentum", "nesterov", "adagrad", "adam"])
def test_steps_follow_torch_optim(op, states, attrs, optimiser, first_t):
    graph = step_graph(op, states, attrs)
    x0 = np.random.default_rng(3).uniform(-1, 1, (2, 3))
    param = torch.nn.Parameter(torch.tensor(x0))
    opt = optimiser([param])
    x, state = x0, [np.zeros_like(x0)] * states
    for t in range(first_t, first_t + 5):
        param.grad = torch.tensor(loss_gradient(param.detach().numpy()))
        opt.step()
        run = graph.run({"R": np.array(0.05), "T": np.array(t), "X": x, "G": loss_gradient(x),
                         **{f"S{k}": s for k, s in enumerate(state)}}, backward=False)
        x, state = run.values["X_new"], [run.values[f"S{k}_new"] for k in range(states)]
        np.testing.assert_allclose(x, param.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"step {t}")


def test_two_tensors_are_updated_in_groups():
    """X1, X2, G1, G2, V1, V2 in; X1', X2', V1', V2' out — each tensor with its own gradient and velocity."""
    graph = cgtools.load({
        "cgtools": "1.0", "inputs": [{"name": n} for n in ("X1", "X2", "G1", "G2", "V1", "V2")],
        "constants": [{"name": "R", "value": 0.5}, {"name": "T", "dtype": "int64", "value": 3}],
        "nodes": [{"op": DOMAIN + "Momentum", "inputs": ["R", "T", "X1", "X2", "G1", "G2", "V1", "V2"],
                   "outputs": ["Y1", "Y2", "W1", "W2"],
                   "attrs": {"alpha": 0.5, "beta": 1.0, "mode": "standard", "norm_coefficient": 0.0}}],
        "outputs": ["Y1", "Y2", "W1", "W2"]})
    one, two = np.ones(2), np.ones(3)
    v = graph.run({"X1": one, "X2": two, "G1": 2 * one, "G2": 4 * two, "V1": one, "V2": 0 * two},
                  backward=False).values
    np.testing.assert_allclose(v["W1"], 0.5 + 2)  # alpha·V + beta·G
    np.testing.assert_allclose(v["W2"], 4.0 + 0 * two)
    np.testing.assert_allclose(v["Y1"], 1 - 0.5 * 2.5)
    np.testing.assert_allclose(v["Y2"], 1 - 0.5 * 4.0 + 0 * two)


def test_a_wrong_number_of_tensors_is_an_error():
    graph = step_graph("Adam", 1, {})  # Adam needs X, G, V and H: three tensors after R and T
    with pytest.raises(cgtools.CgError, match="4 groups of the same length"):
        graph.run({"R": np.array(0.1), "T": np.array(1), "X": np.ones(2), "G": np.ones(2), "S0": np.ones(2)},
                  backward=False)


def test_onnx_round_trip_keeps_the_training_domain(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from cgtools.onnx.write import save_onnx

    graph = step_graph("Adagrad", 1, {"decay_factor": 0.1, "epsilon": 1e-6})
    r = np.random.default_rng(5)
    feed = {"R": np.array(0.1), "T": np.array(2), "X": r.standard_normal(3), "G": r.standard_normal(3),
            "S0": r.uniform(0, 1, 3)}
    path = tmp_path / "adagrad.onnx"
    save_onnx(graph, path, run=graph.run(feed, backward=False))  # the run gives the inputs' shapes
    model = onnx.load(str(path))
    assert {(n.domain, n.op_type) for n in model.graph.node} == {(DOMAIN[:-1], "Adagrad")}
    assert DOMAIN[:-1] in {o.domain for o in model.opset_import}
    onnx.checker.check_model(model, full_check=True)
    expected = ReferenceEvaluator(model).run(None, feed)
    got = cgtools.load(path).run(feed, backward=False).values
    for name, value in zip(["X_new", "S0_new"], expected, strict=True):
        np.testing.assert_allclose(got[name], value, rtol=1e-12)
