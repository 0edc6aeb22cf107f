"""The ONNX backend node test suite (regenerated offline from the onnx wheel into .cache/) through cgtools: one
test per runnable case — every op of its graph registered, every dtype one the format has, no op in
cgtools.conformance.EXCLUDED. No skips: a runnable case passes or fails."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cgtools import conformance

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
    assert by_name["test_add_uint8"].status == "unsupported dtype"
    assert "uint8" in by_name["test_add_uint8"].why
    assert by_name["test_identity_sequence"].status == "unsupported dtype"
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


def test_the_report_counts_the_claimed_ops():
    """`python -m cgtools.conformance` prints the per-op table, the totals and the claimed count, and exits 1
    exactly when a case failed."""
    done = subprocess.run([sys.executable, "-m", "cgtools.conformance", "--cache", str(SUITE)], capture_output=True,
                          text=True, timeout=300)
    claimed = conformance.claimed_ops(CASES)
    assert f"claimed op types: {len(claimed)}\n" in done.stdout
    assert f"cases in the suite: {len(CASES)}\n" in done.stdout
    assert f"runnable: {len(RUNNABLE)} " in done.stdout
    failed = int(done.stdout.split("failed: ")[1].split()[0])
    assert done.returncode == (1 if failed else 0), done.stderr
    for op in claimed:
        assert f"\n{op} " in done.stdout
    assert set(claimed) <= conformance.supported_ops() and not set(claimed) & set(conformance.EXCLUDED)
