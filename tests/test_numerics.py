"""NaN and infinities: `run --check-numerics` names the node that made the first one, forward or backward; the
−inf a causal mask makes on purpose is reported nowhere (note, check, drawing), NaN always is."""

import json

import numpy as np
import pytest

import cgtools
from cgtools.compiled import COMPILE_AT_ONCE, NEVER_COMPILE
from cgtools.numerics import NumericsError, deliberate_infinities
from helpers import error_of, graph_of, run_in_process

# Relu makes a zero, which Log turns into -inf: Log is the culprit, its input finite
LOG_OF_ZERO = {"cgtools": "1.0", "inputs": [{"name": "x", "value": [-1.0, 2.0, 3.0]}],
               "nodes": [{"op": "Relu", "inputs": ["x"], "outputs": ["r"]},
                         {"op": "Log", "inputs": ["r"], "outputs": ["lr"]},
                         {"op": "ReduceSum", "inputs": ["lr"], "outputs": ["L"], "attrs": {"keepdims": 0}}],
               "outputs": ["L"]}
# 1/x is 1e20, finite in float32; its gradient -w/x² is -2e40, which float32 cannot hold
TINY = {"dtype": "float32", "shape": [2], "data": [1e-20, 1.0]}
OVERFLOW_IN_BACKWARD = {"cgtools": "1.0", "inputs": [{"name": "x", "value": TINY}],
                        "params": [{"name": "w", "value": {"dtype": "float32", "shape": [2], "data": [2.0, 3.0]}}],
                        "nodes": [{"op": "Reciprocal", "inputs": ["x"], "outputs": ["r"]},
                                  {"op": "Mul", "inputs": ["r", "w"], "outputs": ["rw"]},
                                  {"op": "ReduceSum", "inputs": ["rw"], "outputs": ["L"], "attrs": {"keepdims": 0}}],
                        "outputs": ["L"]}


def written(tmp_path, doc, name="g.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_check_numerics_names_the_log_of_zero_in_forward(tmp_path, capsys):
    path = written(tmp_path, LOG_OF_ZERO)
    result = run_in_process(capsys, "run", path, "--check-numerics")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and "forward: nodes[1] (Log 'lr') made output 'lr' non-finite" in first
    assert "(1 -inf of 3)" in first
    rows = {line.split()[0]: line.split() for line in result.stderr.splitlines()[2:] if line.strip()}
    # the input it received: r = [0, 2, 3], finite, a third of it zero
    assert rows["r"][1:] == ["input", "float64", "[3]", "0", "3", "1.667", "1.247", "33%", "0", "0"]
    assert rows["lr"][-2:] == ["0", "1"]  # no NaN, one infinity
    assert "op Log, attributes: none" in result.stderr
    assert run_in_process(capsys, "run", path).returncode == 0  # without the flag, a note only


def test_check_numerics_names_an_overflow_that_only_backward_makes(tmp_path, capsys):
    g = cgtools.load(OVERFLOW_IN_BACKWARD)
    with np.errstate(all="ignore"):
        plain = g.run()
    assert all(np.isfinite(v).all() for v in plain.values.values())  # forward is finite everywhere
    assert np.isinf(plain.grads["x"][0]) and np.isfinite(plain.grads["r"]).all()  # backward is not

    result = run_in_process(capsys, "run", written(tmp_path, OVERFLOW_IN_BACKWARD), "--check-numerics")
    assert result.returncode == 1
    assert ("backward: nodes[0] (Reciprocal 'r') made the gradient of input 'x' non-finite (1 -inf of 2) "
            "from a finite upstream gradient") in result.stderr
    rows = {(line.split()[0], line.split()[1]) for line in result.stderr.splitlines()[2:] if line.strip()}
    assert {("x", "input"), ("r", "gradient"), ("x", "gradient")} <= rows


def test_a_forward_that_fails_after_a_nan_is_reported_as_that_nan():
    # sqrt(-4) is NaN; cast to an index it makes Gather fail two nodes later
    g = graph_of([{"op": "Sqrt", "inputs": ["x"], "outputs": ["s"]},
                  {"op": "Cast", "inputs": ["s"], "outputs": ["n"], "attrs": {"to": 7}},
                  {"op": "Gather", "inputs": ["t", "n"], "outputs": ["r"]}],
                 inputs=[{"name": "x", "value": [-4.0]}, {"name": "t", "value": [1.0, 2.0]}])
    with np.errstate(all="ignore"):
        assert "Gather" in error_of(g.run, backward=False)
        with pytest.raises(NumericsError) as info:
            g.run(backward=False, check_numerics=True)
    assert (info.value.finding.op, info.value.finding.tensor) == ("Sqrt", "s")


@pytest.mark.parametrize("policy", [NEVER_COMPILE, COMPILE_AT_ONCE], ids=["interpreted", "compiled"])
@pytest.mark.parametrize("per_use", [False, True])
def test_the_python_check_finds_the_same_node_on_every_path(policy, per_use):
    for doc, direction, node, tensor in ((LOG_OF_ZERO, "forward", "Log", "lr"),
                                         (OVERFLOW_IN_BACKWARD, "backward", "Reciprocal", "x")):
        g = cgtools.load(doc)
        with np.errstate(all="ignore"):
            for _ in range(2):  # the first run compiles, the second runs the compiled code
                with pytest.raises(NumericsError) as info:
                    g.run(compiling=policy, per_use=per_use, check_numerics=True)
        found = info.value.finding
        assert (found.direction, found.op, found.tensor) == (direction, node, tensor)
        assert not np.isfinite(found.array).all()
        assert all(np.isfinite(a).all() for _, a in found.inputs + found.upstream)
    if policy is COMPILE_AT_ONCE:  # per-use runs keep backward interpreted
        assert g.plan.compiled_forward and all(bool(f.compiled_backward) != per_use for f in g.plan.flows.values())


def masked_softmax(reader="Softmax", fill="-inf", then=None):
    """scores with the upper triangle filled with `fill` through Where, read by `reader`, whose output `then`
    reads (Gather: column 0, never masked; Log: everything)."""
    nodes = [{"op": "Where", "inputs": ["keep", "scores", "fill"], "outputs": ["masked"]},
             {"op": reader, "inputs": ["masked"], "outputs": ["p"]}]
    if then:
        nodes.append({"op": then, "inputs": ["p", "first"][:2 if then == "Gather" else 1], "outputs": ["q"],
                      "attrs": {"axis": 1} if then == "Gather" else {}})
    nodes.append({"op": "ReduceSum", "inputs": [nodes[-1]["outputs"][0]], "outputs": ["L"], "attrs": {"keepdims": 0}})
    keep = np.tril(np.ones((3, 3), bool))
    return graph_of(nodes, inputs=[{"name": "scores", "value": np.arange(9.0).reshape(3, 3).tolist()}],
                    constants=[{"name": "keep", "value": {"dtype": "bool", "shape": [3, 3],
                                                          "data": keep.ravel().tolist()}},
                               {"name": "fill", "value": {"dtype": "float64", "shape": [], "data": [float(fill)]}},
                               {"name": "first", "value": {"dtype": "int64", "shape": [1], "data": [0]}}])


@pytest.mark.parametrize("reader, then", [("Softmax", None), ("ReduceMax", None), ("ReduceLogSumExp", None),
                                          ("LogSoftmax", "Gather")])
def test_a_masks_minus_inf_into_softmax_and_the_like_is_deliberate(reader, then):
    g = masked_softmax(reader, then=then)
    run = g.run(check_numerics=True)  # raises nothing
    assert np.isneginf(run.values["masked"]).sum() == 3
    assert deliberate_infinities(g, run.values) == {"fill", "masked", *(["p"] if then else [])}
    assert run.first_non_finite() == []


@pytest.mark.parametrize("reader, fill, then, culprit", [
    ("Exp", "-inf", None, "fill"),  # -inf into an op that is no mask's reader: the constant is the first
    ("LogSoftmax", "-inf", None, "p"),  # LogSoftmax's own -inf, summed: the loss is -inf
    ("Softmax", "inf", None, "fill")])  # +inf is never a mask
def test_minus_inf_into_anything_else_and_plus_inf_are_still_reported(reader, fill, then, culprit):
    g = masked_softmax(reader, fill=fill, then=then)
    with np.errstate(all="ignore"):
        run = g.run()
        with pytest.raises(NumericsError) as info:
            g.run(check_numerics=True)
    assert info.value.finding.tensor == culprit
    assert run.first_non_finite()[0].startswith(f"the first NaN or infinity in the forward pass is {culprit!r}")
    assert culprit not in deliberate_infinities(g, run.values)


@pytest.mark.slow
def test_the_gpt_block_causal_mask_raises_no_alarm_but_a_nan_does(exported, tmp_path, capsys):
    model = exported("gpt_block")
    x, svg = model.x.numpy(), tmp_path / "g.svg"

    def cgtools_on(inputs, command="run", *extra):
        np.savez(tmp_path / "x.npz", x=inputs)
        return run_in_process(capsys, command, model.path, "--inputs", tmp_path / "x.npz", "--upstream-grad", "ones",
                              *extra)

    values = cgtools.load(model.path).run({"x": x}, seed=1.0).values
    assert sum(np.isneginf(v).sum() for v in values.values()) > 0  # the mask's -inf really is there
    run = cgtools_on(x)
    assert run.returncode == 0 and "NaN" not in run.stderr, run.stderr
    drawn = cgtools_on(x, "render", "-o", svg)
    assert drawn.returncode == 0 and "NaN" not in drawn.stderr and "⚠" not in svg.read_text()
    assert cgtools_on(x, "run", "--check-numerics").returncode == 0

    x[0, 3, 5] = np.nan
    assert "note: the first NaN or infinity in the forward pass is 'x'" in cgtools_on(x).stderr
    cgtools_on(x, "render", "-o", svg)
    assert "⚠" in svg.read_text()
    checked = cgtools_on(x, "run", "--check-numerics")
    assert checked.returncode == 1
    assert "forward: input 'x' holds it (1 NaN of 512), before any node ran" in checked.stderr
