"""Large graphs: loading, checking, planning and the page grow linearly with the nodes; `run` on a graph of
thousands of tensors prints its ends; the page of a graph too large to draw at once draws a part and search
finds any node."""

from __future__ import annotations

import cProfile
import json
import pstats
import subprocess
import sys
import time

import numpy as np
import pytest

import cgtools
from cgtools.export import draw
from cgtools.export.colours import blend, blends, rms
from cgtools.export.labels import (
    float_summaries,
    format_number,
    format_tensor,
    format_type,
    root_mean_squares,
    stacked_sums,
)
from cgtools.export.table import TABLE_ROWS
from cgtools.interpreter import compile_plan
from cgtools.runs import BATCH, SMALL, arrays_of, surely_finite
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
    three so that a busy machine does not decide, well under the 16 times a quadratic step would take (the larger
    graph's objects miss the caches more: 4 to 6 times on a shared 2-core machine)."""
    rng = np.random.default_rng(0)
    small_doc, large_doc = chain_document(small, rng), chain_document(4 * small, rng)
    small_calls, small_time = calls_and_seconds(lambda: work(small_doc))
    large_calls, large_time = calls_and_seconds(lambda: work(large_doc))
    assert 3.5 < large_calls / small_calls < 4.5
    assert large_time / small_time < 8


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


def test_a_malformed_node_among_thousands_of_its_kind_is_still_named(chain_file):
    """The checks look at each form of node (op, inputs given, outputs, attributes) once; a node of a form
    already seen but with an input left empty, an input too many or an attribute is its own form and is
    refused at its place."""
    doc = json.loads(chain_file(3_000).read_text())
    last_add = max(i for i, node in enumerate(doc["nodes"]) if node["op"] == "Add")
    for change, words in [(lambda n: n["inputs"].append(n["inputs"][0]), "Add takes 2 inputs (a, b), found 3"),
                          (lambda n: n["inputs"].__setitem__(1, ""), "input 'b' left empty"),
                          (lambda n: n.__setitem__("attrs", {"alpha": 1}), "Add has no attribute 'alpha'")]:
        broken = json.loads(json.dumps(doc))
        change(broken["nodes"][last_add])
        with pytest.raises(cgtools.CgError) as caught:
            cgtools.load(broken)
        assert words in str(caught.value) and f"nodes[{last_add}]" in str(caught.value)


def test_loading_checking_and_running_do_without_networkx(chain_file):
    """networkx is for drawing and conversions: a run of a JSON graph never imports it (0.3 s of start-up)."""
    code = ("import sys, cgtools; g = cgtools.load(sys.argv[1]); g.validate(); g.run(); "
            "print('networkx' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(chain_file(300))], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_the_finite_check_finds_one_nan_among_many_small_arrays():
    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=rng.integers(1, 9)) for _ in range(3 * BATCH + 5)]
    arrays += [None, np.arange(5), rng.normal(size=SMALL + 1).astype(np.float32)]
    assert surely_finite(arrays)
    for where in (0, BATCH, 3 * BATCH + 4, len(arrays) - 1):
        broken = [a.copy() if a is not None else None for a in arrays]
        broken[where][-1] = np.nan
        assert not surely_finite(broken)


def test_a_run_of_a_chain_names_the_first_nan_from_the_slots():
    """Run.non_finite reads the slots straight; the first NaN is still named, in forward order."""
    doc = chain_document(1_000, np.random.default_rng(3))
    graph = cgtools.load(doc)
    result = graph.run(inputs={"x": np.full(8, np.nan)}, per_use=True)
    values, grads = result.non_finite()
    assert values[0] == "x" and len(values) == len(arrays_of(result.values)) - len(doc["params"])
    assert len(arrays_of(result.grads)) == len(result.grads)
    assert graph.run().non_finite() == ([], [])


def test_plain_nodes_of_one_op_share_their_bound_forward_and_compute_as_before():
    doc = chain_document(600, np.random.default_rng(4))
    graph = cgtools.load(doc)
    plan = compile_plan(graph)
    tanh = {id(step.forward) for step, node in zip(plan.steps, graph.nodes) if node.op == "Tanh"}
    assert len(tanh) == 1
    result = graph.run()
    x = np.asarray(doc["inputs"][0]["value"])
    params = {p["name"]: np.asarray(p["value"]) for p in doc["params"]}
    ops = {"Add": np.add, "Mul": np.multiply, "Tanh": np.tanh, "Sigmoid": lambda a: 1 / (1 + np.exp(-a))}
    expected = x
    for node in doc["nodes"][:-1]:  # the oracle: numpy, node by node
        expected = ops[node["op"]](expected, *(params[p] for p in node["inputs"][1:]))
    np.testing.assert_allclose(result.values["loss"], expected.sum(), rtol=1e-12)


def test_small_tensors_are_written_as_format_number_writes_each_element():
    rng = np.random.default_rng(5)
    values = [0.0, -0.0, 1.0, -3.0, 1e6, 1e7, 9_999_999.0, 123_456.0, 1234.5, np.nan, np.inf, -np.inf, 1e-5, 0.1,
              *(rng.normal(size=500) * 10.0 ** rng.integers(-12, 12, 500)), *rng.integers(-10**8, 10**8, 100) * 1.0]
    for precision in (1, 3, 4, 6):
        for chunk in range(0, len(values), 6):
            items = [float(v) for v in values[chunk:chunk + 6]]
            expected = "[" + ", ".join(format_number(v, precision) for v in items) + "]"
            assert format_tensor(np.array(items), precision) == expected
    for dtype in (np.float32, np.int8, np.bool_, "bfloat16"):
        a = np.zeros((2, 3), dtype)
        assert format_type(a) == f"{a.dtype} [2×3]"


def small_arrays(rng, shapes) -> list[np.ndarray]:
    """Twenty float32 and twenty float64 arrays of each shape, of every scale, one with a NaN, one with an
    infinity and one of zeros among them."""
    arrays = []
    for dtype in (np.float32, np.float64):
        for shape in shapes:
            for k in range(20):
                a = np.asarray(rng.normal(size=shape) * 10.0 ** rng.integers(-8, 8), dtype)
                a.flat[0] = np.nan if k == 3 else np.inf if k == 4 else a.flat[0]
                arrays.append(np.zeros(shape, dtype) if k == 5 else a)
    return arrays


def test_summaries_made_a_shape_at_a_time_are_format_tensors_own():
    """float_summaries stacks the small tensors of one shape and sums the rows: each summary must be the one
    format_tensor writes of the tensor alone; those with a NaN or an infinity, or not C-ordered, are left out."""
    rng = np.random.default_rng(6)
    arrays = small_arrays(rng, ((7,), (8,), (2, 4), (3, 3, 3), (129,), (4096,), (1, 9)))
    others = [np.ones((8, 4))[:, 0], np.arange(10.0).astype(np.float16), rng.normal(size=4097)]
    for precision in (2, 4, 6):
        found = float_summaries(stacked_sums(arrays + others), precision)
        assert all(id(a) not in found for a in others)
        for a in arrays:
            if np.isfinite(a).all() and a.size > 6:
                assert found[id(a)][0] is a and found[id(a)][1] == format_tensor(a, precision)
            else:
                assert id(a) not in found


def test_root_mean_squares_made_a_shape_at_a_time_are_rms_own():
    """The colouring's rms of many small tensors from their stacked rows: each the very float rms gives the
    tensor alone (infinity for a NaN or an infinity); what cannot be stacked is left to rms."""
    rng = np.random.default_rng(9)
    arrays = small_arrays(rng, ((), (1,), (3,), (8,), (2, 4), (5, 7), (4096,))) + [np.full(8, 1e200)]
    others = [np.ones((8, 4))[:, 0], np.arange(10.0).astype(np.float16), np.arange(8), rng.normal(size=4097)]
    found = root_mean_squares(stacked_sums(arrays + others))
    assert all(id(a) not in found for a in others)
    for a in arrays:
        assert found[id(a)][0] is a and found[id(a)][1] == rms(a)


@pytest.mark.parametrize("theme_name", ["slide", "paper", "dark"])
def test_edge_colours_blended_at_once_are_blends_own(theme_name):
    """The colours of many edges mixed on numpy arrays are blend's, one by one: at the ends, between anchors,
    and on positions where a channel's mix falls half-way between two integers."""
    from cgtools.export.themes import theme

    anchors = theme(theme_name)["scale"]
    ps = [0.0, 1.0, 0.5, *np.random.default_rng(3).random(5_000).tolist(), *np.linspace(0, 1, 4097).tolist()]
    assert blends(anchors, ps) == [blend(anchors, p) for p in ps]
    assert blends(anchors, []) == []


def test_the_page_data_written_field_by_field_is_the_whole_documents_json():
    from cgtools.export.html import page_doc, page_json, script_json
    from cgtools.export.scene import View

    graph = cgtools.load(chain_document(300, np.random.default_rng(7)))
    doc = page_doc(graph, graph.run(per_use=True), View())
    whole = script_json(doc)
    assert page_json(doc) == whole and doc == {}
    assert json.loads(whole)["nodes"] and "<" not in whole and "&" not in whole


@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [1.5, 2, 3, 4], "a": 2}',  # a key given twice
    '{"a" : 1, "a": 2}',  # twice, one with a space before its colon
    '{"x": [1' + "0" * 250 + 'e99, 1, 2]}',  # beyond float64's range with a two-digit exponent
    '{"x": [1.5, 2.5, 1e999]}', '{"x": Infinity}', '{"x": [NaN, 1, 2]}',
    '{"x": ' + "9" * 5000 + '}', '{"x": 1.' + "5" * 1200 + '}',
    '{"n": "a\\u0000b"}', '{"n": "\\ud800"}', '{"n": "' + "a" * 1100 + '"}',
    json.dumps({"x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
    '{"a": {"b": [1, {"c": "d"}], "e": null, "f": true}, "g": [1.25, -2.5e-3, 7]}',
])
def test_a_document_read_quickly_is_read_as_the_careful_reader_reads_it(text):
    """checked_json takes Python's reader at its own speed where that is safe; on every document it accepts or
    refuses what parse_json then check_document accept or refuse, with the same message."""
    from cgtools.errors import CgError
    from cgtools.limits import check_document, checked_json, parse_json

    def outcome(read):
        try:
            return "ok", json.dumps(read(), allow_nan=True, sort_keys=True)
        except CgError as e:
            return "refused", str(e)

    def careful():
        doc = parse_json(text)
        check_document(doc)
        return doc

    assert outcome(lambda: checked_json(text)) == outcome(careful)


def test_a_chain_is_read_without_a_call_per_number_or_per_object():
    """A chain's document through checked_json: none of parse_json's hooks (one call per number, one per object)
    runs, and the document is parse_json's."""
    from cgtools.limits import checked_json, parse_json

    text = json.dumps(chain_document(3_000, np.random.default_rng(0)))

    def hook_calls(read) -> int:
        profile = cProfile.Profile()
        profile.runcall(read, text)
        return sum(calls for (_, _, function), (_, calls, *_) in pstats.Stats(profile).stats.items()
                   if function in ("parse", "_unique_keys"))

    assert hook_calls(parse_json) > 10_000
    assert hook_calls(checked_json) == 0
    assert checked_json(text) == parse_json(text)


def test_the_layered_layout_walks_plain_lists_in_networkx_topological_order():
    """adjacency gives networkx's own topological order (the layout's layers keep their order within) and each
    node's neighbours once, on a multigraph with parallel edges; a cycle is refused as networkx refuses it."""
    import networkx as nx

    from cgtools.export.layout import adjacency, longest_path_ranks

    rng = np.random.default_rng(3)
    D = nx.MultiDiGraph()
    D.add_nodes_from(f"n{i}" for i in rng.permutation(200))
    for _ in range(600):
        a, b = sorted(rng.choice(200, 2, replace=False))
        D.add_edge(f"n{a}", f"n{b}")
    order, preds, succs = adjacency(D)
    assert order == list(nx.topological_sort(D))
    assert all(preds[n] == list(D.predecessors(n)) and succs[n] == list(D.successors(n)) for n in D)
    ranks = longest_path_ranks(D)
    assert all(ranks[v] > ranks[u] for u, v in D.edges())
    D.add_edge(order[-1], order[0])
    with pytest.raises(nx.NetworkXUnfeasible):
        adjacency(D)


@pytest.mark.parametrize("example", ["mlp_xent.json", "logistic_regression.json", "affine_square.json"])
def test_stage_labels_marked_once_per_line_are_the_labels_of_each_stage(example):
    """The page's three labels of every node and edge (shared tensors' shares, gradients, names with shapes)
    are vis_label of the lines as each stage shows them."""
    from cgtools.export.grouping import diagram_scene
    from cgtools.export.html import STAGES, stage_labels, vis_label
    from cgtools.export.scene import View, at

    graph = cgtools.load(ROOT / "examples" / example)
    run = graph.run(per_use=True)
    for view in (View(), View(show=frozenset({"values", "grads", "names", "shapes"}))):
        scene = diagram_scene(graph, run, view).graph
        items = [(d["lines"], True) for _, d in scene.nodes(data=True)]
        items += [(d["lines"], False) for *_, d in scene.edges(data=True)]
        assert any(line.until for lines, _ in items for line in lines)
        for lines, node in items:
            assert stage_labels(lines, node=node) == [vis_label(at(lines, stage), node=node) for stage in STAGES]


SAMPLE = [0.001953125, -0.001953125, 2.0**-15, 0.5, -0.0, 0.1, 1e-5, 1e-4, 9.999995e-5, 123.456, 1234567.5,
          12345678.0, 9999999.0, 9999999.5, 99999.95, 1e30, -3.4e38, 1.17549435e-38, 1e-45, 1.0000005, 2.5,
          0.3333333, 7.0, -42.0, 1e7, 16777215.0, 0.000123456789]


def test_the_page_writes_numbers_as_python_does(tmp_path, open_page):
    """formatNumber (page.html) against labels.format_number on float32 and float64 values at 4 and 6 digits: ties (2⁻⁹
    at 6 digits, rounded to even as Python does), integers, -0, exponents either side of the fixed range,
    denormals, and a spread of random magnitudes."""
    from cgtools.export.labels import format_number

    rng = np.random.default_rng(5)
    values = np.concatenate([np.array(SAMPLE, np.float32),
                             (rng.standard_normal(300) * 10.0 ** rng.integers(-12, 12, 300)).astype(np.float32)])
    graph = cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": [1.0]}],
                          "nodes": [{"op": "Neg", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]})
    page_file = tmp_path / "page.html"
    page_file.write_bytes(draw(graph, fmt="html"))
    page = open_page(page_file).page
    page.wait_for_function("window.cgtools && window.cgtools.drawn")
    numbers = [float(v) for v in values] + (rng.standard_normal(200) * 10.0 ** rng.integers(-12, 12, 200)).tolist()
    for digits in (4, 6):
        written = page.evaluate(f"{json.dumps(numbers)}.map((v) => window.cgtools.formatNumber(v, {digits}))")
        assert written == [format_number(v, digits) for v in numbers]


def test_a_large_pages_tooltips_are_numbers_the_page_writes_as_python_would(tmp_path, open_page, monkeypatch):
    """Past LIGHT_FROM nodes a page ships float32 tensors' tooltips as numbers (tips.py); each edge's tooltip
    the page writes is the text tensor_text writes for a small page: matrices, a scalar, a shared tensor's
    share, ties and integers among the values. A NaN sends every tooltip back to text, and float64 tensors keep
    theirs as text."""
    from cgtools.export import html

    x = np.array(SAMPLE[:12], np.float32).reshape(3, 4)
    doc = {"cgtools": "1.0", "inputs": [{"name": "x", "value": x.tolist(), "dtype": "float32"}],
           "params": [{"name": "w", "value": [0.5, -1.25, 3.0, 2.0**-9], "dtype": "float32"},
                      {"name": "s", "value": 1.5, "dtype": "float32"}],
           "nodes": [{"op": "Mul", "inputs": ["x", "w"], "outputs": ["y"]},
                     {"op": "Tanh", "inputs": ["y"], "outputs": ["z"]},
                     {"op": "Add", "inputs": ["z", "y"], "outputs": ["u"]},
                     {"op": "ReduceSum", "inputs": ["u"], "outputs": ["t"], "attrs": {"keepdims": 0}},
                     {"op": "Mul", "inputs": ["t", "s"], "outputs": ["loss"]}], "outputs": ["loss"]}
    graph = cgtools.load(doc)
    run = graph.run(per_use=True)
    monkeypatch.setattr(html, "LIGHT_FROM", 3)
    data = html.page_doc(graph, run, html.View())
    assert data["numbers"] and all("shape" in tip for tip in data["tensors"])
    page_file = tmp_path / "page.html"
    page_file.write_text(html.to_html(graph, run))
    page = open_page(page_file).page
    page.wait_for_function("window.cgtools && window.cgtools.drawn")
    monkeypatch.setattr(html, "LIGHT_FROM", 10_000)
    expected = [[t["head"], t.get("value"), t.get("grad")] for t in html.page_doc(graph, run, html.View())["tensors"]]
    assert any("this read adds" in (grad or "") for _, _, grad in expected)
    for i, parts in enumerate(expected):
        assert page.evaluate(f"window.cgtools.tipText({i})") == "\n".join(p for p in parts if p)
    monkeypatch.setattr(html, "LIGHT_FROM", 3)
    bad = graph.run({"x": np.where(x > 100, np.nan, x)}, per_use=True)
    assert not html.page_doc(graph, bad, html.View())["numbers"]
    wide = cgtools.load({**doc, "inputs": [{"name": "x", "value": x.tolist()}],  # float64: its text is smaller
                         "params": [{**p, "dtype": "float64"} for p in doc["params"]]})  # than its bytes, and stays
    assert not html.page_doc(wide, wide.run(per_use=True), html.View())["numbers"]
