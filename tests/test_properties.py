"""Properties over many random shapes (hypothesis): broadcast gradients against PyTorch, the format's round
trip, and expressions that are never run."""

import sys

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import broadcastable_shapes

import cgtools
from cgtools.expr import parse

OPS = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}


@settings(max_examples=60, deadline=None)
@given(shapes=broadcastable_shapes(shape=(3, 1, 4), min_dims=0, max_dims=4),
       op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2**31))
def test_broadcast_gradients_match_torch(shapes, op, seed):
    """Whatever the broadcast, each input's gradient has its shape and equals torch's."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.5, 2, (3, 1, 4)), rng.uniform(0.5, 2, shapes)
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "a"}, {"name": "b"}],
                          "nodes": [{"op": op, "inputs": ["a", "b"], "outputs": ["y"]},
                                    {"op": "ReduceSum", "inputs": ["y"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
                          "outputs": ["s"]})
    run = graph.run({"a": a, "b": b})
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    OPS[op](ta, tb).sum().backward()
    assert run.grads["a"].shape == a.shape and run.grads["b"].shape == b.shape
    np.testing.assert_allclose(run.grads["a"], ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(run.grads["b"], tb.grad.numpy(), rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=8),
       name=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=12))
def test_any_name_and_values_survive_the_round_trip(values, name):
    """Any Unicode text but NUL names a tensor (files cannot store NUL: tests/test_limits.py)."""
    doc = {"cgtools": "1.0", "params": [{"name": name, "value": values}],
           "nodes": [{"op": "ReduceSum", "inputs": [name], "outputs": ["s" + name], "attrs": {"keepdims": 0}}],
           "outputs": ["s" + name]}
    graph = cgtools.load(doc)
    again = cgtools.Graph.from_networkx(graph.to_networkx())
    assert again.to_dict() == graph.to_dict()
    assert graph.run().grads[name].tolist() == [1.0] * len(values)


class Executions:
    """Python's audit events for running code (exec, eval, imports, processes, input), recorded while
    `watching`: an audit hook cannot be removed, so one is installed for the whole session."""

    EVENTS = {"exec", "import", "os.system", "os.exec", "os.posix_spawn", "subprocess.Popen", "builtins.input"}

    def __init__(self):
        self.watching, self.seen = False, []
        sys.addaudithook(self.hear)

    def hear(self, event, args):
        if self.watching and event in self.EVENTS:
            self.seen.append(event)

    def during(self, call, *args):
        self.watching, self.seen = True, []
        try:
            call(*args)
        finally:
            self.watching = False
        return self.seen


EXECUTIONS = Executions()
HOSTILE = ["__import__('os').system('true')", "exec('x = 1')", "eval('1')", "open('/etc/passwd')",
           "(lambda: 1)()", "x.__class__", "compile('1', 'f', 'eval')", "input()", "[x for x in y]", "x ** 10 ** 9"]


def parse_or_refuse(text):
    """parse(text), a CgError being an answer too: anything else escaping is a failure."""
    try:
        doc = parse(text)
    except cgtools.CgError:
        return
    assert doc["nodes"] and doc["outputs"]


def test_the_watch_sees_code_being_run():
    """The check below can fail: running the text, as eval would, is seen."""
    assert "exec" in EXECUTIONS.during(eval, "1 + 1")
    importing = "try:\n    import no_such_module_anywhere\nexcept ImportError:\n    pass"
    assert "import" in EXECUTIONS.during(exec, importing)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), st.sampled_from(HOSTILE),
                 st.builds("{} * {}".format, st.sampled_from(HOSTILE), st.text(max_size=10))))
def test_expressions_are_parsed_never_run(text):
    """Any text, hostile or random, becomes a graph or a CgError, and nothing of it runs: no code executed,
    no module imported, no process started."""
    parse("warm * up")  # anything parse imports lazily is imported before the watch
    assert EXECUTIONS.during(parse_or_refuse, text) == []
