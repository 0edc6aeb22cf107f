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

from cgtools.export.dot import FORWARD, NOTHING, Reveal, View, display_graph
from cgtools.export.frames import schedule
from cgtools.export.labels import format_shape, format_tensor
from cgtools.export.layout import positions
from cgtools.export.themes import theme
from cgtools.memory import collector_paused

DRAW_LIMIT = 25_000  # nodes; past this the page asks before drawing rather than hang the tab
LIGHT_FROM = 1_500  # nodes; past this edge labels appear only on hover or when zoomed in
TOOLTIP_ELEMENTS = 64  # a hovered tensor is written out up to this size, summarised past it
# vis-network's html mode has three marks, each with its own font: <b>, <i> and <code>. Which role wears
# which differs between node labels (b: symbols and params, i: names, code: gradients) and edge labels
# (i: gradients, code: NaN alerts); the page gives each mark its theme colour.
NODE_MARKS = {"bold": "b", "symbol": "b", "title": "b", "muted": "i", "grad": "code", "alert": "code",
              "alert_grad": "code"}
EDGE_MARKS = {"grad": "i", "alert": "code", "alert_grad": "code"}


def vis_text(text: str) -> str:
    """User text that vis-network's html mode draws as it is: no & at all (its entity decoding turns a label
    with & into a regular expression, which "(" or "[" break) and no "<" it could read as a tag."""
    return text.replace("&", "＆").replace("<", "<\u2060")


def vis_label(lines: list[tuple[str, str]], *, node: bool = False) -> str:
    """Label lines in vis-network's html mode, which reads only those marks."""
    marks = NODE_MARKS if node else EDGE_MARKS
    out = []
    for text, role in lines:
        text = vis_text(text) if role != "blank" else " "
        mark = marks.get(role)
        out.append(f"<{mark}>{text}</{mark}>" if mark else text)
    return "\n".join(out)


def tensor_text(name: str, value, grad, loss: str | None, share=None) -> dict:
    """What hovering an edge shows, in parts the page reveals with the steps: the tensor's name and type, its
    value, its gradient (and for one read of a shared tensor, what this read adds), written out up to
    TOOLTIP_ELEMENTS elements and summarised past that."""
    text = {"head": name + (f"\n{value.dtype} {format_shape(value.shape)}" if value is not None else "")}
    if value is not None:
        text["value"] = "value: " + format_tensor(value, 6, inline=TOOLTIP_ELEMENTS)
    if grad is not None and loss is not None:
        text["grad"] = f"∂{loss}/∂{name}: " + format_tensor(grad, 6, inline=TOOLTIP_ELEMENTS)
        if share is not None:
            text["grad"] += "\nthis read adds: " + format_tensor(share, 6, inline=TOOLTIP_ELEMENTS)
    return text


def grad_magnitude(grad) -> float | None:
    """log10 of the gradient's root mean square, for colouring edges; None when there is none or it is 0."""
    if grad is None or grad.size == 0:
        return None
    rms = float(np.sqrt(np.mean(np.square(grad, dtype=np.float64))))
    return round(math.log10(rms), 3) if rms > 0 and math.isfinite(rms) else None


def to_html(graph, run=None, view: View = View()) -> str:
    """The interactive page of `graph` (with a run's values and gradients)."""
    with collector_paused():
        return page(graph, run, view)


def page(graph, run, view: View) -> str:
    from pyvis.network import Network

    t = theme(view.theme)
    plan = schedule(graph, run)
    # The three label stages of every element: nothing yet, values, everything. Steps pick among them.
    stages = [display_graph(graph, run, view, reveal) for reveal in (NOTHING, FORWARD, Reveal())]
    D = stages[2]
    where, label_at = positions(D, view.rankdir)
    big = D.number_of_nodes() > LIGHT_FROM
    net = Network(directed=True)
    net.node_ids = _IdList()  # pyvis checks membership in a list on every add: quadratic without this
    node_variants = [list(S.nodes(data="_lines")) for S in stages]
    edge_variants = [[lines for _, _, lines in S.edges(data="_lines")] for S in stages]

    info, ids, elements = {}, {}, []
    for k, (key, data) in enumerate(D.nodes(data=True)):
        kind, model = data["_kind"], data["_model"]
        ids[(kind, model)] = key
        x, y = where[key]
        labels = [vis_label(variant[k][1], node=True) for variant in node_variants]
        net.add_node(key, label=labels[2], x=x, y=y, shape="ellipse" if kind == "op" else "box",
                     color={"background": t["fill"][kind], "border": t["line"]},
                     shapeProperties={"borderDashes": kind == "constant"},
                     borderWidth=3 if data.get("peripheries") == 2 else 1.5)
        info[key] = node_info(graph, model, kind, run)
        if labels[0] != labels[2]:  # a node that carries a shared tensor's value and gradient
            made = graph_tensors(graph, model, kind)
            elements.append({"node": key, "labels": labels, "value": min(plan.value_step.get(n, 0) for n in made),
                             "grad": max(plan.grad_step.get(n, len(plan.active)) for n in made)})

    values = run.values if run is not None else {}
    grads = run.grads if run is not None else {}
    loss = run.loss if run is not None else None
    tensors, magnitudes = [], []
    never = len(plan.active)  # a step past the last: what a forward-only run never shows
    for i, (u, v, data) in enumerate(D.edges(data=True)):
        name = data["_tensor"]
        labels = [vis_label(variant[i]) for variant in edge_variants]
        # this read of the tensor: (reading node, input slot), for its share of a shared tensor's gradient
        use = (D.nodes[v]["_model"], data["_slot"]) if D.nodes[v]["_kind"] == "op" and data["_shared"] else None
        element = {"edge": f"E{i}", "labels": labels, "value": plan.value_step.get(name, 0),
                   "grad": plan.use_step.get(use, plan.grad_step.get(name, never))}
        label = labels[2]
        if label_at is not None and label_at[i] is not None and label:  # where Graphviz put the label
            x, y = label_at[i]
            net.add_node(f"T{i}", label=label, x=x, y=y, shape="text", group="label")
            del element["edge"]
            element["node"], label = f"T{i}", ""
        elements.append(element)
        share = run.use_grads.get(use) if run is not None and use else None
        tensors.append(tensor_text(name, values.get(name), grads.get(name), loss, share))
        magnitudes.append(grad_magnitude(grads.get(name)))
        net.add_edge(u, v, id=f"E{i}", label="" if big else label,
                     **({"color": {"color": t["alert"]}, "width": 2.5} if "color" in data else {}))

    nodes, edges, *_ = net.get_network_data()
    doc = {
        "title": graph.name or (graph.path or "graph"), "doc": graph.doc, "theme": t, "light": big,
        "nodes": nodes, "edges": edges, "info": info, "elements": elements, "tensors": tensors,
        "gradMagnitudes": magnitudes, "loss": loss, "limit": DRAW_LIMIT,
        "steps": [{"caption": caption(k, plan, len(graph.nodes)), "active": ids.get(active)}
                  for k, active in enumerate(plan.active)] if run is not None else [],
    }
    return fill_template(doc)


def graph_tensors(graph, model: str, kind: str) -> list[str]:
    """The tensors a display node stands for: a leaf's own, an op's outputs."""
    if kind == "op":
        return next(n for n in graph.nodes if n.name == model).outputs
    return [model]


def caption(k: int, plan, n_ops: int) -> str:
    total = len(plan.active)
    where = f"step {k + 1}/{total}"
    if k == 0:
        return f"{where}: the graph"
    if k == total - 1:
        return f"{where}: everything"
    kind, name = plan.active[k]
    if k <= n_ops:
        return f"{where}: forward, {name}"
    if kind == "output":
        return f"{where}: backward starts, ∂{name}/∂{name} = 1"
    return f"{where}: backward, {name}"


def node_info(graph, model: str, kind: str, run) -> dict:
    """What a click on a node shows: for an op, its type, attributes, inputs and outputs; for a leaf, its
    tensor."""
    if kind == "op":
        node = next(n for n in graph.nodes if n.name == model)
        rows = [["op", node.op],
                *[[f"attribute {k}", format_tensor(v) if isinstance(v, np.ndarray) else json.dumps(v)]
                  for k, v in node.attrs.items()],
                ["inputs", ", ".join(t or "∅" for t in node.inputs)], ["outputs", ", ".join(node.outputs)]]
        if node.doc:
            rows.append(["doc", node.doc])
        return {"name": model, "kind": kind, "rows": rows}
    rows = [["kind", kind]]
    leaf = graph.leaves.get(model)
    if leaf is not None and leaf.doc:
        rows.append(["doc", leaf.doc])
    if run is not None and model in run.values:
        value = run.values[model]
        rows += [["tensor", f"{value.dtype} {format_shape(value.shape)}"],
                 ["value", format_tensor(value, 6, inline=TOOLTIP_ELEMENTS)]]
        if model in run.grads:
            rows.append([f"∂{run.loss}/∂{model}", format_tensor(run.grads[model], 6, inline=TOOLTIP_ELEMENTS)])
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
