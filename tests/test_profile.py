"""`cgtools run --profile`: every node's forward and backward timed, by op type and the slowest nodes; the
profiled run computes what an ordinary one does, and the graph's own plan comes back afterwards."""

from __future__ import annotations

import numpy as np

import cgtools
from cgtools.profile import profiled
from helpers import EXAMPLES, run_in_process


def test_every_node_is_timed_and_the_run_is_the_same():
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    plain = graph.run()
    plan = graph.plan
    with profiled(graph) as profile:
        timed = graph.run()
    assert graph.plan is plan  # runs after it are as fast as before
    for name in plain.values:
        np.testing.assert_array_equal(timed.values[name], plain.values[name])
    for name in plain.grads:
        np.testing.assert_array_equal(timed.grads[name], plain.grads[name])
    assert len(profile.nodes) == len(profile.seconds) == len(graph.nodes)
    ops = sorted(node.op for node in graph.nodes)
    by_op = profile.by_op()
    assert sorted(op for op, row in by_op.items() for _ in range(row[0])) == ops
    assert all(forward > 0 for forward, _ in profile.seconds)
    assert sum(backward > 0 for _, backward in profile.seconds) >= len(graph.nodes) - 1  # the loss's own may be 0
    assert 0 < sum(map(sum, profile.seconds)) <= profile.total


def test_the_command_prints_the_table_and_the_slowest_nodes(capsys):
    done = run_in_process(capsys, "run", EXAMPLES / "mlp_xent.json", "--profile")
    assert done.returncode == 0, done.stderr
    report = done.stdout[done.stdout.index("time by op type"):]
    for op in {node.op for node in cgtools.load(EXAMPLES / "mlp_xent.json").nodes}:
        assert f"\n  {op} " in report
    assert "slowest nodes:" in report and "ms forward" in report
    plain = run_in_process(capsys, "run", EXAMPLES / "mlp_xent.json")
    assert done.stdout.startswith(plain.stdout)  # the table first, as without --profile
