"""Drawing model-sized graphs: weights listed inside their ops, modules collapsed to boxes, the neighbourhood of
one node, and a layout that is bounded in time (DenseNet-121)."""

import re
from collections import Counter

import onnx
import pytest

import cgtools
from cgtools.export import layout
from cgtools.export.dot import to_dot
from cgtools.export.grouping import diagram_scene
from cgtools.export.html import to_html
from cgtools.export.labels import format_tensor
from cgtools.export.scene import DEFAULT_SHOW, View

TB = View(rankdir="TB")


def kinds(scene) -> Counter:
    return Counter(data["kind"] for _, data in scene.graph.nodes(data=True))


def chain(n: int = 6, scope=None) -> cgtools.Graph:
    """x → t1 → … → tn (Neg, Exp alternately), each op named op1…opn, with a param added at op3."""
    nodes, prev = [], "x"
    for i in range(1, n + 1):
        inputs = [prev, "w"] if i == 3 else [prev]
        node = {"name": f"op{i}", "op": "Add" if i == 3 else ("Neg", "Tanh")[i % 2], "inputs": inputs,
                "outputs": [f"t{i}"]}
        if scope:
            node["scope"] = scope(i)
        nodes.append(node)
        prev = f"t{i}"
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": "x", "value": 0.5}],
                         "params": [{"name": "w", "value": 2.0}], "nodes": nodes, "outputs": [prev]})


# ---- weights inside their ops ------------------------------------------------------------------------------


@pytest.mark.slow
def test_resnet18s_weights_are_listed_inside_their_ops(exported):
    model = exported("resnet18")
    graph = cgtools.load(model.path)
    scene = diagram_scene(graph, graph.run(graph.random_inputs(), backward=False), TB)
    conv1 = next(data for _, data in scene.graph.nodes(data=True) if data["model"] == "/conv1/Conv")
    (weight,) = [t for t in conv1["weights"] if graph.leaves.get(t) is not None]
    expected = "×".join(map(str, model.model.conv1.weight.shape))  # 64×3×7×7, from PyTorch
    assert f"{weight.rsplit('.', 1)[-1]} {expected}" in [line.text for line in conv1["lines"]]
    assert expected in "".join(conv1["hover"]) and "μ=" in "".join(conv1["hover"])  # values in the tooltip
    drawn = {data["model"] for _, data in scene.graph.nodes(data=True)}
    listed = {t for _, data in scene.graph.nodes(data=True) for t in data.get("weights", ())}
    convs = [n for n in graph.nodes if n.op == "Conv"]
    assert all(n.inputs[1] in listed and n.inputs[1] not in drawn for n in convs)
    assert kinds(scene)["param"] < 10  # of 62 params: only those an op reads alongside others stay nodes


@pytest.mark.slow
def test_leaves_brings_every_weight_back_as_a_node(exported):
    graph = cgtools.load(exported("resnet18").path)
    scene = diagram_scene(graph, view=View(rankdir="TB", show=DEFAULT_SHOW | {"leaves"}))
    assert kinds(scene)["param"] == len(graph.leaves_of("param"))
    assert kinds(scene)["op"] == len(graph.nodes)
    assert not any(data.get("weights") for _, data in scene.graph.nodes(data=True))


def test_a_lecture_graph_keeps_its_weights_as_nodes():
    graph = chain()
    assert to_dot(graph, graph.run()) == to_dot(graph, graph.run(), View(show=DEFAULT_SHOW | {"leaves"}))
    assert kinds(diagram_scene(graph))["param"] == 1


def test_a_model_sized_graphs_weight_is_listed_in_its_ops_box_tooltip_and_page_panel():
    graph = chain(45)  # 45 ops: model-sized
    run = graph.run()
    dot = to_dot(graph, run, TB)
    assert not re.search(r"^L\d+ \[label=<<B>w</B>", dot, re.M) and "w scalar" in dot  # inside op3's box
    said = f"param w: float64 scalar = 2; ∂t45/∂w = {format_tensor(run.grads['w'])}"
    assert f'tooltip="Add op3\\n{said}"' in dot
    assert f'["weight","{said}"]' in to_html(graph, run, TB)
    assert "nslimit" not in dot and "nslimit=2" in to_dot(chain(160), view=TB)  # a big graph's layout is bounded


# ---- modules as boxes --------------------------------------------------------------------------------------


def onnx_modules(path) -> tuple[Counter, set]:
    """From the ONNX file alone: each top-level module's op count (node names /module/…/Op), and the tensors
    made in one module and read in another, as (maker's module, reader's module, tensor)."""
    model = onnx.load(str(path))
    module = {node.name: node.name.split("/")[1] for node in model.graph.node if node.name.count("/") >= 2}
    counts = Counter(module.values())
    made_in = {out: module.get(node.name) for node in model.graph.node for out in node.output}
    crossing = {(made_in[t], module[node.name], t) for node in model.graph.node for t in node.input
                if node.name in module and made_in.get(t) and made_in[t] != module[node.name]}
    return counts, crossing


@pytest.mark.slow
def test_collapse_1_draws_resnet18s_top_level_modules(exported):
    model = exported("resnet18")
    counts, crossing = onnx_modules(model.path)
    graph = cgtools.load(model.path)
    scene = diagram_scene(graph, graph.run(graph.random_inputs(), backward=False), View(rankdir="TB", collapse=1))
    groups = {key: data for key, data in scene.graph.nodes(data=True) if data["kind"] == "group"}
    found = {data["model"]: int(data["lines"][1].text.split()[0]) for data in groups.values()}
    assert found == dict(counts)
    assert {"conv1", "layer1", "layer4", "fc"} <= set(found)
    names = {key: data["model"] for key, data in groups.items()}
    drawn = {(names[u], names[v], t) for u, v, t in scene.graph.edges(data="tensor") if u in names and v in names}
    assert drawn == crossing
    values = [lines for u, v, lines in scene.graph.edges(data="lines") if u in names and v in names]
    assert all(any(line.role == "value" for line in lines) for lines in values)  # still carrying the values


def test_collapse_keeps_nodes_with_a_shorter_scope_and_a_graph_without_scopes_is_drawn_flat(cli, tmp_path):
    graph = chain(scope=lambda i: ["block"] if i <= 4 else [])
    scene = diagram_scene(graph, graph.run(), View(collapse=1))
    groups = [data for _, data in scene.graph.nodes(data=True) if data["kind"] == "group"]
    assert [(g["model"], g["lines"][1].text) for g in groups] == [("block", "4 ops")]
    assert {data["model"] for _, data in scene.graph.nodes(data=True) if data["kind"] == "op"} == {"op5", "op6"}
    path = tmp_path / "flat.json"
    chain().save(path)
    done = cli("render", path, "--collapse", "2", "-o", tmp_path / "flat.dot")
    assert done.returncode == 0 and "no module scopes" in done.stderr and "draws it flat" in done.stderr
    assert "G0" not in (tmp_path / "flat.dot").read_text()


# ---- the neighbourhood of a node ----------------------------------------------------------------------------


def test_focus_keeps_what_lies_within_depth_edges_and_stubs_the_cut_ends():
    graph = chain()
    scene = diagram_scene(graph, graph.run(), View(focus="op3", depth=1))
    nodes = scene.graph.nodes(data=True)
    assert {data["model"] for _, data in nodes if not data.get("stub")} == {"op2", "op3", "op4", "w"}
    assert {data["model"] for _, data in nodes if data.get("stub")} == {"op1", "op5"}
    by_tensor = diagram_scene(graph, graph.run(), View(focus="t3", depth=0))  # a tensor: its maker and reader
    assert {data["model"] for _, data in by_tensor.graph.nodes(data=True) if not data.get("stub")} == {"op3", "op4"}


@pytest.mark.slow
def test_focus_on_resnet18_keeps_the_ops_two_edges_away(exported):
    model = exported("resnet18")
    onnx_graph = onnx.load(str(model.path)).graph
    weights = {i.name for i in onnx_graph.initializer}
    ops = [n for n in onnx_graph.node if not (n.op_type == "Identity" and n.input[0] in weights)]
    makers = {out: n.name for n in ops for out in n.output}
    edges = {(makers[t], n.name) for n in ops for t in n.input if t in makers}
    up = {"/layer2/layer2.0/Add"}
    down = set(up)
    for _ in range(2):  # two edges up and two down, from the ONNX file alone
        up |= {u for u, v in edges if v in up}
        down |= {v for u, v in edges if u in down}
    graph = cgtools.load(model.path)
    scene = diagram_scene(graph, view=View(rankdir="TB", focus="/layer2/layer2.0/Add"))
    assert {data["model"] for _, data in scene.graph.nodes(data=True) if not data.get("stub")} == up | down


def test_render_errors_for_collapse_and_focus(cli, tmp_path):
    path = tmp_path / "chain.json"
    chain().save(path)
    for args, said in ((["--collapse", "0"], "--collapse a depth of 1 or more"),
                       (["--collapse", "-2"], "--collapse a depth of 1 or more"),
                       (["--focus", "op33"], "no node or tensor named 'op33' (did you mean 'op3'?)"),
                       (["--focus", "op3", "--depth", "-1"], "--depth 0 or more"),
                       (["--depth", "3"], "give --focus too")):
        done = cli("render", path, *args, "-o", tmp_path / "out.dot")
        assert done.returncode == 1 and done.stderr.startswith("error: ") and said in done.stderr
        assert "Traceback" not in done.stderr


# ---- a layout that never hangs -----------------------------------------------------------------------------


def svg_node_ids(svg: bytes) -> set:
    return set(re.findall(r'<g id="node\d+" class="node">\s*<title>([^<]+)</title>', svg.decode()))


@pytest.mark.usefixtures("graphviz")
def test_a_layout_over_its_time_budget_falls_back_to_the_layered_layout(monkeypatch):
    graph = chain(30)
    scene = diagram_scene(graph, graph.run(), TB)
    monkeypatch.setattr(layout, "DOT_BUDGET", 1e-4)
    with pytest.warns(UserWarning, match="took more than .* laid out by cgtools' layered layout"):
        svg = layout.drawing(scene, "svg")
    assert svg_node_ids(svg) == set(scene.graph.nodes)


@pytest.mark.slow
@pytest.mark.usefixtures("graphviz")
def test_densenet121_renders_to_svg_in_seconds(exported, cli, tmp_path):
    import time

    path = exported("densenet121").path
    start = time.perf_counter()
    done = cli("render", path, "-o", tmp_path / "d.svg")
    took = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert took < 60  # was more than 600 s inside Graphviz; the budget is 10 s on an idle machine
    assert "layered layout" in done.stderr
    svg = (tmp_path / "d.svg").read_bytes()
    graph = cgtools.load(path)
    assert len(svg_node_ids(svg)) == diagram_scene(graph, view=TB).graph.number_of_nodes()
