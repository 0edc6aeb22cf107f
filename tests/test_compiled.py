"""Compiled plans: the same numbers as the interpreter, the same errors, and nothing of the graph in the code."""

import re
import warnings

import numpy as np
import pytest

import cgtools
from cgtools import compiled
from cgtools.interpreter import plan_of
from helpers import EXAMPLES, NAN_GRAPH, error_of, graph_of
from opcheck import assert_same_run, compiled_at_once

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def interpreted_and_compiled(make_graph, feed=None, runs=3):
    """One interpreted run of a fresh graph, and `runs` compiled runs of another (to catch stale state), its
    code split into functions of two steps so that the joins are crossed too."""
    expected = make_graph().run(feed)
    graph = compiled_at_once(make_graph(), steps_per_function=2)
    again = [graph.run(feed) for _ in range(runs)]
    assert fully_compiled(graph)
    return expected, again


def fully_compiled(graph) -> bool:
    plan = plan_of(graph)
    return bool(plan.compiled_forward) and all(flow.compiled_backward for flow in plan.flows.values())


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_compiled_give_the_interpreters_numbers(path):
    expected, again = interpreted_and_compiled(lambda: cgtools.load(path))
    for run in again:
        assert_same_run(expected, run)


def test_a_plan_is_compiled_once_interpreting_it_has_cost_what_compiling_would():
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    # compiling priced at 2 ms a step, so that a busy machine's first run stays below it
    first = graph.run(compiling=compiled.CompilePolicy(forward_seconds_per_step=2e-3, backward_seconds_per_step=2e-3))
    plan = plan_of(graph)
    assert plan.compiled_forward is None and all(f.compiled_backward is None for f in plan.flows.values())
    assert 0 < plan.interpreted < plan.policy.forward_seconds_per_step * len(plan.steps)
    runs = 1
    while not fully_compiled(graph):
        assert_same_run(first, graph.run())
        runs += 1
        assert runs < 100_000
    assert_same_run(first, graph.run())
    assert graph.run().grads["x"] == 30  # the lecture's ∂e/∂x, now from compiled code


def test_new_dtypes_forward_only_runs_and_seeds_after_compiling():
    def make():
        return graph_of([{"op": "Mul", "inputs": ["x", "w"], "outputs": ["y"]},
                         {"op": "Tanh", "inputs": ["y"], "outputs": ["t"]}],
                        inputs=[{"name": "x", "value": [1.0, -2.0]}], params=[{"name": "w", "value": [0.5, 0.25]}])

    seed = np.array([1.0, 3.0])
    f32 = {"x": np.array([1.0, -2.0], np.float32), "w": np.array([0.5, 0.25], np.float32)}
    plain = make()
    expected = [plain.run(backward=False), plain.run(seed=seed), plain.run(f32, seed=seed)]
    graph = compiled_at_once(make())
    again = [graph.run(backward=False), graph.run(seed=seed), graph.run(f32, seed=seed)]
    assert len(plan_of(graph).flows) == 2 and all(f.compiled_backward for f in plan_of(graph).flows.values())
    assert list(again[0].grads) == [] and again[2].grads["w"].dtype == np.float32
    for want, got in zip(expected, again):
        assert_same_run(want, got)


def test_a_plan_that_cannot_be_compiled_stays_interpreted(monkeypatch):
    attempts = []

    def out_of_memory(*args):
        attempts.append(args)
        raise MemoryError

    monkeypatch.setattr(compiled, "compile_backward", out_of_memory)
    expected = cgtools.load(EXAMPLES / "mlp_xent.json").run()
    graph = compiled_at_once(cgtools.load(EXAMPLES / "mlp_xent.json"))
    for _ in range(3):
        assert_same_run(expected, graph.run())
    assert len(attempts) == 1 and plan_of(graph).compiled_forward
    assert [f.compiled_backward for f in plan_of(graph).flows.values()] == [compiled.FAILED]


def test_broadcasting_mixed_dtypes_shared_tensors_and_several_outputs():
    f32 = {"dtype": "float32", "shape": [2, 3], "data": [1, -2, 3, -4, 5, -6]}

    def make():
        halves = {"axis": 1, "num_outputs": 2}
        return graph_of([{"op": "Add", "inputs": ["x", "b"], "outputs": ["z"]},  # b broadcast, x float32
                         {"op": "Split", "inputs": ["z"], "outputs": ["l", "r"], "attrs": halves},
                         {"op": "ReduceSum", "inputs": ["l"], "outputs": ["sl"], "attrs": {"keepdims": 0}},
                         {"op": "Mul", "inputs": ["sl", "z"], "outputs": ["m"]},  # z read twice
                         {"op": "ReduceSum", "inputs": ["m"], "outputs": ["loss"], "attrs": {"keepdims": 0}}],
                        inputs=[{"name": "x", "value": f32}], params=[{"name": "b", "value": [0.5, 1.5, -1.0]}],
                        outputs=["loss", "r"], loss="loss")

    expected, again = interpreted_and_compiled(make)
    for run in again:
        assert_same_run(expected, run)
    assert again[0].grads["x"].dtype == np.float32 and again[0].grads["b"].shape == (3,)


def test_non_finite_values_compiled():
    with np.errstate(all="ignore"):
        expected, again = interpreted_and_compiled(lambda: cgtools.load(NAN_GRAPH))
        assert again[0].non_finite() == expected.non_finite() == (["lx", "ex", "L"], ["lx", "x"])
    assert_same_run(expected, again[-1])


def test_per_use_runs_agree_with_compiled_ones():
    graph = compiled_at_once(cgtools.load(EXAMPLES / "square_times_3x.json"))
    plain, shared = graph.run(), graph.run(per_use=True)
    assert_same_run(plain, shared)
    assert shared.use_grads[("f", 0)] + shared.use_grads[("g", 1)] == shared.grads["x"] == 36


def test_forward_errors_in_compiled_code_name_the_node_and_earlier_steps_run_once():
    def make():
        return graph_of([{"op": "Log", "inputs": ["x"], "outputs": ["t"]},
                         {"op": "MatMul", "inputs": ["t", "W"], "outputs": ["y"], "name": "project"},
                         {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                        inputs=[{"name": "x", "value": [[1.0, 2.0]]}], params=[{"name": "W", "value": [[1.0], [2.0]]}])

    bad = {"x": -np.ones((1, 3))}  # Log warns (NaN), then MatMul fails on the shapes

    def warnings_and_error(graph):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            message = error_of(graph.run, bad)
        return [str(w.message) for w in caught], message

    expected = warnings_and_error(make())
    graph = compiled_at_once(make())
    graph.run()
    assert plan_of(graph).compiled_forward
    caught, message = warnings_and_error(graph)
    assert graph.run().values["s"] == pytest.approx(np.log([1.0, 2.0]) @ [1.0, 2.0])  # still usable after
    assert (caught, message) == expected and len(caught) == 1
    assert "nodes[1] (MatMul 'project')" in message and "float64[1, 3]" in message


@pytest.mark.parametrize("returned, complaint", [
    ("short", "backward returned 1 gradients for 2 inputs; return one per input"),
    ("bare", "backward returned 1 gradients for 2 inputs; return one per input"),
    ("wrong shape", "backward gave a gradient of shape [3] for an input of shape [2]"),
])
def test_backward_errors_in_compiled_code_name_the_node(returned, complaint):
    @cgtools.register_op("CompiledTestFaulty")
    class Faulty(cgtools.Operation):
        """a · b, with a faulty backward"""

        @staticmethod
        def forward(ctx, a, b):
            ctx.append(b)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            return {"short": (grad * ctx[0],), "bare": grad * ctx[0], "wrong shape": (np.ones(3), grad)}[returned]

    def make():
        return graph_of([{"op": "CompiledTestFaulty", "inputs": ["a", "b"], "outputs": ["y"], "name": "faulty"},
                         {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                        inputs=[{"name": "a", "value": [1.0, 2.0]}, {"name": "b", "value": [3.0, 4.0]}])

    expected = error_of(make().run)
    graph = compiled_at_once(make())
    message = error_of(graph.run)
    assert plan_of(graph).flows and all(f.compiled_backward for f in plan_of(graph).flows.values())
    assert message == expected and complaint in message and "CompiledTestFaulty 'faulty'" in message


def test_compiled_code_holds_no_text_from_the_graph():
    hostile = "__import__('os').system('echo pwned')"
    graph = compiled_at_once(graph_of([{"op": "Mul", "inputs": [hostile, hostile], "outputs": ["y\"); x = ('"],
                       "name": "'''; import os; '''"},
                      {"op": "LeakyRelu", "inputs": ["y\"); x = ('"], "outputs": ["z"], "attrs": {"alpha": 0.5}},
                      {"op": "ReduceSum", "inputs": ["z"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                     inputs=[{"name": hostile, "value": [-1.0, 2.0]}]))
    assert graph.run().grads[hostile].tolist() == [-2.0, 4.0]  # d(x²)/dx
    plan = plan_of(graph)
    parts = [*plan.compiled_forward.parts, *(p for f in plan.flows.values() for p in f.compiled_backward.parts)]
    generated = re.compile(r"[fbn]\d+|v|g|K|C|c|o|r|t|x|p|Context|ndarray|first_output|outputs_of"
                           r"|fitted|place|type|shape|dtype|needs_grad")
    for code in (part.__code__ for part in parts):
        names = {*code.co_names, *code.co_varnames}
        assert all(generated.fullmatch(name) for name in names), names
        assert all(c is None or type(c) is int for c in code.co_consts), code.co_consts


def test_successful_compiled_runs_call_each_op_once():
    calls = []

    @cgtools.register_op("CompiledTestCounted")
    class Counted(cgtools.Operation):
        """2x, its gradient returned as a bare array"""

        @staticmethod
        def forward(ctx, x):
            calls.append("forward")
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            calls.append("backward")
            return 2 * grad

    graph = compiled_at_once(graph_of([{"op": "CompiledTestCounted", "inputs": ["x"], "outputs": ["y"]},
                      {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                     inputs=[{"name": "x", "value": [1.0, 2.0]}]))
    grads = [graph.run().grads["x"].tolist() for _ in range(3)]
    assert grads == [[2.0, 2.0]] * 3 and calls == ["forward", "backward"] * 3
