"""The fast paths of the activations (np.clip in place of np.maximum, masks made floats in place of np.where,
σ by exp) keep torch's values at the awkward inputs: NaN, ±0, ±inf, the kinks, tiny σ; and torch's gradients
there; so does MaxPool's backward over overlapping windows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import graph_of
from opcheck import Const, case, check_against_torch, run_case

AWKWARD = np.array([np.nan, -np.inf, -7.0, -3.0, -1.5, -0.0, 0.0, 0.25, 1.0, 3.0, 6.0, 7.5, np.inf], np.float32)
F32 = np.float32

CASES = [
    case("Relu-awkward", [AWKWARD], torch.relu),
    case("Clip-awkward", [AWKWARD, Const(F32(0)), Const(F32(6))], torch.clamp),
    case("Clip-min-only-awkward", [AWKWARD, Const(F32(-1.5))], lambda x, lo: torch.clamp(x, min=lo)),
    case("Clip-max-only-awkward", [AWKWARD, "", Const(F32(1))], lambda x, lo, hi: torch.clamp(x, max=hi)),
    case("LeakyRelu-awkward", [AWKWARD], lambda x: F.leaky_relu(x, 0.1), alpha=0.1),
    case("LeakyRelu-steep-awkward", [AWKWARD], lambda x: F.leaky_relu(x, 3.0), alpha=3.0),
    case("LeakyRelu-negative-awkward", [AWKWARD], lambda x: F.leaky_relu(x, -0.5), alpha=-0.5),
    case("HardSigmoid-awkward", [AWKWARD], F.hardsigmoid, alpha=1 / 6, beta=0.5),
    case("HardSwish-awkward", [AWKWARD], F.hardswish),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_activation_matches_torch_at_nan_zeros_and_kinks(c):
    _, feed, out, seed, run = run_case(c)
    x = torch.tensor(AWKWARD, requires_grad=True)
    args = [x] + [torch.from_numpy(a.value) if isinstance(a, Const) else None for a in c.args[1:]]
    y = c.torch_fn(*args)
    value = run.values[out]
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, y.detach().numpy(), rtol=1e-6, atol=0)  # NaN where torch has NaN
    np.testing.assert_array_equal(np.signbit(value), np.signbit(y.detach().numpy()), err_msg="sign of zero")
    y.backward(torch.from_numpy(seed))
    grad, expected = run.grads["a"], x.grad.numpy()
    if c.op == "HardSwish":  # torch passes grad at NaN (none of its branches' tests holds); cgtools NaN
        assert np.isnan(grad[0])
        grad, expected = grad[1:], expected[1:]
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=0, err_msg="gradient")


@pytest.mark.parametrize("upstream", ["finite", "with inf and NaN"])
def test_overlapping_max_pool_gradient_matches_torch(upstream):
    """Overlapping windows (3×3, stride 2): ties go to the first maximum, a NaN to the first NaN, and a
    non-finite upstream gradient reaches only each window's maximum, as in torch."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (2, 3, 9, 9)).astype(np.float32)  # many ties
    x[0, 0, 2, 2] = np.nan
    seed = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    if upstream != "finite":
        seed[0, 1, 1, 1], seed[1, 2, 3, 0] = np.inf, np.nan
    g = graph_of([{"op": "MaxPool", "inputs": ["x"], "outputs": ["y"],
                   "attrs": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}}],
                 inputs=[{"name": "x"}])
    run = g.run({"x": x}, seed=seed)
    tx = torch.tensor(x, requires_grad=True)
    ty = F.max_pool2d(tx, 3, stride=2, padding=1)
    ty.backward(torch.from_numpy(seed))
    np.testing.assert_array_equal(run.values["y"], ty.detach().numpy())
    np.testing.assert_allclose(run.grads["x"], tx.grad.numpy(), rtol=1e-6, atol=0)  # sums of ties: order


def test_sigmoid_keeps_float32_precision_where_it_is_tiny():
    """σ(x) for x down to -87 (σ ≈ 1e-38) to a few ulp of torch's, NaN and ±inf included, without warnings:
    (tanh(x/2) + 1)/2 would lose every digit there."""
    x = np.concatenate([np.linspace(-87, 20, 2001), [np.nan, np.inf, -np.inf, -200.0]]).astype(np.float32)
    g = graph_of([{"op": "Sigmoid", "inputs": ["x"], "outputs": ["y"]}], inputs=[{"name": "x"}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = g.run({"x": x}, backward=False).values["y"]
    expected = torch.sigmoid(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, expected, rtol=5e-7, atol=0)


@pytest.mark.parametrize("c", [
    case("Relu-scalar", [np.array(0.7)], torch.relu),
    case("Sigmoid-scalar", [np.array(-1.3)], torch.sigmoid),
    case("LeakyRelu-scalar", [np.array(-0.7)], lambda x: F.leaky_relu(x, 0.1), alpha=0.1),
    case("HardSigmoid-scalar", [np.array(0.4)], lambda x: torch.clamp(0.25 * x + 0.5, 0, 1), alpha=0.25, beta=0.5),
    case("HardSwish-scalar", [np.array(1.2)], F.hardswish),
    case("Clip-scalar", [np.array(7.5), Const(np.array(0.0)), Const(np.array(6.0))], torch.clamp),
], ids=lambda c: c.id)
def test_activation_of_a_scalar_matches_torch(c):
    """0-d tensors, where numpy hands back scalars rather than arrays to work in."""
    check_against_torch(c)
