"""One self-contained, offline HTML page: the network built with pyvis, drawn by vis-network, in cgtools'
own template (pyvis's loads Bootstrap from a CDN even "in_line").

Labels come from the same display graph as the DOT output, so both speak alike. User strings reach the
page only inside one JSON block, with <, > and & escaped, and are put on screen with textContent or as
canvas text: nothing the graph holds can become markup or script.
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources

import numpy as np

from cgtools.export.dot import Reveal, View, display_graph, edge_lines
from cgtools.export.frames import schedule
from cgtools.export.labels import format_shape, format_tensor
from cgtools.export.layout import positions
from cgtools.export.themes import theme

DRAW_LIMIT = 25_000  # nodes; past this the page asks before drawing rather than hang the tab
LIGHT_FROM = 1_500  # nodes; past this edge labels appear only on hover or when zoomed in
TOOLTIP_ELEMENTS = 64  # a hovered tensor is written out up to this size, summarised past it
VIS_ROLE = {"bold": "b", "symbol": "b", "muted": "i", "grad": "i", "alert": "code"}  # vis-network's html marks


def vis_label(lines: list[tuple[str, str]]) -> str:
    """Label lines in vis-network's html mode, which reads only <b>, <i>, <code>, &lt; and &amp;."""
    out = []
    for text, role in lines:
        text = text.replace("&", "&amp;").replace("<", "&lt;") if role != "blank" else " "
        mark = VIS_ROLE.get(role)
        out.append(f"<{mark}>{text}</{mark}>" if mark else text)
    return "\n".join(out)


def tensor_text(name: str, value, grad, loss: str | None) -> str:
    """What hovering an edge shows: the whole tensor, summarised past TOOLTIP_ELEMENTS."""
    lines = [name]
    if value is not None:
        lines.append(f"{value.dtype} {format_shape(value.shape)}")
        lines.append("value: " + format_tensor(value, 6, inline=TOOLTIP_ELEMENTS))
    if grad is not None and loss is not None:
        lines.append(f"∂{loss}/∂{name}: " + format_tensor(grad, 6, inline=TOOLTIP_ELEMENTS))
    return "\n".join(lines)


def grad_magnitude(grad) -> float | None:
    """log10 of the gradient's root mean square, for colouring edges; None when there is none or it is 0."""
    if grad is None or grad.size == 0:
        return None
    rms = float(np.sqrt(np.mean(np.square(grad, dtype=np.float64))))
    return round(math.log10(rms), 3) if rms > 0 and math.isfinite(rms) else None


def to_html(graph, run=None, view: View = View()) -> str:
    """The interactive page of `graph` (with a run's values and gradients)."""
    from pyvis.network import Network

    t = theme(view.theme)
    D = display_graph(graph, run, view)
    where = positions(D, view.rankdir)
    big = D.number_of_nodes() > LIGHT_FROM
    net = Network(directed=True)
    net.node_ids = _IdList()  # pyvis checks membership in a list on every add: quadratic without this

    info, ids = {}, {}
    for key, data in D.nodes(data=True):
        ids[data["_model"]] = key
        kind = data["_kind"]
        x, y = where[key]
        dashed = kind == "constant"
        net.add_node(key, label=vis_label(data["_lines"]), x=x, y=y, shape="ellipse" if kind == "op" else "box",
                     color={"background": t["fill"][kind], "border": t["line"]}, shapeProperties={"borderDashes":
                                                                                               dashed},
                     borderWidth=3 if data.get("peripheries") == 2 else 1.5)
        info[key] = node_info(graph, data["_model"], kind)

    loss = run.loss if run is not None else None
    values = run.values if run is not None else {}
    grads = run.grads if run is not None else {}
    plan = schedule(graph, run)
    never = len(plan.active)
    bare, forward = Reveal(values=frozenset(), grads=frozenset(), seeded=False), Reveal(grads=frozenset(), seeded=False)
    stages, tensors, magnitudes = [], [], []
    for i, (u, v, data) in enumerate(D.edges(data=True)):
        name = data["_tensor"]
        value, grad = values.get(name), grads.get(name)
        variants = [vis_label(edge_lines(name, value, grad, loss, view, r)) for r in (bare, forward, Reveal())]
        stages.append([*variants, plan.value_step.get(name, never), plan.grad_step.get(name, never)])
        tensors.append(tensor_text(name, value, grad, loss))
        magnitudes.append(grad_magnitude(grad))
        net.add_edge(u, v, id=f"E{i}", label="" if big else variants[2],
                     **({"color": {"color": t["alert"]}} if "color" in data else {}))

    nodes, edges, *_ = net.get_network_data()
    doc = {
        "title": graph.name or (graph.path or "graph"), "doc": graph.doc, "theme": t, "light": big,
        "nodes": nodes, "edges": edges, "info": info, "stages": stages, "tensors": tensors,
        "gradMagnitudes": magnitudes, "loss": loss, "limit": DRAW_LIMIT,
        "steps": [{"caption": caption(k, plan, len(graph.nodes)), "active": ids.get(active)}
                  for k, active in enumerate(plan.active)] if run is not None else [],
    }
    return fill_template(doc)


def caption(k: int, plan, n_ops: int) -> str:
    total = len(plan.active)
    if k == 0:
        return f"step 1/{total}: the graph"
    if k <= n_ops:
        return f"step {k + 1}/{total}: forward, {plan.active[k]}"
    if k == n_ops + 1:
        return f"step {k + 1}/{total}: backward starts, ∂{plan.active[k]}/∂{plan.active[k]} = 1"
    return f"step {k + 1}/{total}: backward, {plan.active[k]}"


def node_info(graph, model: str, kind: str) -> dict:
    """What a click on a node shows: for an op, its type, attributes, inputs and outputs."""
    if kind == "op":
        node = next(n for n in graph.nodes if n.name == model)
        rows = [["op", node.op], *[[f"attribute {k}", json.dumps(v)] for k, v in node.attrs.items()],
                ["inputs", ", ".join(t or "∅" for t in node.inputs)], ["outputs", ", ".join(node.outputs)]]
        if node.doc:
            rows.append(["doc", node.doc])
        return {"name": model, "kind": kind, "rows": rows}
    rows = [["kind", kind]]
    leaf = graph.leaves.get(model)
    if leaf is not None and leaf.doc:
        rows.append(["doc", leaf.doc])
    return {"name": model, "kind": kind, "rows": rows}


class _IdList(list):
    """A list of node ids with set-speed membership (pyvis only appends to it and asks `in`)."""

    def __init__(self):
        super().__init__()
        self._members = set()

    def append(self, item):
        super().append(item)
        self._members.add(item)

    def __contains__(self, item):
        return item in self._members


def script_json(doc) -> str:
    """JSON that is safe inside a <script> element: no </script>, no <!--, no & entities."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(
        ">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def fill_template(doc: dict) -> str:
    page = resources.files("cgtools.export").joinpath("page.html").read_text(encoding="utf-8")
    vis = resources.files("pyvis").joinpath("lib/vis-9.1.2/vis-network.min.js").read_text(encoding="utf-8")
    parts = {"/*CGTOOLS_DATA*/": script_json(doc), "/*VIS_NETWORK*/": vis.replace("</script", "<\\/script")}
    # one pass over the template only: text inserted for one marker is never searched for another
    return re.sub("|".join(re.escape(m) for m in parts), lambda m: parts[m.group(0)], page)
