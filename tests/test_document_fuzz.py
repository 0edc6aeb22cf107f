"""Generated documents, valid and mutated: every one loads (and then validates and runs, forward and backward)
or fails with a CgError that names a place; none hangs or takes more than 1 GiB.

Valid documents are chains of real ops with their real arity over leaves of every value form (numbers, nested
lists, {dtype, shape, data}, declared shapes); mutations drop, duplicate and retype fields, turn numbers huge,
negative, NaN or into strings, nest values deeply, put odd Unicode (lone surrogates, NUL, bidi controls, escape
sequences) in names and point references at tensors that do not exist. Each document goes through a file, so
Python's JSON reader sees it as a user's file would.

The large batch runs in a child process under RLIMIT_AS of 1 GiB: the kernel then refuses any allocation past
the limit (a MemoryError the check reports) before it can crowd the machine, which a peak-RSS measurement taken
afterwards could not do."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import cgtools
from cgtools.errors import CgError

UNARY = ["Relu", "Neg", "Exp", "Tanh", "Sigmoid", "Abs", "Sqrt", "Log", "Identity"]
BINARY = ["Add", "Mul", "Sub", "Div", "Pow"]
ODD_TEXT = st.text(st.sampled_from(["a", "θ", "😀", "\u202e", "\x1b", "\x9b", "\x00", "\ud800", "\udfff", " ", "/"]),
                   min_size=1, max_size=6)
HUGE = "__HUGE_LITERAL__"  # replaced by a 5,000-digit number in the file's text
HERE = Path(__file__).resolve().parent
MEMORY_LIMIT = 2**30  # the batch's address space: the 1 GiB a document may never exceed


# Strategies are made once: hypothesis works out each new strategy's properties, most of a draw's time.
FORMS = st.sampled_from(["nested", "array", "declared", "declared-dtype"])
FLOAT_DTYPES = st.sampled_from(["float32", "float64"])
OPS = st.sampled_from(UNARY + BINARY)


SEEDS = st.integers(0, 2**32 - 1)  # the values of a leaf, from numpy's generator: drawing each costs far more


@cache
def below(n: int):
    return st.integers(0, n - 1)


@st.composite
def leaf(draw, name: str, shape: list[int]) -> dict:
    data = np.random.default_rng(draw(SEEDS)).uniform(-10, 10, math.prod(shape)).astype(np.float32).tolist()
    nested = np.array(data, dtype=np.float64).reshape(shape).tolist()
    form = draw(FORMS)
    if form == "nested":
        return {"name": name, "value": nested}
    if form == "array":
        return {"name": name, "value": {"dtype": draw(FLOAT_DTYPES), "shape": shape,
                                        "data": data}}
    return {"name": name, "shape": shape, **({"dtype": "float32"} if form == "declared-dtype" else {})}


@st.composite
def valid_documents(draw) -> dict:
    """Leaves of one shape, a chain of unary and binary ops over them, summed into a scalar loss."""
    shape = draw(st.lists(st.integers(1, 3), max_size=3))
    names = [f"x{k}" for k in range(draw(st.integers(1, 3)))]
    leaves = [draw(leaf(name, shape)) for name in names]
    doc = {"cgtools": "1.0", "inputs": [e for e in leaves if "value" not in e or e is leaves[0]],
           "params": [e for e in leaves if "value" in e and e is not leaves[0]]}
    nodes, made = [], list(names)
    for k in range(draw(st.integers(1, 5))):
        op = draw(OPS)
        arity = 2 if op in BINARY else 1
        nodes.append({"op": op, "inputs": [made[draw(below(len(made)))] for _ in range(arity)], "outputs": [f"t{k}"]})
        made.append(f"t{k}")
    nodes.append({"op": "ReduceSum", "inputs": [made[-1]], "outputs": ["loss"], "attrs": {"keepdims": 0}})
    doc.update(nodes=nodes, outputs=["loss"])
    if draw(st.booleans()):
        doc["loss"] = "loss"
    return {k: v for k, v in doc.items() if v != []}


def places(item, place=()):
    """Every (path, value) in a document, containers included."""
    yield place, item
    children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
    for key, value in children:
        yield from places(value, (*place, key))


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), ODD_TEXT,
                 st.sampled_from([HUGE, -1, 0, 2**63, 10**20, [], {}, [[]], [1, [2]], {"data": []}, "", "x0"]),
                 st.lists(st.integers(-5, 2**40), max_size=4))


MUTATIONS = st.sampled_from(["drop", "duplicate", "junk", "nest", "odd-name", "wrong-ref"])
WRONG_REFS = st.sampled_from(["nope", "t0", "t4", "loss", "x2"])
NESTING = st.integers(1, 120)
MUTATION_COUNT = st.integers(1, 3)


@st.composite
def mutated_documents(draw) -> dict:
    """A valid document with one to three mutations."""
    doc = draw(valid_documents())
    for _ in range(draw(MUTATION_COUNT)):
        found = list(places(doc))
        path, value = found[1 + draw(below(len(found) - 1))]
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        how = draw(MUTATIONS)
        if how == "drop":
            del parent[key]
        elif how == "duplicate":
            parent.append(value) if isinstance(parent, list) else parent.update({f"{key}_": value})
        elif how == "junk":  # a copy: JUNK's lists and dicts are shared, and a later mutation may change them
            parent[key] = copy.deepcopy(draw(JUNK))
        elif how == "nest":
            for _ in range(draw(NESTING)):
                value = [value]
            parent[key] = value
        elif how == "odd-name":
            parent[key] = draw(ODD_TEXT) if isinstance(value, str) else {draw(ODD_TEXT): value}
        else:  # a reference to a tensor nobody makes, or to one made later
            parent[key] = draw(WRONG_REFS)
    return doc


def check_document(doc: dict, folder: Path) -> str:
    """Load `doc` from a file, then validate and run it: 'ok', or the CgError's message after checking that it
    names a place. Anything else (a traceback, a MemoryError under the batch's limit) fails."""
    text = json.dumps(doc, allow_nan=True).replace(f'"{HUGE}"', "9" * 5000)
    path = folder / "graph.json"
    path.write_text(text, encoding="utf-8")
    try:
        graph = cgtools.load(path)
    except CgError as e:
        assert e.file == str(path) and e.where, f"no place in: {e}"
        return str(e)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            graph.validate()
            run = graph.run(graph.random_inputs(), backward=True)
        except CgError as e:
            # a run's errors name a node, a tensor ('x') or the graph's outputs and loss
            assert e.where or "'" in e.detail or "loss" in e.detail, f"no place in: {e}"
            return str(e)
    assert set(run.values) >= set(graph.outputs)
    graph.save(folder / "saved.json")  # whatever loads can be written back and read again
    assert cgtools.load(folder / "saved.json").outputs == graph.outputs
    return "ok"


def scratch_folder() -> Path:
    """A folder for the documents' files: in memory where the system has one (a file in /tmp costs ~1 ms to
    open on some file systems, most of a check's time)."""
    return Path(tempfile.mkdtemp(prefix="cgfuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


@pytest.fixture(scope="module")
def scratch():
    folder = scratch_folder()
    yield folder
    shutil.rmtree(folder)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=valid_documents())
def test_valid_documents_load_and_run(doc, scratch):
    assert check_document(doc, scratch) == "ok"


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(doc=mutated_documents())
def test_mutated_documents_load_or_fail_with_a_place(doc, scratch):
    check_document(doc, scratch)


def fuzz(count: int) -> None:
    """`count` mutated documents, in this process (the batch's child calls this)."""
    folder = scratch_folder()

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(mutated_documents())
    def each(doc):
        check_document(doc, folder)

    try:
        each()
    finally:
        shutil.rmtree(folder)


@pytest.mark.slow
def test_ten_thousand_mutated_documents_within_a_gib():
    child = ("import resource, sys\n"
             f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
             f"sys.path.insert(0, {str(HERE)!r})\n"
             "import test_document_fuzz\n"
             "test_document_fuzz.fuzz(10_000)\n")
    # one thread: each thread's stack and malloc arena take address space, which the limit counts
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "CGTOOLS_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
