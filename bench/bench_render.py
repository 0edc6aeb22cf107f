"""Drawing speed: DOT text for a 10,000-node graph, and cold command-line runs.

    python bench/bench_render.py [--repeat N]

Prints medians; the README's performance section quotes them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import record

import cgtools
from cgtools.export.dot import to_dot

ROOT = Path(__file__).resolve().parent.parent


def wide_graph(n_nodes: int, rng) -> cgtools.Graph:
    """A mix of ops with fan-in and fan-out over small vectors: n_nodes nodes in all, leaves included."""
    n_ops = (n_nodes - 4) * 5 // 7  # two in five ops bring a param leaf
    nodes, params, prev = [], [], ["x0", "x1", "x2", "x3"]
    ops = ("Add", "Mul", "Tanh", "Sigmoid", "Relu")
    for k in range(n_ops):
        op = ops[k % len(ops)]
        a = prev[rng.integers(len(prev))]
        if op in ("Add", "Mul"):
            params.append({"name": f"p{k}", "value": rng.normal(size=4).tolist()})
            nodes.append({"op": op, "inputs": [a, f"p{k}"], "outputs": [f"t{k}"]})
        else:
            nodes.append({"op": op, "inputs": [a], "outputs": [f"t{k}"]})
        prev = (prev + [f"t{k}"])[-8:]
    nodes.append({"op": "ReduceSum", "inputs": [prev[-1]], "outputs": ["loss"], "attrs": {"keepdims": 0}})
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": f"x{i}", "value": rng.normal(size=4).tolist()}
                                                      for i in range(4)],
                         "params": params, "nodes": nodes, "outputs": ["loss"]})


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    graph = wide_graph(10_000, np.random.default_rng(0))
    assert abs(len(graph.nodes) + len(graph.leaves) - 10_000) < 10
    run = graph.run()
    seconds = timed(lambda: to_dot(graph, run), args.repeat)
    print(f"DOT text for {len(graph.nodes) + len(graph.leaves):,} nodes with values and gradients: "
          f"{seconds:.2f} s (target <= 1 s)")
    record("DOT text of a 10,000-node graph with values and gradients", seconds, target="≤ 1 s", met=seconds <= 1)

    script = str(Path(sys.executable).with_name("cgtools"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.svg"
        example = ROOT / "examples" / "affine_square.json"
        cold = timed(lambda: subprocess.run([script, "render", str(example), "-o", str(out)], check=True,
                                            capture_output=True), args.repeat)
    help_time = timed(lambda: subprocess.run([script, "--help"], check=True, capture_output=True), args.repeat)
    print(f"cold `cgtools render examples/affine_square.json -o a.svg`: {cold * 1e3:.0f} ms (target <= 600 ms)")
    print(f"cold `cgtools --help`: {help_time * 1e3:.0f} ms (target <= 150 ms)")
    record("cold `cgtools render examples/affine_square.json -o a.svg`", cold, target="≤ 600 ms", met=cold <= 0.6)
    record("cold `cgtools --help`", help_time, target="≤ 150 ms", met=help_time <= 0.15)


if __name__ == "__main__":
    main()
