"""A 100,000-node graph from the command line: run, validate, the HTML page, and the page in Chromium.

    python bench/bench_scale.py [--nodes N] [--keep DIR]

The graph is the interpreter benchmark's chain (Add, Mul, Tanh, Sigmoid on a vector of 8, a param for every
Add and Mul) with N nodes in all, leaves included, written as a JSON file. Each command runs as a user runs
it, a whole process, timed by /usr/bin/time (wall seconds and peak resident memory).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_html import ARGS, CHROMIUM
from bench_interpreter import CHAIN_OPS
from timing import record

TARGETS = {"run": 3.0, "validate": 2.0, "render": 10.0}  # seconds (issue 14)
BEFORE = {"run": 8.3, "validate": 7.2, "render": 249.0}  # seconds, as issue 14 measured them
RSS_TARGET = 1e9  # bytes, for render -f html
DRAW_TARGET = 5.0  # seconds from navigation until the page has drawn


def chain_document(n_nodes: int, rng) -> dict:
    """The chain as a document of the JSON format: ops, their params and the input, n_nodes in all."""
    n_ops = (n_nodes - 2) * 2 // 3  # one op in two reads a param; the input and the loss make 2
    params, nodes, prev = [], [], "x"
    for k in range(n_ops):
        op = CHAIN_OPS[k % len(CHAIN_OPS)]
        if op in ("Add", "Mul"):
            params.append({"name": f"p{k}", "value": np.round(rng.uniform(0.5, 1.5, 8), 6).tolist()})
            nodes.append({"op": op, "inputs": [prev, f"p{k}"], "outputs": [f"t{k}"]})
        else:
            nodes.append({"op": op, "inputs": [prev], "outputs": [f"t{k}"]})
        prev = f"t{k}"
    nodes.append({"op": "ReduceSum", "inputs": [prev], "outputs": ["loss"], "attrs": {"keepdims": 0}})
    return {"cgtools": "1.0", "name": f"chain of {n_nodes:,} nodes",
            "inputs": [{"name": "x", "value": np.round(rng.uniform(-1, 1, 8), 6).tolist()}],
            "params": params, "nodes": nodes, "outputs": ["loss"]}


def timed_command(*args) -> tuple[float, float, str]:
    """Wall seconds, peak resident bytes and stderr of `cgtools ARGS` in a process of its own."""
    script = str(Path(sys.executable).with_name("cgtools"))
    done = subprocess.run(["/usr/bin/time", "-f", "TIMED %e %M", script, *map(str, args)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"cgtools {' '.join(map(str, args))} failed:\n{done.stderr}")
    seconds, kilobytes = re.search(r"TIMED ([\d.]+) (\d+)", done.stderr).groups()
    return float(seconds), int(kilobytes) * 1024, done.stderr


def page_draw(page_file: Path, far: str) -> tuple[float, bool]:
    """Seconds from navigation until the page has drawn, in headless Chromium; whether searching for `far`
    (a tensor at the other end of the graph) then finds it and shows its node's panel."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(page_file.as_uri())
        page.wait_for_function("window.cgtools && window.cgtools.drawn", timeout=300_000)
        drawn = page.evaluate("window.cgtools.drawnAt") / 1000
        page.fill("#search", far)
        page.press("#search", "Enter")
        found = page.evaluate("window.cgtools.found && window.cgtools.nodes.get(window.cgtools.found) !== null")
        found = found and far in page.inner_text("#panel")
        browser.close()
    return drawn, found


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "over"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--keep", metavar="DIR", help="write the graph and the page here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        doc = chain_document(args.nodes, np.random.default_rng(0))
        graph_file, page_file = folder / "chain.json", folder / "chain.html"
        graph_file.write_text(json.dumps(doc))
        print(f"{args.nodes:,}-node chain ({len(doc['nodes']):,} ops, {len(doc['params']):,} params), "
              f"{graph_file.stat().st_size / 1e6:.1f} MB of JSON; 2 cores, shared")
        for command, extra in (("run", ()), ("validate", ())):
            seconds, peak, _ = timed_command(command, graph_file, *extra)
            print(f"cgtools {command}: {seconds:.1f} s, {peak / 1e6:.0f} MB "
                  f"(target <= {TARGETS[command]:.0f} s: {verdict(seconds, TARGETS[command])})")
            record(f"{args.nodes:,}-node chain: cgtools {command}", seconds, peer="before (issue 14)",
                   theirs=BEFORE[command], target=f"≤ {TARGETS[command]:.0f} s", met=seconds <= TARGETS[command])
        seconds, peak, _ = timed_command("run", graph_file, "--all")
        print(f"cgtools run --all (every row): {seconds:.1f} s, {peak / 1e6:.0f} MB")
        seconds, peak, _ = timed_command("render", graph_file, "-o", page_file)
        print(f"cgtools render -o chain.html: {seconds:.1f} s (target <= 10 s: {verdict(seconds, 10)}), "
              f"{peak / 1e6:.0f} MB peak (target <= 1,000 MB: {verdict(peak, RSS_TARGET)}), "
              f"a page of {page_file.stat().st_size / 1e6:.1f} MB")
        record(f"{args.nodes:,}-node chain: cgtools render -f html", seconds, peer="before (issue 14)",
               theirs=BEFORE["render"], target="≤ 10 s", met=seconds <= TARGETS["render"])
        record(f"{args.nodes:,}-node chain: render -f html, peak memory", peak / 1e6, unit="MB",
               peer="before (issue 14)", theirs=2200, target="≤ 1,000 MB", met=peak <= RSS_TARGET)
        drawn, found = page_draw(page_file, doc["nodes"][-2]["outputs"][0])
        print(f"the page in Chromium: drawn {drawn:.1f} s after navigation (target <= {DRAW_TARGET:.0f} s: "
              f"{verdict(drawn, DRAW_TARGET)}); searching the far end of the graph "
              f"{'finds it' if found else 'FAILS'}")
        record(f"{args.nodes:,}-node chain: the page drawn in Chromium", drawn, target="≤ 5 s",
               met=drawn <= DRAW_TARGET and found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
