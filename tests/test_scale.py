"""Large graphs: loading, checking, planning and the page grow linearly with the nodes; `run` on a graph of
thousands of tensors prints its ends; the page of a graph too large to draw at once draws a part and search
finds any node."""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time

import numpy as np
import pytest

import cgtools
from cgtools.export import draw
from cgtools.export.table import TABLE_ROWS
from cgtools.interpreter import compile_plan
from helpers import ROOT, run_in_process

sys.path.insert(0, str(ROOT / "bench"))
from bench_scale import chain_document  # noqa: E402  (the benchmark's graph, so both measure one thing)


def calls_and_seconds(work) -> tuple[int, float]:
    """How many Python function calls `work` makes once warm (imports and caches filled), and its fastest time
    of three, unprofiled."""
    work()
    profile = cProfile.Profile()
    profile.runcall(work)
    calls = pstats.Stats(profile).total_calls
    times = []
    for _ in range(3):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return calls, min(times)


def load_check_and_plan(doc):
    graph = cgtools.load(doc)
    graph.validate()
    compile_plan(graph)


def page_of(doc):
    graph = cgtools.load(doc)
    draw(graph, graph.run(per_use=True), fmt="html")


@pytest.mark.slow
@pytest.mark.parametrize(("work", "small"), [(load_check_and_plan, 10_000), (page_of, 2_000)],
                         ids=["load-validate-plan", "html-page"])
def test_work_grows_linearly_with_the_nodes(work, small):
    """Four times the nodes: four times the calls (a quadratic step shows as 16), and, timed as the fastest of
    three so that a busy machine does not decide, well under the 16 times a quadratic step would take."""
    rng = np.random.default_rng(0)
    small_doc, large_doc = chain_document(small, rng), chain_document(4 * small, rng)
    small_calls, small_time = calls_and_seconds(lambda: work(small_doc))
    large_calls, large_time = calls_and_seconds(lambda: work(large_doc))
    assert 3.5 < large_calls / small_calls < 4.5
    assert large_time / small_time < 6


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory):
    def write(n_nodes: int):
        path = tmp_path_factory.mktemp("scale") / f"chain{n_nodes}.json"
        path.write_text(json.dumps(chain_document(n_nodes, np.random.default_rng(1))))
        return path
    return write


def table_names(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines()[2:]]


def test_run_prints_the_ends_of_a_graph_of_thousands_of_tensors(capsys, chain_file):
    path = chain_file(1_600)  # 1,600 tensors, 532 params
    doc = json.loads(path.read_text())
    params = [p["name"] for p in doc["params"]]
    assert len(params) < TABLE_ROWS < 1_600
    done = run_in_process(capsys, "run", path)
    assert done.returncode == 0, done.stderr
    assert table_names(done.stdout) == ["x", *params, "loss"]
    left = 1_600 - len(params) - 2
    assert f"note: {left:,} of 1,600 tensors left out" in done.stderr and "--all prints every row" in done.stderr
    every = run_in_process(capsys, "run", path, "--all")
    names = table_names(every.stdout)
    assert len(names) == 1_600 and names[-1] == "loss" and "left out" not in every.stderr
    stats = run_in_process(capsys, "run", path, "--stats")
    assert table_names(stats.stdout) == ["x", *params, "loss", "∂loss/∂x", *(f"∂loss/∂{p}" for p in params),
                                         "∂loss/∂loss"]


def test_run_leaves_out_the_params_when_they_are_too_many_too(capsys, chain_file):
    path = chain_file(3_100)  # 1,032 params
    done = run_in_process(capsys, "run", path)
    assert done.returncode == 0, done.stderr
    assert table_names(done.stdout) == ["x", "loss"]
    assert "note: 3,098 of 3,100 tensors left out" in done.stderr


def test_run_prints_every_row_of_a_graph_under_the_limit(capsys, chain_file):
    done = run_in_process(capsys, "run", chain_file(900))
    assert len(table_names(done.stdout)) == 900 and "left out" not in done.stderr


@pytest.mark.slow
def test_a_page_too_large_to_draw_at_once_draws_a_part_and_finds_any_node(tmp_path, chain_file, open_page,
                                                                            monkeypatch):
    from cgtools.export import html

    monkeypatch.setattr(html, "DRAW_LIMIT", 10_000)  # a 20,000-node chain's page: 13,000 nodes (weights inside ops)
    graph = cgtools.load(chain_file(20_000))
    page_file = tmp_path / "chain.html"
    page_file.write_bytes(draw(graph, graph.run(per_use=True), fmt="html"))
    opened = open_page(page_file)
    page = opened.page
    page.wait_for_function("window.cgtools && window.cgtools.drawn", timeout=120_000)
    assert page.evaluate("window.cgtools.data.nodes.length") > 10_000
    assert page.evaluate("window.cgtools.nodes.length") == html.WINDOW
    last = graph.nodes[-2]  # at the far end from the part drawn first
    drawn = page.evaluate("window.cgtools.nodes.get().map((n) => n.label)")
    assert not any(f">{last.outputs[0]}<" in label for label in drawn)
    page.fill("#search", last.outputs[0])
    page.press("#search", "Enter")
    found = page.evaluate("window.cgtools.found")
    assert page.evaluate(f"window.cgtools.nodes.get({found!r}) !== null")
    panel = page.inner_text("#panel")
    assert last.outputs[0] in panel and last.op in panel
    assert opened.console_errors() == []
