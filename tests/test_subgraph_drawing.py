"""Nodes holding subgraphs (If's branches, Loop's body) drawn with their bodies: clusters in DOT/SVG, labelled and
holding the values of the body's last execution (checked against onnxruntime's outputs), and groups on the page
that open on a click in a real browser."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from test_control_flow import helper, if_model, loop_model, ort_outputs
from test_render import svg_items

from cgtools.export import draw
from cgtools.export.dot import to_dot
from cgtools.export.labels import format_tensor
from cgtools.export.scene import View
from cgtools.onnx.read import load_onnx
from helpers import ROOT

GOLDEN = ROOT / "tests" / "golden"
LOOP_FEEDS = {"M": np.array(4, np.int64), "x": np.array([0.5, -1.0, 2.0], np.float32)}
DRAWN = "window.cgtools && window.cgtools.drawn"


def by_label(svg: bytes) -> tuple[dict, dict]:
    """Clusters' label texts by cluster id, and each node's texts by its id, from Graphviz's SVG."""
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    clusters = {g.find(f"{ns}title").text: [t.text for t in g.iter(f"{ns}text")]
                for g in root.iter(f"{ns}g") if g.get("class") == "cluster"}
    return clusters, svg_items(svg)[0]


def test_loop_body_golden_dot(tmp_path, update_golden):
    graph = load_onnx(loop_model(tmp_path / "loop.onnx"))
    text = to_dot(graph, graph.run(LOOP_FEEDS, backward=False))
    golden = GOLDEN / "loop_body.dot"
    if update_golden:
        golden.write_text(text)
    assert text == golden.read_text(), f"DOT changed; review and rerun with --update-golden: {golden}"


def test_loop_body_shows_its_last_iteration_as_onnxruntime_computes_it(tmp_path, graphviz):
    path = loop_model(tmp_path / "loop.onnx")
    graph = load_onnx(path)
    _, ys = ort_outputs(path.read_bytes(), LOOP_FEEDS)  # ys[k]: the y each iteration k made
    clusters, nodes = by_label(draw(graph, graph.run(LOOP_FEEDS, backward=False), fmt="svg"))
    assert list(clusters.values()) == [["body", " · ", "values of the last of 4 iterations"]]
    _, edges = svg_items(draw(graph, graph.run(LOOP_FEEDS, backward=False), fmt="svg"))
    inside = {texts[0] for tail, head, texts in edges if tail.startswith("N1_0") and texts}
    assert f"y = {format_tensor(ys[-2], 4)}" in inside  # the last iteration reads the one before's y
    assert f"i = {len(ys) - 1}" in inside  # and its iteration number
    assert any(f"y_out = {format_tensor(ys[-1], 4)}" in texts for texts in nodes.values())
    assert nodes["N1"][0] == "loop"


@pytest.mark.parametrize("x, taken", [([0.5, -1.0, 2.0], "then"), ([-0.5, -1.0, 0.0], "else")])
def test_if_draws_both_branches_and_says_which_ran(tmp_path, graphviz, x, taken):
    path = if_model(tmp_path / "if.onnx")
    graph = load_onnx(path)
    feeds = {"x": np.array(x, np.float32)}
    (y,) = ort_outputs(path.read_bytes(), feeds)
    clusters, nodes = by_label(draw(graph, graph.run(feeds, backward=False), fmt="svg"))
    said = {texts[0]: texts[-1] for texts in clusters.values()}
    assert said == {"then": "taken" if taken == "then" else "not taken",
                    "else": "taken" if taken == "else" else "not taken"}
    made = "t" if taken == "then" else "e"
    _, edges = svg_items(draw(graph, graph.run(feeds, backward=False), fmt="svg"))
    assert [f"{made} = {format_tensor(y, 4)}"] in [texts for *_, texts in edges]  # the branch made the If's y
    other = f"N2_{1 - ['then', 'else'].index(taken)}_"
    assert not [t for tail, _, texts in edges if tail.startswith(other) for t in texts if " = " in t]  # no values


def test_outer_tensors_are_linked_from_where_they_are_made(tmp_path):
    graph = load_onnx(loop_model(tmp_path / "loop.onnx"))
    dot = to_dot(graph, graph.run(LOOP_FEEDS, backward=False))
    # w is made by the enclosing graph's Mul (N0) and read inside the body as its input L3
    assert re.search(r'^N0 -> N1_0_L3 \[.*style=dashed', dot, re.M)
    assert len(re.findall(r"^N1_0_O\d -> N1 ", dot, re.M)) == 3


def test_bodies_default_on_for_lecture_graphs_and_follow_the_option(tmp_path, cli):
    path = if_model(tmp_path / "if.onnx")
    for extra, clusters in (([], 2), (["--no-bodies"], 0), (["--bodies"], 2)):
        done = cli("render", str(path), "--set", "x=[1,2,3]", "-f", "dot", "-o", "-", *extra)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("subgraph cluster_") == clusters
    graph = load_onnx(path)
    assert "cluster" not in to_dot(graph, None, View(bodies=False))


def test_a_model_sized_graph_draws_its_bodies_only_when_asked(tmp_path):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(if_model(tmp_path / "if.onnx"))).graph
    chain = [helper.make_node("Relu", [f"r{i}" if i else "y"], [f"r{i + 1}"]) for i in range(45)]
    graph.node.extend(chain)
    graph.output[0].name = "r45"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "big.onnx")
    big = load_onnx(tmp_path / "big.onnx")
    assert "cluster" not in to_dot(big)
    assert to_dot(big, None, View(bodies=True)).count("subgraph cluster_") == 2


def test_user_strings_in_bodies_are_escaped(tmp_path, graphviz):
    name = 'a<b>&"\\N</script>'
    graph = load_onnx(if_model(tmp_path / "if.onnx", name))
    run = graph.run({"x": np.array([1, 2, 3], np.float32)}, backward=False)
    _, nodes = by_label(draw(graph, run, fmt="svg"))  # parses: nothing became markup
    assert [name] in [texts[1:2] for texts in nodes.values()]
    html = draw(graph, run, fmt="html").decode()
    assert "</script>" not in html.split('<script id="cg-data"')[1].split("</script>")[0]


@pytest.mark.browser
def test_page_opens_a_loop_body_on_a_click(tmp_path, open_page, graphviz):
    graph = load_onnx(loop_model(tmp_path / "loop.onnx"))
    path = tmp_path / "loop.html"
    path.write_bytes(draw(graph, graph.run(LOOP_FEEDS, backward=False), fmt="html"))
    data = json.loads(re.search(r'<script id="cg-data" type="application/json">(.*?)</script>',
                                path.read_text(), re.S).group(1))
    (group,) = data["groups"]
    assert group["label"] == "loop ▸ body" and group["body"]
    opened = open_page(path)
    page = opened.page
    page.wait_for_function(DRAWN)
    shown = "() => window.cgtools.network.body.nodeIndices"
    before = page.evaluate(shown)
    assert group["id"] in before and "N1" not in before and not any(n.startswith("N1_0") for n in before)
    assert not page.is_visible("#depth")  # no modules: no depth picker
    page.evaluate("(id) => window.cgtools.network.focus(id, {scale: 1.5, animation: false})", group["id"])
    at = page.evaluate("""(id) => { const n = window.cgtools.network, p = n.canvasToDOM(n.getPosition(id));
        const box = document.getElementById('canvas').getBoundingClientRect();
        return {x: box.left + p.x, y: box.top + p.y}; }""", group["id"])
    page.mouse.click(at["x"], at["y"])
    after = page.evaluate(shown)
    assert group["id"] not in after and "N1" in after
    assert {f"N1_0_N{i}" for i in range(5)} <= set(after)
    add = page.evaluate("window.cgtools.data.info['N1_0_N3']")
    assert add["rows"][0] == ["op", "Add"]  # a body's node, looked up in the body
    assert opened.console_errors() == [] and opened.external_requests() == []
