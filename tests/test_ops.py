"""Every differentiable op, checked against central finite differences and against PyTorch autograd.

The cases live in tests/opcases/, one module per op family (see opcases/__init__.py); the checks are here,
written once for all of them. `test_every_op_has_cases` fails when a registered op has no case, so a new
op cannot slip in untested.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cgtools
from cgtools.ops import REGISTRY
from cgtools.ops.base import has_gradient
from opcases import FAMILY_NAMES
from opcheck import (
    Const,
    check_against_torch,
    check_finite_differences,
    check_keeps_float32,
    params,
    run_case,
)

# Imported in this order: the families draw their inputs from one random generator.
FAMILIES = [importlib.import_module(f"opcases.{name}") for name in FAMILY_NAMES]
CASES = [c for family in FAMILIES for c in family.CASES]
TORCH_ONLY_CASES = [c for family in FAMILIES for c in family.TORCH_ONLY_CASES]
CASE_BY_ID = {c.id: c for c in CASES + TORCH_ONLY_CASES}
assert len(CASE_BY_ID) == len(CASES) + len(TORCH_ONLY_CASES), "case ids must be unique"
FLOAT32_CASES = [i for family in FAMILIES for i in getattr(family, "FLOAT32_CASES", [])]
LOW_PRECISION_CASES = [i for family in FAMILIES for i in getattr(family, "LOW_PRECISION_CASES", [])]


@pytest.mark.parametrize("c", params(CASES))
def test_gradient_matches_finite_differences(c):
    check_finite_differences(c)


@pytest.mark.parametrize("c", params(CASES))
def test_matches_torch(c):
    check_against_torch(c)


@pytest.mark.parametrize("c", params(TORCH_ONLY_CASES))
def test_kinks_and_ties_follow_torch(c):
    check_against_torch(c)


# float32 in, float32 out: values and gradients keep the inputs' dtype (float constants do not promote).
@pytest.mark.parametrize("case_id", FLOAT32_CASES)
def test_float32_stays_float32(case_id):
    check_keeps_float32(CASE_BY_ID[case_id])


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float16, 1e-2)], ids=["float32", "float16"])
@pytest.mark.parametrize("case_id", LOW_PRECISION_CASES)
def test_lower_precision_keeps_its_dtype(case_id, dtype, tol):
    c = CASE_BY_ID[case_id]
    _, feed64, out, _, run64 = run_case(c)
    _, feed, _, _, run = run_case(c, {name: x.astype(dtype) for name, x in feed64.items()})
    assert run.values[out].dtype == dtype
    np.testing.assert_allclose(run.values[out], run64.values[out], rtol=tol, atol=tol)
    for name in feed:
        assert run.grads[name].dtype == dtype, f"gradient of {name!r}"
        np.testing.assert_allclose(run.grads[name], run64.grads[name], rtol=10 * tol, atol=10 * tol)


def test_every_op_has_cases():
    """Every op with a gradient has gradient cases; every op without one says so in `cgtools ops` and is listed
    as having nothing to differentiate (NON_FLOAT_OPS)."""
    covered = {c.op for c in CASES} | set().union(*(getattr(family, "CHAIN_OPS", ()) for family in FAMILIES))
    non_float = set().union(*(family.NON_FLOAT_OPS for family in FAMILIES))
    assert covered <= set(REGISTRY), f"cases name unknown ops: {sorted(covered - set(REGISTRY))}"
    ops = {name for name, cls in REGISTRY.items() if cls.__module__.startswith("cgtools.ops")}  # not tests' own
    without = {name for name in ops if not has_gradient(REGISTRY[name])}
    assert not without - non_float, f"without a gradient yet not listed in NON_FLOAT_OPS: {sorted(without - non_float)}"
    assert not non_float - without, f"listed as non-float, yet with a gradient: {sorted(non_float - without)}"
    missing = ops - covered - without
    assert not missing, f"ops without gradient cases in tests/opcases/: {sorted(missing)}"


# ---- a few checks beyond the tables --------------------------------------------------------------------

def test_max_ties_split_the_gradient_evenly():
    _, _, _, seed, run = run_case(CASE_BY_ID["Max-ties"])
    assert run.grads["a"][0] == run.grads["b"][0] == 0.5 * seed[0]
    assert run.grads["a"][2] == run.grads["b"][2] == 0.5 * seed[2]


def test_softmax_cross_entropy_with_both_outputs_used():
    """Gradient flowing into the loss and into log_prob at once adds up (lp is weighted, then summed)."""
    r = np.random.default_rng(7)
    scores, weights = r.standard_normal((4, 3)), Const(r.standard_normal((4, 3)))
    labels = FAMILIES[0].LABELS.value
    graph = cgtools.load({
        "cgtools": "1.0", "inputs": [{"name": "s"}],
        "constants": [{"name": "labels", "dtype": "int64", "value": labels.tolist()},
                      {"name": "k", "value": weights.value.tolist()}],
        "nodes": [{"op": "SoftmaxCrossEntropyLoss", "inputs": ["s", "labels"], "outputs": ["loss", "lp"]},
                  {"op": "Mul", "inputs": ["lp", "k"], "outputs": ["weighted"]},
                  {"op": "ReduceSum", "inputs": ["weighted"], "outputs": ["total"], "attrs": {"keepdims": 0}},
                  {"op": "Add", "inputs": ["loss", "total"], "outputs": ["L"]}],
        "outputs": ["L"]})
    run = graph.run({"s": scores})
    ts = torch.tensor(scores, requires_grad=True)
    tL = F.cross_entropy(ts, torch.from_numpy(labels)) + (F.log_softmax(ts, 1) * torch.from_numpy(weights.value)).sum()
    tL.backward()
    np.testing.assert_allclose(run.values["L"], tL.item(), rtol=1e-12)
    np.testing.assert_allclose(run.grads["s"], ts.grad.numpy(), rtol=1e-10, atol=1e-12)


def chain(op, attrs=None, constants=()):
    """x → op (with constant inputs) → ReduceSum: a graph whose backward goes through op."""
    names = [c["name"] for c in constants]
    return cgtools.load({
        "cgtools": "1.0", "inputs": [{"name": "x"}], "constants": list(constants),
        "nodes": [{"op": op, "inputs": ["x", *names], "outputs": ["y"], "attrs": attrs or {}},
                  {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
        "outputs": ["s"]})


def test_unique_passes_a_zero_gradient_back():
    """torch refuses to differentiate unique; here backward goes on, with zero for the input (issue 13's rule
    for ops with no gradient)."""
    x = np.array([[3.0, 1.0], [3.0, 2.0]])
    run = chain("Unique").run({"x": x})
    with pytest.raises(RuntimeError, match="not implemented"):
        torch.unique(torch.tensor(x, requires_grad=True)).sum().backward()
    np.testing.assert_array_equal(run.values["y"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(run.grads["x"], np.zeros_like(x))


@pytest.mark.parametrize("reduction", ["mul", "max", "min"])
def test_scatter_elements_without_gradient_says_so(reduction):
    constants = [{"name": "i", "dtype": "int64", "value": [[0, 1]]}, {"name": "u", "value": [[2.0, 3.0]]}]
    graph = chain("ScatterElements", {"reduction": reduction}, constants)
    assert graph.run({"x": np.ones((2, 2))}, backward=False).values["s"] > 0
    with pytest.raises(cgtools.CgError, match=f"ScatterElements has no gradient for reduction='{reduction}'"):
        graph.run({"x": np.ones((2, 2))})


def test_topk_orders_unsigned_and_the_most_negative_integers():
    """Largest-first by negation wraps for uint64 (−3 is huge) and for int64's minimum (−min is itself)."""
    for dtype, x in ((np.uint64, [3, 0, 2**64 - 1, 7]), (np.int64, [-2**63, 5, 2**63 - 1, 0])):
        graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": {"dtype": np.dtype(dtype).name,
                                                                               "shape": [4], "data": x}}],
                              "constants": [{"name": "k", "value": {"dtype": "int64", "shape": [1], "data": [2]}}],
                              "nodes": [{"op": "TopK", "inputs": ["x", "k"], "outputs": ["v", "i"]}],
                              "outputs": ["v", "i"]})
        values = graph.run(backward=False).values
        assert values["v"].tolist() == sorted(x, reverse=True)[:2]
        assert values["i"].tolist() == [x.index(v) for v in sorted(x, reverse=True)[:2]]


def test_det_gradient_of_singular_matrices_by_finite_differences():
    """Jacobi's det·X⁻ᵀ has no inverse to take here; the cofactors do (torch returns zeros for these)."""
    for x in (np.array([[1.0, 2.0], [2.0, 4.0]]), np.zeros((3, 3)), np.array([[[0.0]], [[5.0]]])):
        graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": x.tolist()}],
                              "nodes": [{"op": "Det", "inputs": ["x"], "outputs": ["d"]},
                                        {"op": "ReduceSum", "inputs": ["d"], "outputs": ["s"],
                                         "attrs": {"keepdims": 0}}],
                              "outputs": ["s"]})
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[i] = 1e-6
            numeric[i] = (np.linalg.det(x + step).sum() - np.linalg.det(x - step).sum()) / 2e-6
        np.testing.assert_allclose(graph.run().grads["x"], numeric, atol=1e-8)
