"""The ONNX backend node test suite (regenerated offline from the onnx wheel into .cache/) through cgtools: one
test per runnable case — every op of its graph registered, every dtype one the format has, no op in
cgtools.onnx.conformance.EXCLUDED. No skips: a runnable case passes or fails."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from cgtools.onnx import conformance

pytestmark = pytest.mark.onnx_suite

SUITE = conformance.ensure_suite()
CASES = conformance.discover(SUITE)
RUNNABLE = [case for case in CASES if case.status == "runnable"]


@pytest.mark.parametrize("case", RUNNABLE, ids=lambda case: case.name)
def test_node_case(case):
    problem = conformance.run_case(case)
    assert problem is None, f"{case.name} ({', '.join(case.ops)}): {problem}"


def test_the_suite_is_there_and_mostly_not_ours():
    # the whole suite was written (about 1,900 cases in onnx 1.23), and the rule sorted every case
    assert len(CASES) > 1500
    assert {case.status for case in CASES} <= {"runnable", "excluded", "unsupported op", "unsupported dtype"}
    assert len(RUNNABLE) > 100
    for case in CASES:
        assert (case.folder / "model.onnx").is_file() and (case.folder / "test_data_set_0").is_dir()


def test_the_rule_sorts_cases_by_ops_and_dtypes():
    by_name = {case.name: case for case in CASES}
    assert by_name["test_add"].status == "runnable"
    assert by_name["test_add_uint8"].status == "runnable"  # every numeric dtype is the format's
    assert by_name["test_equal_string"].status == "unsupported dtype"
    assert "string" in by_name["test_equal_string"].why
    assert by_name["test_identity_sequence"].status == "runnable"  # sequences and optionals of tensors run
    supported = conformance.supported_ops()
    for case in CASES:  # a case is runnable exactly when all its ops are supported (and its dtypes are)
        missing = set(case.ops) - supported
        assert (case.status == "unsupported op") == bool(missing), case.name
        if missing:
            assert case.why == ", ".join(sorted(missing))
    # an expanded case counts for the ops of its function body, not for the op it expands
    expanded = by_name["test_softmax_example_expanded"]
    assert "Softmax" not in expanded.ops and "Exp" in expanded.ops


def test_the_comparison_can_fail():
    expected = np.array([1.0, np.nan, 3.0], np.float32)
    assert conformance.mismatch("y", expected.copy(), expected) is None
    assert conformance.mismatch("y", expected * (1 + 2e-3), expected) is not None
    assert "dtype float64" in conformance.mismatch("y", expected.astype(np.float64), expected)
    assert "shape [3, 1]" in conformance.mismatch("y", expected[:, None], expected)
    assert conformance.mismatch("i", np.array([1, 2]), np.array([1, 3])).startswith("output 'i': 1 of 2")


def ops_on_disk() -> dict[str, set[str]]:
    """Each case's op types (subgraphs included), read from the suite's files with onnx alone."""
    import onnx

    found = {}
    for folder in sorted((SUITE / "node").iterdir()):
        if not folder.is_dir():
            continue
        ops, stack = set(), [onnx.load_model(str(folder / "model.onnx"), load_external_data=False).graph]
        while stack:
            for node in stack.pop().node:
                ops.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}")
                for attr in node.attribute:
                    stack.extend([attr.g] if attr.HasField("g") else [])
                    stack.extend(attr.graphs)
        found[folder.name] = ops
    return found


@pytest.mark.slow
def test_the_report_counts_the_claimed_ops():
    """`python -m cgtools.onnx.conformance -v` names every case it runs with its result, then prints the per-op
    table, the totals and the claimed count, and exits 1 exactly when a case failed. The report is checked
    against facts it does not compute: the case folders on disk, the op types their models hold, the
    registry, and the cases it named."""
    from cgtools.onnx.mapping import LOADER_OPS
    from cgtools.ops import REGISTRY

    done = subprocess.run([sys.executable, "-m", "cgtools.onnx.conformance", "--cache", str(SUITE), "-v"],
                          capture_output=True, text=True, timeout=300)
    lines = done.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("op type ")))
    ran = dict(line.split(": ", 1) for line in lines[:header])  # case -> "ok" or its problem
    blank = lines.index("", header)
    table = {row.split()[0]: [int(n) for n in row.split()[1:]] for row in lines[header + 1:blank]}
    totals = "\n".join(lines[blank + 1:])
    number = {key: int(re.search(rf"{key}: (\d+)", totals).group(1))
              for key in ("cases in the suite", "runnable", "passed", "failed", "excluded", "unsupported dtype",
                          "need ops cgtools lacks", "claimed op types")}
    on_disk, supported = ops_on_disk(), set(REGISTRY) | set(LOADER_OPS)
    runnable_ops = {name for name, ops in on_disk.items() if ops <= supported}
    passed = {name for name, result in ran.items() if result == "ok"}
    # the totals: the folders on disk, and the cases the runner named
    assert number["cases in the suite"] == len(on_disk)
    assert number["runnable"] == len(ran) and set(ran) <= runnable_ops
    assert number["passed"] == len(passed) and number["failed"] == len(ran) - len(passed)
    assert number["need ops cgtools lacks"] == len(on_disk) - len(runnable_ops)
    assert number["runnable"] + number["excluded"] + number["unsupported dtype"] == len(runnable_ops)
    assert done.returncode == (1 if number["failed"] else 0), done.stderr
    # the claimed ops: every registered op the suite uses, each in the table with its passes and failures
    claimed = (supported & set().union(*on_disk.values())) - set(conformance.EXCLUDED)
    assert number["claimed op types"] == len(claimed) and claimed <= set(table)
    for op in claimed:
        uses = {name for name in ran if op in on_disk[name]}
        assert table[op][:2] == [len(uses & passed), len(uses - passed)], op
