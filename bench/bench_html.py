"""The interactive page in headless Chromium: time from navigation until vis-network has drawn.

    python bench/bench_html.py [--repeat N]

Graphs are residual stacks like a model's (MatMul, Add, Relu and a skip connection per block, params on
every block), with values and gradients. Prints medians in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import record

import cgtools
from cgtools.export import draw

CHROMIUM = "/usr/bin/chromium"
NETRON = {1_750: 2.5, 8_000: 6.1}  # seconds until Netron had drawn the same graphs, here, by hand
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]


def residual_stack(n_nodes: int, rng) -> cgtools.Graph:
    """Blocks of h = relu(x @ W + b) + x: 4 ops and 2 params a block, about n_nodes nodes in all."""
    nodes, params, x = [], [], "x"
    for k in range((n_nodes - 3) // 6):
        params += [{"name": f"W{k}", "value": (rng.normal(size=(4, 4)) * 0.3).tolist()},
                   {"name": f"b{k}", "value": (rng.normal(size=4) * 0.1).tolist()}]
        nodes += [{"op": "MatMul", "inputs": [x, f"W{k}"], "outputs": [f"m{k}"]},
                  {"op": "Add", "inputs": [f"m{k}", f"b{k}"], "outputs": [f"z{k}"]},
                  {"op": "Relu", "inputs": [f"z{k}"], "outputs": [f"r{k}"]},
                  {"op": "Add", "inputs": [f"r{k}", x], "outputs": [f"h{k}"]}]
        x = f"h{k}"
    nodes.append({"op": "ReduceMean", "inputs": [x], "outputs": ["loss"], "attrs": {"keepdims": 0}})
    return cgtools.load({"cgtools": "1.0", "name": f"residual stack, {n_nodes} nodes",
                         "inputs": [{"name": "x", "value": rng.normal(size=(2, 4)).tolist()}],
                         "params": params, "nodes": nodes, "outputs": ["loss"]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for size, target in ((1_750, 1.2), (8_000, 3.0)):
            graph = residual_stack(size, rng)
            start = time.perf_counter()
            page_file = Path(tmp) / f"stack{size}.html"
            page_file.write_bytes(draw(graph, graph.run(), fmt="html"))
            written = time.perf_counter() - start
            times = []
            for _ in range(args.repeat):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(page_file.as_uri())
                page.wait_for_function("window.cgtools && window.cgtools.drawn", timeout=120_000)
                times.append(page.evaluate("window.cgtools.drawnAt") / 1000)
                page.close()
            n = len(graph.nodes) + len(graph.leaves) + len(graph.outputs)
            drawn = statistics.median(times)
            print(f"{n:,} nodes: drawn {drawn:.2f} s after navigation (target <= {target} s); "
                  f"page written in {written:.1f} s, {page_file.stat().st_size / 1e6:.1f} MB")
            record(f"page of {n:,} nodes drawn in Chromium", drawn, peer="Netron (measured once by hand)",
                   theirs=NETRON.get(size), target=f"≤ {target} s", met=drawn <= target)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
