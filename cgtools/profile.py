"""Where a run's time goes: every node's forward and backward timed, summed by op type (`cgtools run --profile`).

A profiled run goes through the interpreter with each step's op functions wrapped in a timer; the graph's own
plan is put back afterwards, so runs after it go as fast as before. The times are the ops' own: the engine's
bookkeeping between them (gathering inputs, adding up gradients) is what the total has beyond their sum.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from contextlib import contextmanager
from time import perf_counter

from cgtools.compiled import NEVER_COMPILE
from cgtools.interpreter import plan_of

SLOWEST = 10  # nodes listed by name


@dataclasses.dataclass
class Profile:
    """Seconds per node (forward, backward), in the plan's order, and the whole run's."""

    nodes: list  # (the node's place, "nodes[3] (Mul 'c')", its op type)
    seconds: list  # [forward, backward] per node
    total: float = 0.0

    def by_op(self) -> dict:
        """Op type -> [nodes, forward seconds, backward seconds], the slowest first."""
        table = defaultdict(lambda: [0, 0.0, 0.0])
        for (_, op), (fwd, bwd) in zip(self.nodes, self.seconds):
            row = table[op]
            row[0] += 1
            row[1] += fwd
            row[2] += bwd
        return dict(sorted(table.items(), key=lambda item: -(item[1][1] + item[1][2])))

    def report(self) -> str:
        total = max(self.total, 1e-12)
        lines = [f"time by op type ({total * 1e3:,.1f} ms in all; the rest is the engine's bookkeeping):",
                 f"  {'op':<24}{'nodes':>6}{'forward ms':>12}{'backward ms':>13}{'share':>8}"]
        for op, (count, fwd, bwd) in self.by_op().items():
            lines.append(f"  {op:<24}{count:>6}{fwd * 1e3:>12,.2f}{bwd * 1e3:>13,.2f}{(fwd + bwd) / total:>8.1%}")
        slowest = sorted(zip(self.nodes, self.seconds), key=lambda item: -sum(item[1]))[:SLOWEST]
        lines.append(f"the {len(slowest)} slowest nodes:")
        lines += [f"  {place}: {fwd * 1e3:,.2f} ms forward, {bwd * 1e3:,.2f} ms backward"
                  for (place, _), (fwd, bwd) in slowest]
        return "\n".join(lines)


def timed(fn, cell: list, which: int):
    def run(*args):
        start = perf_counter()
        try:
            return fn(*args)
        finally:
            cell[which] += perf_counter() - start
    return run


@contextmanager
def profiled(graph, on: bool = True):
    """Inside the block, the graph's runs are interpreted with every op timed; yields the Profile they fill
    (None, and nothing timed, when not `on`)."""
    if not on:
        yield None
        return
    plan = plan_of(graph)
    ops = [graph.nodes[i].op for i in graph.topological_order()]  # the plan's order
    profile = Profile([(step.place, op) for step, op in zip(plan.steps, ops)], [[0.0, 0.0] for _ in ops])
    steps = [step._replace(forward=timed(step.forward, cell, 0), backward=timed(step.backward, cell, 1))
             for step, cell in zip(plan.steps, profile.seconds)]
    graph.plan = dataclasses.replace(plan, steps=steps, flows={}, policy=NEVER_COMPILE, compiled_forward=None)
    start = perf_counter()
    try:
        yield profile
    finally:
        profile.total = perf_counter() - start
        graph.plan = plan
