"""The interactive page in a real browser: offline, counts, hover, step-through, search, injection."""

import cgtools
from cgtools.export import draw
from cgtools.export.html import vis_text
from cgtools.export.scene import View, make_scene
from helpers import EXAMPLES

DRAWN = "window.cgtools && window.cgtools.drawn"


def write_page(graph, run, tmp_path, name="graph.html", view=View()):
    path = tmp_path / name
    path.write_bytes(draw(graph, run, view, fmt="html"))
    return path


def edge_point(page, edge_id):
    """The screen position of an edge's midpoint."""
    return page.evaluate("""(id) => {
        const net = window.cgtools.network, e = window.cgtools.edges.get(id);
        const a = net.getPosition(e.from), b = net.getPosition(e.to);
        const p = net.canvasToDOM({x: (a.x + b.x) / 2, y: (a.y + b.y) / 2});
        const box = document.getElementById('canvas').getBoundingClientRect();
        return {x: box.left + p.x, y: box.top + p.y};
    }""", edge_id)


def edge_labels(page):
    """The label of every edge, wherever the page draws it (on the edge, or on a label node beside it)."""
    return page.evaluate("""window.cgtools.data.elements.filter(e => e.edge || e.node.startsWith('T'))
        .map(e => (e.edge ? window.cgtools.edges.get(e.edge) : window.cgtools.nodes.get(e.node)).label)""")


def edge_of(page, tensor):
    """The id of the (first) edge carrying `tensor`."""
    return page.evaluate("(t) => 'E' + window.cgtools.data.tensors.findIndex(s => s.head.split('\\n')[0] === t)",
                         tensor)


def test_page_is_offline_and_draws_every_node_and_edge(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    run = graph.run()
    opened = open_page(write_page(graph, run, tmp_path))
    opened.page.wait_for_function(DRAWN, timeout=20_000)
    D = make_scene(graph, run).graph
    counts = opened.page.evaluate("""[window.cgtools.nodes.get({filter: n => n.group !== 'label'}).length,
                                      window.cgtools.edges.length]""")
    assert counts == [D.number_of_nodes(), D.number_of_edges()]  # edge labels ride on extra 'label' nodes
    labels = opened.page.evaluate("window.cgtools.nodes.get({filter: n => n.group === 'label'}).length")
    assert opened.page.evaluate("window.cgtools.network.body.nodeIndices.length") == D.number_of_nodes() + labels
    assert opened.external_requests() == []
    assert opened.console_errors() == []


def test_hovering_an_edge_shows_its_value_and_gradient(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    opened = open_page(write_page(graph, graph.run(), tmp_path))
    page = opened.page
    page.wait_for_function(DRAWN)
    point = edge_point(page, edge_of(page, "d"))
    page.mouse.move(point["x"] - 30, point["y"] - 60)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.wait_for_selector("#tip", state="visible", timeout=5_000)
    tip = page.inner_text("#tip")
    assert "d" in tip and "value: 5" in tip and "∂e/∂d: 10" in tip and "float64 scalar" in tip
    assert opened.console_errors() == []


def test_step_through_replays_forward_then_backward(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    page = open_page(write_page(graph, graph.run(), tmp_path)).page
    page.wait_for_function(DRAWN)
    full = edge_labels(page)
    page.click("#first")
    bare = edge_labels(page)
    assert not any("=" in label for label in bare)  # the bare graph: no numbers
    assert "step 1/9" in page.inner_text("#caption")
    page.keyboard.press("ArrowRight")  # forward: Mul computes c
    first = edge_labels(page)
    assert any(label.startswith("c = 3") for label in first) and not any("d = 5" in label for label in first)
    assert not any("∂" in label for label in first)
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # through the forward pass, then the seed ∂e/∂e = 1
    seeded = edge_labels(page)
    assert any("∂e/∂e = 1" in label for label in seeded) and not any("∂e/∂d" in label for label in seeded)
    active = page.evaluate("window.cgtools.state.active")
    assert active is not None
    page.keyboard.press("ArrowRight")  # backward through Pow: ∂e/∂d appears
    assert any("∂e/∂d = 10" in label for label in edge_labels(page))
    assert not any("∂e/∂x" in label for label in edge_labels(page))
    page.keyboard.press("ArrowLeft")
    assert edge_labels(page) == seeded
    page.click("#all")
    assert edge_labels(page) == full


def test_search_focuses_the_named_node(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    page = open_page(write_page(graph, graph.run(), tmp_path)).page
    page.wait_for_function(DRAWN)
    page.fill("#search", "logits")
    page.press("#search", "Enter")
    found = page.evaluate("window.cgtools.found")
    assert page.evaluate("window.cgtools.network.getSelectedNodes()") == [found]
    assert page.evaluate("window.cgtools.data.info[window.cgtools.found].name") == "logits"
    centre = page.evaluate("""() => { const n = window.cgtools.network, p = n.getPosition(window.cgtools.found);
        const v = n.getViewPosition(); return Math.hypot(p.x - v.x, p.y - v.y); }""")
    assert centre < 1  # the view is centred on it
    assert page.is_visible("#panel") and "Add" in page.inner_text("#panel")
    page.fill("#search", "no-such-tensor")
    page.press("#search", "Enter")
    assert page.inner_text("#searchmiss") == "no such node"


def test_clicking_a_node_shows_op_attributes_inputs_outputs(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    page = open_page(write_page(graph, graph.run(), tmp_path)).page
    page.wait_for_function(DRAWN)
    node = page.evaluate("Object.keys(window.cgtools.data.info).find(k => window.cgtools.data.info[k].name === 'L')")
    point = page.evaluate("""(id) => { const n = window.cgtools.network, p = n.canvasToDOM(n.getPosition(id));
        const box = document.getElementById('canvas').getBoundingClientRect();
        return {x: box.left + p.x, y: box.top + p.y}; }""", node)
    page.mouse.click(point["x"], point["y"])
    panel = page.inner_text("#panel")
    assert "SoftmaxCrossEntropyLoss" in panel and "logits, labels" in panel and "outputs" in panel


def test_gradient_magnitude_colouring(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    page = open_page(write_page(graph, graph.run(), tmp_path)).page
    page.wait_for_function(DRAWN)
    page.check("#magnitude")
    colours = set(page.evaluate("window.cgtools.edges.get().map(e => e.color.color)"))
    assert len(colours) > 3 and "rms" in page.inner_text("#scale")
    page.uncheck("#magnitude")
    assert len(set(page.evaluate("window.cgtools.edges.get().map(e => e.color.color)"))) == 1


EVIL = '</script><script>window.pwned=1</script>" onmouseover="window.pwned=2" {{ 7*7 }} {% raw %}'


def test_injection_renders_literally(tmp_path, open_page, graphviz):
    doc = {"cgtools": "1.0", "name": EVIL, "doc": EVIL,
           "inputs": [{"name": EVIL, "value": 2.0, "doc": EVIL}],
           "constants": [{"name": "k" + EVIL, "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}],
           "nodes": [{"op": "Mul", "inputs": [EVIL, EVIL], "outputs": ["y" + EVIL], "doc": EVIL},
                     {"op": "Add", "inputs": ["y" + EVIL, "k" + EVIL], "outputs": ["z"], "name": "n" + EVIL},
                     {"op": "ReduceSum", "inputs": ["z"], "outputs": ["s"], "attrs": {"keepdims": 0}}],
           "outputs": ["s"]}
    graph = cgtools.load(doc)
    path = write_page(graph, graph.run(), tmp_path)
    assert "</script><script>window.pwned" not in path.read_text()
    opened = open_page(path)
    page = opened.page
    page.wait_for_function(DRAWN)
    assert page.evaluate("window.pwned") is None
    assert page.inner_text("#title") == EVIL  # shown literally, template syntax untouched
    assert page.evaluate("document.title").startswith(EVIL)
    labels = page.evaluate("window.cgtools.nodes.get().map(n => n.label)")
    assert any(vis_text(EVIL) in label for label in labels)  # drawn on the canvas as text, never as a mark
    page.fill("#search", "n" + EVIL)
    page.press("#search", "Enter")
    assert EVIL in page.inner_text("#panel")
    page.mouse.move(5, 300)
    assert page.evaluate("window.pwned") is None
    assert opened.external_requests() == [] and opened.console_errors() == []


def test_render_html_from_the_cli(tmp_path, cli, open_page, graphviz):
    out = tmp_path / "affine.html"
    result = cli("render", EXAMPLES / "affine_square.json", "-o", out)
    assert result.returncode == 0, result.stderr
    opened = open_page(out)
    opened.page.wait_for_function(DRAWN)
    assert opened.external_requests() == [] and opened.console_errors() == []


def test_too_large_a_graph_is_drawn_a_part_at_a_time_around_what_search_finds(tmp_path, open_page, monkeypatch,
                                                                                graphviz):
    from cgtools.export import html

    monkeypatch.setattr(html, "DRAW_LIMIT", 5)
    monkeypatch.setattr(html, "WINDOW", 4)
    graph = cgtools.load(EXAMPLES / "mlp_xent.json")
    opened = open_page(write_page(graph, graph.run(), tmp_path))
    page = opened.page
    page.wait_for_function(DRAWN)
    total = page.evaluate("window.cgtools.data.nodes.length")
    assert total > 5 and page.evaluate("window.cgtools.nodes.length") == 4
    assert f"{total} nodes: drawn 4 at a time" in page.inner_text("#legend")
    drawn = set(page.evaluate("window.cgtools.nodes.getIds()"))
    far_id = page.evaluate("(() => { const d = window.cgtools.data, ops = d.nodes.filter((n) => d.info[n.id]);"
                           " return ops.reduce((a, b) => (b[d.along] > a[d.along] ? b : a)).id; })()")
    far = page.evaluate(f"window.cgtools.data.info[{far_id!r}].name")
    assert far_id not in drawn
    page.fill("#search", far)
    page.press("#search", "Enter")
    found = page.evaluate("window.cgtools.found")
    assert found in page.evaluate("window.cgtools.nodes.getIds()") and page.inner_text("#panel h2") == far
    for button in ("#first", "#next", "#next", "#all"):  # the steps only touch what is drawn
        page.click(button)
    assert page.evaluate("window.cgtools.nodes.length") == 4 and opened.console_errors() == []


def test_shared_tensor_shares_step_in_as_each_reader_runs_back(tmp_path, open_page, graphviz):
    """square_times_3x: x feeds f = x² and g = 3x. Going backward, g runs first and adds 12, then f adds 24."""
    graph = cgtools.load(EXAMPLES / "square_times_3x.json")
    opened = open_page(write_page(graph, graph.run(per_use=True), tmp_path))
    page = opened.page
    page.wait_for_function(DRAWN)
    captions, labels = [], []
    page.click("#first")
    for _ in range(8):
        captions.append(page.inner_text("#caption"))
        labels.append(" | ".join(edge_labels(page)))
        page.keyboard.press("ArrowRight")
    at_g = captions.index("step 7/9: backward, g")
    assert "∂L/∂x += 12" in labels[at_g] and "∂L/∂x += 24" not in labels[at_g]
    assert "∂L/∂x += 24" in labels[at_g + 1]
    page.click("#all")
    point = edge_point(page, edge_of(page, "x"))
    page.mouse.move(point["x"] - 30, point["y"] - 60)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.wait_for_selector("#tip", state="visible")
    assert "∂L/∂x: 36" in page.inner_text("#tip") and "this read adds: 24" in page.inner_text("#tip")
    assert opened.console_errors() == []


def test_tooltip_follows_the_step(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    page = open_page(write_page(graph, graph.run(per_use=True), tmp_path)).page
    page.wait_for_function(DRAWN)
    page.click("#first")
    point = edge_point(page, edge_of(page, "c"))
    page.mouse.move(point["x"] - 30, point["y"] - 60)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.wait_for_selector("#tip", state="visible")
    tip = page.inner_text("#tip")
    assert tip.startswith("c") and "value" not in tip and "∂" not in tip  # no spoilers on the bare graph


def test_names_with_ampersands_and_brackets_draw(tmp_path, open_page, graphviz):
    name = "Q&A [x(*"
    doc = {"cgtools": "1.0", "inputs": [{"name": name, "value": 2.0}],
           "nodes": [{"op": "Neg", "inputs": [name], "outputs": ["<b>y</b> & <i>"]}], "outputs": ["<b>y</b> & <i>"]}
    graph = cgtools.load(doc)
    opened = open_page(write_page(graph, graph.run(), tmp_path))
    opened.page.wait_for_function(DRAWN, timeout=10_000)
    assert opened.console_errors() == []
    labels = opened.page.evaluate("window.cgtools.nodes.get().map(n => n.label)")
    assert any(vis_text(name) in label for label in labels)


def test_forward_only_page_steps_through_values(tmp_path, open_page, graphviz):
    graph = cgtools.load(EXAMPLES / "affine_square.json")
    page = open_page(write_page(graph, graph.run(backward=False), tmp_path)).page
    page.wait_for_function(DRAWN)
    page.click("#first")
    assert not any("=" in label for label in edge_labels(page))
    page.keyboard.press("ArrowRight")
    assert any(label.startswith("c = 3") for label in edge_labels(page))
