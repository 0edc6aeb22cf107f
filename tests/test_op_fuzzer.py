"""The op fuzzer: random single-op graphs for every registered op, loaded with cgtools.load and run forward and
backward. Every case either succeeds or raises CgError; anything else fails and prints the graph (its input
values written in, so `cgtools.load(graph).run(seed=…)` replays it).

A case starts from one of the op's own test cases (tests/opcases: shapes and attributes that make sense
together), or, for ops without one and now and then for every op, from the op's spec alone (its inputs and
attribute kinds); then zero to three mutations: a new shape, an empty axis, a broadcast axis, another dtype, an
optional input dropped or added, an attribute removed or redrawn (of its kind or not), integer constants
redrawn, special values (NaN, ±inf, 0, huge), more or fewer outputs. A seeded numpy generator, not hypothesis:
20,000 cases must run in well under two minutes (hypothesis costs milliseconds an example here), the count per
op is exact, and case k of an op is the same on every run (the printed graph is the reproducer).
"""

from __future__ import annotations

import importlib
import json
import time
import warnings
from collections import Counter

import numpy as np
import pytest

import cgtools
from cgtools.compiled import COMPILE_AT_ONCE
from cgtools.errors import CgError
from cgtools.ops import REGISTRY
from cgtools.ops.base import REQUIRED
from opcases import FAMILY_NAMES
from opcheck import SKIP, Case, Const, node_suite_cases

SEED = 20250112
DTYPES = ["float64", "float32", "int64", "int32", "bool"]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30, 1e-30]
# Imported in test_ops.py's order: the families draw their inputs from one shared generator.
FAMILIES = [importlib.import_module(f"opcases.{name}") for name in FAMILY_NAMES]
ANCHORS: dict[str, list] = {}
for family in FAMILIES:
    for c in family.CASES + family.TORCH_ONLY_CASES:
        ANCHORS.setdefault(c.op, []).append(c)
# The ops without a case there that need more than random arrays to run at all
ANCHORS["Constant"] = [Case("Constant", "Constant", [], None, {"value_floats": [1.5, 2.0]})]
ANCHORS["ConstantOfShape"] = [Case("ConstantOfShape", "ConstantOfShape", [Const([2, 3], np.int64)], None)]


def suite_anchors(op_type: str) -> list[Case]:
    """An op's single-node cases of ONNX's node suite, as ONNX's own tests give its inputs and attributes: the
    valid cases of the ops the opcases tables leave out (no gradient to check: comparisons, bit and quantized
    ops, windows, random draws, sequences, optimizers). A sequence input is a list of arrays."""
    from cgtools.onnx.conformance import read_tensor
    from cgtools.onnx.read import load_onnx

    anchors = []
    for c in node_suite_cases([op_type]):
        if c.ops != (op_type,) or any(kind != "sequence" for kind in c.kinds.values()):
            continue
        graph = load_onnx(c.folder / "model.onnx")
        data = c.folder / "test_data_set_0"
        feeds = {name: read_tensor(data / f"input_{j}.pb", c.kinds.get(name)) for j, name in enumerate(c.inputs)}
        (node,) = graph.nodes
        args = [SKIP if not name else feeds[name] if name in feeds else Const(graph.leaves[name].value)
                for name in node.inputs]
        anchors.append(Case(c.name, op_type, args, None, dict(node.attrs), n_outputs=len(node.outputs)))
    return anchors


# The sequence ops the suite tests only within longer graphs: a list stands for a sequence (made in front)
PAIR = [np.arange(6.0).reshape(2, 3), np.ones((1, 3))]
for op_type, args, attrs in [("SequenceAt", [PAIR, Const(np.array(1))], {}),
                             ("SequenceErase", [PAIR, Const(np.array(0))], {}),
                             ("SequenceInsert", [PAIR, np.zeros((2, 3)), Const(np.array(1))], {}),
                             ("SequenceLength", [PAIR], {}), ("ConcatFromSequence", [PAIR], {"axis": 0})]:
    ANCHORS.setdefault(op_type, [Case(op_type, op_type, args, None, attrs)])
# Ops whose single-node cases are refused unless an attribute holds a whole graph the fuzzer does not draw
NEEDS_A_BODY = {"If", "Loop", "Scan", "SequenceMap"}

for op_type in sorted(set(REGISTRY) - set(ANCHORS)):
    ANCHORS[op_type] = suite_anchors(op_type) or ANCHORS.pop(op_type, [])
ANCHORS = {op: cases for op, cases in ANCHORS.items() if cases}


def random_array(rng, shape, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-3, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def random_shape(rng) -> tuple:
    return tuple(int(d) for d in rng.integers(0, 5, rng.integers(0, 5)))


def attr_value(rng, kind: str, choices=()):
    """A value of an attribute's kind (an enum's among its choices)."""
    if kind == "enum":
        return str(rng.choice(choices))
    if kind == "int":
        return int(rng.integers(-2, 4))
    if kind == "float":
        return float(rng.choice([0.0, 1.0, 0.5, 1e-5, -1.0, rng.standard_normal()]))
    if kind == "str":
        return str(rng.choice(["ij,jk->ik", "ii->i", "...i->...", "i,i", "", "ab"]))
    if kind in ("ints", "floats"):
        values = rng.integers(-1, 4, rng.integers(0, 5))
        return [int(v) for v in values] if kind == "ints" else [float(v) for v in values]
    if kind == "strings":
        return ["a"] * int(rng.integers(0, 3))
    return {"dtype": str(rng.choice(["float32", "int64", "float64"])), "shape": [], "data": [1]}  # tensor


def from_spec(rng, op) -> tuple[list, dict, int]:
    """Args and attributes drawn from the op's spec alone: how many inputs, each a random array."""
    spec = op.spec
    count = int(rng.integers(spec.required, len(spec.inputs) + 1 + 2 * spec.variadic))
    shape, dtype = random_shape(rng), str(rng.choice(DTYPES, p=[0.4, 0.2, 0.2, 0.1, 0.1]))
    args = [random_array(rng, shape if rng.random() < 0.9 else random_shape(rng), dtype) for _ in range(count)]
    attrs = {name: attr_value(rng, kind, spec.choices.get(name, ()))
             for name, (kind, default) in spec.attrs.items() if default is REQUIRED or rng.random() < 0.3}
    return args, attrs, 1


def from_anchor(rng, op_type) -> tuple[list, dict, int]:
    c = ANCHORS[op_type][rng.integers(len(ANCHORS[op_type]))]
    args = [Const(a.value.copy()) if isinstance(a, Const) else a if isinstance(a, str) else
            [np.array(x) for x in a] if isinstance(a, list) else np.array(a) for a in c.args]
    return args, dict(c.attrs), c.n_outputs


# ---- mutations: each changes one thing a user could get wrong ---------------------------------------------

def arrays_in(args) -> list[int]:
    return [k for k, a in enumerate(args) if isinstance(a, np.ndarray)]


def new_shape(rng, op, args, attrs):
    for k in arrays_in(args)[:1] if rng.random() < 0.5 else rng.permutation(arrays_in(args))[:1]:
        args[k] = random_array(rng, random_shape(rng), args[k].dtype.name)


def empty_axis(rng, op, args, attrs):
    axis = int(rng.integers(0, 4))
    for k in arrays_in(args):
        if args[k].ndim > axis:
            shape = list(args[k].shape)
            shape[axis] = 0
            args[k] = np.zeros(shape, args[k].dtype)


def broadcast_axis(rng, op, args, attrs):
    for k in rng.permutation(arrays_in(args))[:1]:
        x = args[k]
        if x.ndim and rng.random() < 0.5:
            args[k] = x[tuple(slice(0, 1) if a == rng.integers(x.ndim) else slice(None) for a in range(x.ndim))]
        else:
            args[k] = x[0] if x.ndim and len(x) else x.reshape((1,) + x.shape)


def other_dtype(rng, op, args, attrs):
    for k in rng.permutation(arrays_in(args))[:1]:
        args[k] = args[k].astype(rng.choice(DTYPES))


def optional_input(rng, op, args, attrs):
    spec = op.spec
    if len(args) < len(spec.inputs) and rng.random() < 0.5:
        args.append(random_array(rng, random_shape(rng), "float64") if rng.random() < 0.5 else "")
    elif len(args) > spec.required:
        args[int(rng.integers(spec.required, len(args)))] = ""


def attribute(rng, op, args, attrs):
    spec = op.spec
    choice = rng.random()
    if choice < 0.2 and attrs:
        del attrs[str(rng.choice(list(attrs)))]
    elif choice < 0.85 and spec.attrs:
        name = str(rng.choice(list(spec.attrs)))
        attrs[name] = attr_value(rng, spec.attrs[name][0], spec.choices.get(name, ()))
    else:  # of the wrong kind, or unknown
        name = str(rng.choice([*spec.attrs, "bogus"]))
        wrong = ["text", 1.5, [1, "a"], None, True, {"x": 1}, []]
        attrs[name] = wrong[rng.integers(len(wrong))]


def constants(rng, op, args, attrs):
    for k in rng.permutation([k for k, a in enumerate(args) if isinstance(a, Const)])[:1]:
        value = args[k].value
        shape = value.shape if rng.random() < 0.7 else random_shape(rng)[:1]
        args[k] = Const(rng.integers(-3, 5, shape).astype(value.dtype if value.dtype.kind in "iu" else "int64"))


def special_values(rng, op, args, attrs):
    for k in arrays_in(args):
        if args[k].dtype.kind == "f" and args[k].size:
            args[k].flat[rng.integers(args[k].size)] = rng.choice(SPECIAL)


MUTATIONS = [new_shape, empty_axis, broadcast_axis, other_dtype, optional_input, attribute, constants,
             special_values]


# ---- a case: its graph, and its run ---------------------------------------------------------------------

def tensor(array: np.ndarray) -> dict:
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": array.ravel().tolist()}


def case_graph(op_type: str, index: int) -> tuple[dict, dict]:
    """Case `index` of an op, the same on every run: the graph dict, and the values of its inputs (fed to run,
    not written into the graph, whose values the JSON schema would check one number at a time)."""
    rng = np.random.default_rng([SEED, sorted(REGISTRY).index(op_type), index])
    op = REGISTRY[op_type]
    anchored = op_type in ANCHORS and rng.random() < 0.85
    args, attrs, n_outputs = from_anchor(rng, op_type) if anchored else from_spec(rng, op)
    for mutate in rng.choice(MUTATIONS, size=rng.choice([0, 0, 1, 1, 2, 3])):
        mutate(rng, op, args, attrs)
    if rng.random() < 0.1:
        n_outputs = int(rng.integers(1, 5))
    inputs, constants_, names, feed, nodes = [], [], [], {}, []
    for k, arg in enumerate(args):
        name = "" if isinstance(arg, str) else f"x{k}"
        names.append(name)
        if isinstance(arg, Const):
            constants_.append({"name": name, "value": tensor(arg.value)})
        elif isinstance(arg, list):  # a sequence: a graph's inputs are tensors, so a node in front makes it
            parts = [f"x{k}_{j}" for j in range(len(arg))]
            inputs += [{"name": part} for part in parts]
            feed |= dict(zip(parts, arg, strict=True))
            nodes.append({"op": "SequenceConstruct" if arg else "SequenceEmpty", "inputs": parts,
                          "outputs": [name], "attrs": {}})
        elif name:
            inputs.append({"name": name})
            feed[name] = arg
    outputs = [f"y{k}" for k in range(n_outputs)]
    nodes.append({"op": op_type, "inputs": names, "outputs": outputs, "attrs": attrs})
    return {"cgtools": "1.0", "inputs": inputs, "constants": constants_, "nodes": nodes,
            "outputs": [outputs[int(rng.integers(n_outputs))]]}, feed


def upstream(value: np.ndarray) -> np.ndarray:
    """A seed gradient for any output: varied, and the same for the same value."""
    return np.cos(np.arange(value.size, dtype=np.float64)).reshape(value.shape)


def outcome(graph_dict: dict, feed: dict, compiled: bool = False) -> str:
    """"ok" or "CgError"; anything else, or a backward that fails in numpy's words after forward accepted the
    inputs (an op's bug, not the user's), fails the test with the case to replay."""
    try:
        graph = cgtools.load(graph_dict)
        graph.run(feed, seed=upstream, compiling=COMPILE_AT_ONCE if compiled else None)
        return "ok"
    except CgError as e:
        if "backward failed on" not in str(e):
            return "CgError"
        failure = e
    except Exception as e:
        failure = e
    values = {name: tensor(x) for name, x in feed.items()}
    pytest.fail(f"{type(failure).__name__}: {failure}\nreplay: cgtools.load(graph).run(inputs, seed=…) with\n"
                f"graph = {json.dumps(graph_dict)}\ninputs = {values}", pytrace=False)


def fuzz(cases_per_op: int) -> dict[str, Counter]:
    """Run `cases_per_op` cases of every op (every eighth case compiled at once too); outcomes per op."""
    tally = {op: Counter() for op in sorted(REGISTRY)}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "Mean of empty slice": NaN is the answer
        for index in range(cases_per_op):
            for op_type in tally:
                tally[op_type][outcome(*case_graph(op_type, index), compiled=index % 8 == 7)] += 1
    return tally


def report(tally: dict[str, Counter], seconds: float) -> str:
    total = sum(tally.values(), Counter())
    shares = sorted((t["ok"] / max(sum(t.values()), 1), op) for op, t in tally.items())
    lowest = ", ".join(f"{op} {share:.0%}" for share, op in shares[:5])
    return (f"{sum(total.values())} cases in {seconds:.1f} s: {total['ok']} ran, {total['CgError']} refused "
            f"with a CgError; lowest success shares: {lowest}")


def test_fuzzer_few_cases_per_op():
    began = time.perf_counter()
    tally = fuzz(5)
    print(report(tally, time.perf_counter() - began))
    total = sum(tally.values(), Counter())
    assert total["ok"] > 0.4 * sum(total.values()), report(tally, 0)


@pytest.mark.slow
def test_fuzzer_20000_cases(record_property):
    began = time.perf_counter()
    tally = fuzz(-(-20000 // len(REGISTRY)))
    summary = report(tally, time.perf_counter() - began)
    print(summary)
    record_property("fuzzer", summary)
    starved = {op: dict(t) for op, t in tally.items()
               if t["ok"] < 0.25 * sum(t.values()) and op not in NEEDS_A_BODY}
    assert not starved, f"ops whose cases mostly fail (the fuzzer would test refusals only): {starved}"
