"""The page by the model's hierarchy: modules drawn as boxes that open on a click and close again, search that
opens the modules around what it finds. Checked on resnet18 exported at test time, against the module paths in
its ONNX node names (`/layer1/layer1.0/conv1/Conv`) read here with the onnx package."""

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, fields

import onnx
import pytest

import cgtools
from cgtools.export import draw
from cgtools.export.scene import View
from helpers import EXAMPLES

DRAWN = "window.cgtools && window.cgtools.drawn"

if "collapse" in {f.name for f in fields(View)}:
    Collapsed = View
else:  # until View carries the depth to collapse to
    @dataclass(frozen=True)
    class Collapsed(View):
        collapse: int | None = None


def page_data(html: str) -> dict:
    return json.loads(re.search(r'<script id="cg-data" type="application/json">(.*?)</script>', html, re.S).group(1))


def module_path(node_name: str) -> tuple[str, ...]:
    """`/layer1/layer1.0/conv1/Conv` -> ("layer1", "layer1.0", "conv1"); names without a path have none."""
    return tuple(node_name.split("/")[1:-1]) if node_name.startswith("/") else ()


def onnx_modules(path):
    """From the ONNX file itself: every node's module path, every tensor's readers' paths and its maker's."""
    model = onnx.load(str(path))
    weights = {i.name for i in model.graph.initializer}  # an Identity copy of one is drawn inside its reader
    copies = {node.output[0]: node.input[0] for node in model.graph.node
              if node.op_type == "Identity" and node.input[0] in weights}
    nodes = [node for node in model.graph.node if node.output[0] not in copies]
    paths = {node.name: module_path(node.name) for node in nodes}
    readers, maker = defaultdict(list), {}
    for node in nodes:
        for tensor in node.input:  # a copy's readers read the weight
            readers[copies.get(tensor, tensor)].append(paths[node.name])
        maker.update((tensor, paths[node.name]) for tensor in node.output)
    return paths, readers, maker


@pytest.fixture(scope="module")
def resnet_page(exported, tmp_path_factory):
    model = exported("resnet18")
    path = tmp_path_factory.mktemp("page") / "resnet18.html"
    path.write_bytes(draw(cgtools.load(model.path), None, Collapsed(collapse=1), fmt="html"))
    return model, path


def visible(page) -> list[dict]:
    """The nodes drawn now: modules' boxes (`box`: the module's name) and the graph's own nodes."""
    return page.evaluate("""() => { const net = window.cgtools.network, data = window.cgtools.data;
        const groups = new Map(data.groups.map(g => [g.id, g.name]));
        return net.body.nodeIndices.map(id => ({id, box: net.clustering.isCluster(id) ? groups.get(id) : null,
            name: data.info[id] ? data.info[id].name : null, kind: data.info[id] ? data.info[id].kind : null})); }""")


def boxes(page) -> set[str]:
    return {node["box"] for node in visible(page) if node["box"]}


def screen_point(page, node_id):
    return page.evaluate("""(id) => { const n = window.cgtools.network, p = n.canvasToDOM(n.getPosition(id));
        const box = document.getElementById('canvas').getBoundingClientRect();
        return {x: box.left + p.x, y: box.top + p.y}; }""", node_id)


def click_node(page, node_id):
    page.evaluate("(id) => window.cgtools.network.focus(id, {scale: 1.5, animation: false})", node_id)
    point = screen_point(page, node_id)
    page.mouse.click(point["x"], point["y"])


def group_id(page, name):
    return page.evaluate("(name) => window.cgtools.data.groups.find(g => g.name === name).id", name)


@pytest.mark.slow
def test_page_data_names_each_module_with_its_ops_members_and_centroid(exported):
    model = exported("resnet18")
    paths, _, _ = onnx_modules(model.path)
    data = page_data(draw(cgtools.load(model.path), None, Collapsed(collapse=2), fmt="html").decode())
    assert data["collapse"] == 2 and data["groupNote"] is None
    by_id = {g["id"]: g for g in data["groups"]}

    def path_of(gid):
        return path_of(by_id[gid]["parent"]) + (by_id[gid]["name"],) if gid else ()

    modules = {path[:depth] for path in paths.values() for depth in range(1, len(path) + 1)}
    assert {path_of(gid) for gid in by_id} == modules
    for gid, group in by_id.items():
        path = path_of(gid)
        assert group["ops"] == sum(p[:len(path)] == path for p in paths.values())
        assert group["depth"] == len(path) and group["inner"] == any(len(m) > len(path) and m[:len(path)] == path
                                                                     for m in modules)
    ops = {info["name"]: key for key, info in data["info"].items() if info["kind"] == "op"}
    tagged = {node["id"]: node.get("cg") for node in data["nodes"]}
    assert all(path_of(tagged[ops[name]]) == path for name, path in paths.items())
    layer1 = next(gid for gid, g in by_id.items() if g["name"] == "layer1")
    members = [node for node in data["nodes"] if not node["id"].startswith("T") and node.get("cg")
               and "layer1" in path_of(node["cg"])[:1]]
    assert by_id[layer1]["x"] == pytest.approx(sum(n["x"] for n in members) / len(members), abs=0.1)
    assert by_id[layer1]["y"] == pytest.approx(sum(n["y"] for n in members) / len(members), abs=0.1)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_lecture_graphs_group_only_by_the_scopes_they_record(example):
    graph = cgtools.load(EXAMPLES / example)
    data = page_data(draw(graph, None, Collapsed(collapse=1), fmt="html").decode())
    modules = sorted({node.scope[0] for node in graph.nodes if node.scope})  # training_schematic: net, criterion
    assert sorted(group["name"] for group in data["groups"]) == modules
    assert any("cg" in node for node in data["nodes"]) == bool(modules)


def scoped_chain(blocks: int, outer=("net",)):
    """x -> (Neg, Exp) per block, each block a module `net/block<k>`: 2 ops a block."""
    nodes, x = [], "x"
    for k in range(blocks):
        scope = [*outer, f"block{k}"]
        nodes += [{"op": "Neg", "inputs": [x], "outputs": [f"n{k}"], "scope": scope},
                  {"op": "Exp", "inputs": [f"n{k}"], "outputs": [f"e{k}"], "scope": scope}]
        x = f"e{k}"
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": 0.5}], "nodes": nodes,
                         "outputs": [x]})


def test_a_big_model_opens_grouped_at_depth_1_and_says_so(monkeypatch):
    from cgtools.export import html

    graph = scoped_chain(10)  # 22 nodes: x, 20 ops, the output
    assert page_data(html.to_html(graph))["collapse"] == 0  # small: opens with every module open
    monkeypatch.setattr(html, "GROUP_FROM", 20)
    data = page_data(html.to_html(graph))
    # at depth 1 the page would show one box, "net": it opens at depth 2, the blocks
    assert data["collapse"] == 2 and data["groupNote"].startswith("22 nodes: opened grouped by module, 2 levels")
    assert page_data(html.to_html(scoped_chain(10, outer=())))["collapse"] == 1
    assert page_data(html.to_html(graph, None, Collapsed(collapse=0)))["collapse"] == 0  # asked: all open
    assert page_data(html.to_html(graph, None, Collapsed(collapse=2)))["collapse"] == 2
    groups = {g["name"]: g for g in data["groups"]}
    assert groups["net"]["ops"] == 20 and groups["block3"]["ops"] == 2 and groups["block3"]["depth"] == 2
    assert groups["block3"]["parent"] == groups["net"]["id"]
    assert groups["net"]["inner"] and not groups["block3"]["inner"]



def opened_and_drawn(open_page, path):
    """The page opened and drawn: the OpenedPage and its Playwright page."""
    opened = open_page(path)
    opened.page.wait_for_function(DRAWN, timeout=20_000)
    return opened, opened.page

def test_opened_at_depth_1_shows_the_top_level_modules_and_the_nodes_outside_them(resnet_page, open_page):
    model, path = resnet_page
    paths, readers, _ = onnx_modules(model.path)
    opened, page = opened_and_drawn(open_page, path)
    shown = visible(page)
    ops_in = Counter(p[0] for p in paths.values() if p)
    assert boxes(page) == {module for module, n in ops_in.items() if n > 1}  # a one-op module is drawn as its op
    assert {n["name"] for n in shown if n["kind"] == "op"} == {name for name, p in paths.items()
                                                               if not p or ops_in[p[0]] == 1}
    for node in shown:  # a tensor outside the boxes is read outside them, or from more than one
        if node["kind"] in ("input", "param", "constant"):
            read = {p[:1] for p in readers[node["name"]]}
            assert len(read) != 1 or () in read or ops_in[next(iter(read))[0]] == 1
    ends = page.evaluate("""() => { const net = window.cgtools.network, edges = window.cgtools.edges;
        return net.body.nodeIndices.filter(id => id.startsWith('T')).map(id => edges.get('E' + id.slice(1)))
            .map(e => [e.from, e.to]); }""")
    drawn = {n["id"] for n in shown}
    assert all(a in drawn and b in drawn for a, b in ends)  # an edge's label shows only with both its ends
    assert page.evaluate("document.getElementById('depth').value") == "1"
    assert opened.external_requests() == [] and opened.console_errors() == []


def test_a_click_opens_a_module_and_its_panel_closes_it_again(resnet_page, open_page):
    _, path = resnet_page
    opened, page = opened_and_drawn(open_page, path)
    at_depth_1 = sorted((n["id"], n["box"]) for n in visible(page))
    closed = boxes(page)
    click_node(page, group_id(page, "layer1"))
    assert boxes(page) == closed - {"layer1"} | {"layer1.0", "layer1.1"}
    click_node(page, group_id(page, "layer1.0"))
    conv = page.evaluate("""Object.keys(window.cgtools.data.info).find(k =>
        window.cgtools.data.info[k].name === '/layer1/layer1.0/relu/Relu')""")  # its module, relu, has one op
    at = page.evaluate("(id) => window.cgtools.network.getPosition(id)", conv)
    drawn_at = page.evaluate("(id) => window.cgtools.data.nodes.find(n => n.id === id)", conv)
    assert (at["x"], at["y"]) == pytest.approx((drawn_at["x"], drawn_at["y"]), abs=1)  # back where the layout put it
    click_node(page, conv)
    assert page.is_visible("#panel") and "Relu" in page.inner_text("#panel")
    page.click("#panel .groups button:text-is('layer1')")
    assert sorted((n["id"], n["box"]) for n in visible(page)) == at_depth_1
    page.select_option("#depth", "0")  # every module open: every node drawn
    assert boxes(page) == set() and len(visible(page)) == page.evaluate("window.cgtools.data.nodes.length")
    page.select_option("#depth", "1")
    assert sorted((n["id"], n["box"]) for n in visible(page)) == at_depth_1
    assert opened.console_errors() == []


def test_search_opens_the_modules_around_what_it_finds(resnet_page, open_page):
    _, path = resnet_page
    opened, page = opened_and_drawn(open_page, path)
    name = "/layer3/layer3.0/conv1/Conv"
    page.fill("#search", name)
    page.press("#search", "Enter")
    found = page.evaluate("window.cgtools.found")
    assert page.evaluate("window.cgtools.data.info[window.cgtools.found].name") == name
    assert page.evaluate("window.cgtools.network.getSelectedNodes()") == [found]
    shown = boxes(page)
    assert "layer3" not in shown and "layer3.0" not in shown and "layer3.1" in shown
    assert {"layer1", "layer2", "layer4"} <= shown  # the other modules stay closed
    assert found in {n["id"] for n in visible(page)}
    centre = page.evaluate("""() => { const n = window.cgtools.network, p = n.getPosition(window.cgtools.found);
        const v = n.getViewPosition(); return Math.hypot(p.x - v.x, p.y - v.y); }""")
    assert centre < 1
    assert opened.console_errors() == []


def test_an_edge_into_a_closed_module_carries_the_tensors_crossing_it(resnet_page, open_page):
    model, path = resnet_page
    _, readers, maker = onnx_modules(model.path)
    opened, page = opened_and_drawn(open_page, path)
    layer2 = group_id(page, "layer2")
    page.evaluate("(id) => window.cgtools.network.focus(id, {scale: 0.3, animation: false})", layer2)
    near = page.evaluate("""(id) => {  // a point on the edge from layer1's box, just outside layer2's
        const net = window.cgtools.network, layer1 = window.cgtools.data.groups.find(g => g.name === 'layer1').id;
        const edge = net.body.nodes[id].edges.find(e => e.fromId === layer1 && e.toId === id);
        const a = net.getPosition(layer1), b = net.getPosition(id), d = Math.hypot(a.x - b.x, a.y - b.y);
        const ux = (a.x - b.x) / d, uy = (a.y - b.y) / d, box = net.getBoundingBox(id);
        const out = Math.min((box.right - box.left) / Math.abs(ux), (box.bottom - box.top) / Math.abs(uy)) / 2 + 150;
        const p = net.canvasToDOM({x: b.x + ux * out, y: b.y + uy * out});
        const canvas = document.getElementById('canvas').getBoundingClientRect();
        return {x: canvas.left + p.x, y: canvas.top + p.y, edge: edge.id}; }""", layer2)
    assert not near["edge"].startswith("E")  # not one of the graph's edges: one standing for those crossing
    page.mouse.move(near["x"] - 20, near["y"] - 60)
    page.mouse.move(near["x"], near["y"], steps=4)
    page.wait_for_selector("#tip", state="visible", timeout=5_000)
    crossing = {t for t, read in readers.items() if maker.get(t, ())[:1] == ("layer1",)
                and any(p[:1] == ("layer2",) for p in read)}
    assert crossing and all(t in page.inner_text("#tip") for t in crossing)
    assert opened.console_errors() == []


def test_a_lecture_page_draws_no_boxes_and_hides_the_depth_picker(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    path = tmp_path / "mlp.html"
    path.write_bytes(draw(graph, graph.run(), Collapsed(collapse=1), fmt="html"))
    opened = open_page(path)
    page = opened.page
    page.wait_for_function(DRAWN)
    assert boxes(page) == set() and not page.is_visible("#depth")
    assert len(visible(page)) == page.evaluate("window.cgtools.data.nodes.length")
    assert opened.console_errors() == []
