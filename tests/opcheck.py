"""The machinery of the op tests: a case is one node (op, inputs, attributes) beside the same computation
written in torch; it is checked against central finite differences in float64 and against torch autograd.

The op families' CASES tables are in tests/opcases/; tests/test_ops.py runs them all.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
import pytest
import torch

import cgtools
from cgtools.compiled import COMPILE_AT_ONCE
from cgtools.interpreter import plan_of

EPS = 1e-6  # finite-difference step; float64 leaves ~1e-10 of rounding error in the quotient
# Central differences: two points have an error of order EPS²·f‴, five of order h⁴·f⁽⁵⁾, so these may take a
# larger step with less rounding error; they recheck only the elements the two-point quotient misses
TWO_POINTS = ((1, 0.5), (-1, -0.5))
FIVE_POINTS = ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12))
EPS_FINE = 1e-4

rng = np.random.default_rng(20240601)


class Const:
    """A node input declared as a graph constant (indices, shapes, labels): it never gets a gradient."""

    def __init__(self, value, dtype=None):
        self.value = np.asarray(value, dtype)


SKIP = ""  # an omitted optional input, written "" in the node's inputs


@dataclass
class Case:
    id: str
    op: str
    args: list  # in the node's input order: ndarray (fed, differentiated), Const, or SKIP
    torch_fn: Callable  # the same computation in torch, given the args in the same order
    attrs: dict = field(default_factory=dict)
    output: int = 0  # which of the node's outputs the graph returns (and backward starts from)
    n_outputs: int = 1
    marks: tuple = ()


def case(id, args, torch_fn, **attrs) -> Case:
    """A case whose op is the id's first word: case("Add-broadcast", ...) tests Add."""
    return Case(id, id.split("-")[0], args, torch_fn, attrs)


def randn(*shape):
    return rng.standard_normal(shape)


# ---- inputs that keep finite differences meaningful ----------------------------------------------------

def positive(*shape):  # for Log, Sqrt, the base of Pow, divisors, variances
    return rng.uniform(0.5, 2.0, shape)


def nonzero(*shape):  # at least 0.2 from the kink at 0 (Relu, LeakyRelu, Abs, Sign, Elu, Selu, ReduceL1)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.5, shape)


def distinct(*shape):
    """Values at least 0.1 apart: no ties (of ReduceMin, or of a pooling window's maxima)."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * 0.1 + 0.01).reshape(shape)


def away_from(x, points, margin=0.05):
    """x with every value moved at least `margin` away from each of `points` (the bounds of Clip)."""
    x = x.copy()
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + 2 * margin
    return x


def ints(values):
    return Const(values, np.int64)


# ---- running a case ------------------------------------------------------------------------------------

def names_of(c: Case) -> str:
    return "abcdefgh"[:len(c.args)]


def case_graph(c: Case):
    """The one-node graph of a case, and the feed of its differentiated inputs (named a, b, c, ...)."""
    inputs, constants, node_inputs, feed = [], [], [], {}
    for name, arg in zip(names_of(c), c.args, strict=True):
        if isinstance(arg, str):
            node_inputs.append("")
        elif isinstance(arg, Const):
            node_inputs.append(name)
            constants.append({"name": name, "dtype": arg.value.dtype.name, "value": arg.value.tolist()})
        else:
            node_inputs.append(name)
            inputs.append({"name": name})
            feed[name] = arg
    outputs = [f"y{i}" for i in range(c.n_outputs)]
    node = {"op": c.op, "inputs": node_inputs, "outputs": outputs, "attrs": c.attrs}
    graph = cgtools.load({"cgtools": "1.0", "inputs": inputs, "constants": constants, "nodes": [node],
                          "outputs": [outputs[c.output]]})
    return graph, feed, outputs[c.output]


def seed_like(c: Case, y: np.ndarray) -> np.ndarray:
    """A random upstream gradient for the output, the same for every test of the case."""
    return np.asarray(np.random.default_rng(zlib.crc32(c.id.encode())).standard_normal(y.shape), y.dtype)


def run_case(c: Case, feed=None, at_once: bool = False):
    """The case's graph run forward, then forward and backward with a seed; `at_once` runs it compiled."""
    graph, own_feed, out = case_graph(c)
    if at_once:
        compiled_at_once(graph)
    feed = own_feed if feed is None else feed
    y = graph.run(feed, backward=False).values[out]
    seed = seed_like(c, y)
    return graph, feed, out, seed, graph.run(feed, seed=seed)


def compiled_at_once(graph, steps_per_function: int = 200):
    """The graph, set to run through compiled code from its next run on (by default a plan is compiled once
    interpreting it has cost as much as compiling would)."""
    plan_of(graph, replace(COMPILE_AT_ONCE, steps_per_function=steps_per_function))
    return graph


def assert_same_run(expected, run):
    """Two runs agree bit for bit: the same tensors, values and gradients."""
    assert list(run.values) == list(expected.values) and list(run.grads) == list(expected.grads)
    for kind in ("values", "grads"):
        for name, array in getattr(expected, kind).items():
            got = getattr(run, kind)[name]
            assert got.dtype == array.dtype, f"{kind}[{name!r}] dtype"
            np.testing.assert_array_equal(got, array, strict=True, err_msg=f"{kind}[{name!r}]")


def check_against_torch(c: Case):
    """The node's value, and its gradients for the same seed, equal torch autograd's (interpreted, and
    compiled, which must give the very same numbers)."""
    _, feed, out, seed, run = run_case(c)
    assert_same_run(run, run_case(c, at_once=True)[-1])
    args = []
    for arg in c.args:
        if isinstance(arg, str):
            args.append(None)
        elif isinstance(arg, Const):
            args.append(torch.from_numpy(arg.value))
        else:
            args.append(torch.tensor(arg, requires_grad=True))
    y = c.torch_fn(*args)  # a skipped input is None, in its place
    np.testing.assert_allclose(run.values[out], y.detach().numpy(), rtol=1e-10, atol=1e-12, strict=True,
                               err_msg="forward value")
    y.backward(torch.from_numpy(seed))
    for name, arg in zip(names_of(c), args, strict=True):
        if arg is None or not arg.requires_grad:
            continue
        expected = torch.zeros_like(arg) if arg.grad is None else arg.grad
        np.testing.assert_allclose(run.grads[name], expected.numpy(), rtol=1e-10, atol=1e-12, strict=True,
                                   err_msg=f"gradient of input {name!r}")


def params(cases):
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


def check_finite_differences(c: Case):
    """Every fed input's gradient equals central finite differences of sum(output * seed)."""
    graph, feed, out, seed, run = run_case(c)
    assert set(run.grads) & set(graph.leaves) == set(feed), "fed float inputs get gradients, constants none"

    def objective(name, x):
        return float(np.sum(graph.run({**feed, name: x}, backward=False).values[out] * seed))

    def derivative(name, x, i, stencil, h):
        """Central differences: Σ weight · objective(x + k·h) / h over the stencil's (k, weight)."""
        total = 0.0
        for k, weight in stencil:
            moved = x.copy()
            moved[i] += k * h
            total += weight * objective(name, moved)
        return total / h

    for name, x in feed.items():
        numeric = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            numeric[i] = derivative(name, x, i, TWO_POINTS, EPS)
            if not np.isclose(run.grads[name][i], numeric[i], rtol=1e-6, atol=1e-7):
                numeric[i] = derivative(name, x, i, FIVE_POINTS, EPS_FINE)  # on a steep objective, with less error
        np.testing.assert_allclose(run.grads[name], numeric, rtol=1e-6, atol=1e-7, strict=True,
                                   err_msg=f"gradient of input {name!r}")


def check_keeps_float32(c: Case):
    """Fed float32, the case's values and gradients stay float32 and agree with float64."""
    _, feed64, out, _, run64 = run_case(c)
    _, feed, _, _, run = run_case(c, {name: x.astype(np.float32) for name, x in feed64.items()})
    assert run.values[out].dtype == np.float32
    np.testing.assert_allclose(run.values[out], run64.values[out], rtol=1e-5, atol=1e-6)
    for name in feed:
        assert run.grads[name].dtype == np.float32, f"gradient of {name!r}"
        np.testing.assert_allclose(run.grads[name], run64.grads[name], rtol=1e-4, atol=1e-5)


# ---- ONNX's backend node suite, as cgtools.onnx.conformance finds and runs it -------------------------------

@cache
def node_suite() -> list:
    """Every case of ONNX's backend node test suite (generated into .cache/ on first use)."""
    from cgtools.onnx import conformance

    return conformance.discover(conformance.ensure_suite())


def node_suite_cases(ops) -> list:
    """The suite's runnable cases (cgtools.onnx.conformance's rule) whose graphs use any of `ops`."""
    return [c for c in node_suite() if c.status == "runnable" and set(c.ops) & set(ops)]
