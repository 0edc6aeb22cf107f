"""One self-contained, offline HTML page drawn by vis-network (the copy pyvis ships), in cgtools' own template
(pyvis's loads Bootstrap from a CDN even "in_line").

The page's data is compact, for graphs of 100,000 nodes: a node names its look by its index in a table of the
few looks there are, an edge carries its ends and its id only; the page fills in the rest.

Labels come from the same scene as the DOT output, so both speak alike: the page reads the roles of the
scene's label lines and makes its own marks of them. User strings reach the
page only inside one JSON block, with <, > and & escaped, and are put on screen with textContent or as
canvas text: nothing the graph holds can become markup or script.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from importlib import resources

import numpy as np

from cgtools.export.colours import MEASURES, edge_colours
from cgtools.export.grouping import diagram_scene
from cgtools.export.hierarchy import Scope, common_prefix, has_hierarchy, scopes
from cgtools.export.labels import format_tensor, format_type
from cgtools.export.layout import positions
from cgtools.export.scene import FORWARD, NOTHING, Reveal, Scene, Schedule, View, alerting, schedule
from cgtools.export.themes import theme
from cgtools.export.tips import TOOLTIP_ELEMENTS, Numbers, compact_tip, packable
from cgtools.memory import collector_paused

DRAW_LIMIT = 25_000  # nodes; past this the page draws WINDOW of them at a time (vis-network: ~0.4 ms a node)
WINDOW = 2_000  # nodes; the part of a larger graph the page draws, around the node search finds
LIGHT_FROM = 1_500  # nodes; past this edge labels appear only on hover or when zoomed in
GROUP_FROM = 300  # nodes; a model this big with a hierarchy opens grouped at depth 1 unless a depth is asked
# vis-network's html mode has three marks, each with its own font: <b>, <i> and <code>. Which role wears
# which differs between node labels (b: symbols and params, i: names, code: gradients) and edge labels
# (i: gradients, code: NaN alerts); the page gives each mark its theme colour. The steps pick among
# the labels at the STAGES (nothing yet, values, everything) by when each value and gradient appears.
NODE_MARKS = {"param": "b", "output": "b", "symbol": "b", "title": "b", "names": "i", "shape": "i", "loss": "i",
              "doc": "i", "grad": "code", "share": "code", "alert": "code", "alert_grad": "code", "alert_share": "code"}
EDGE_MARKS = {"grad": "i", "share": "i", "alert": "code", "alert_grad": "code", "alert_share": "code"}
STAGES = (NOTHING, FORWARD, Reveal())  # what the page's labels can show: nothing yet, values, everything


def vis_text(text: str) -> str:
    """User text that vis-network's html mode draws as it is: no & at all (its entity decoding turns a label
    with & into a regular expression, which "(" or "[" break) and no "<" it could read as a tag."""
    return text.replace("&", "＆").replace("<", "<\u2060")


def vis_label(lines: list[tuple[str, str]], *, node: bool = False) -> str:
    """Label lines in vis-network's html mode, which reads only those marks."""
    marks = NODE_MARKS if node else EDGE_MARKS
    return "\n".join([vis_line(text, role, marks) for text, role in lines])


def vis_line(text: str, role: str, marks: dict) -> str:
    text = vis_text(text) if role != "blank" else " "
    mark = marks.get(role)
    return f"<{mark}>{text}</{mark}>" if mark else text


def tensor_text(name: str, value, grad, loss: str | None, share=None) -> dict:
    """What hovering an edge shows, in parts the page reveals with the steps: the tensor's name and type, its
    value, its gradient (and for one read of a shared tensor, what this read adds), written out up to
    TOOLTIP_ELEMENTS elements and summarised past that."""
    text = {"head": name + ("\n" + format_type(value) if value is not None else "")}
    if value is not None:
        text["value"] = "value: " + format_tensor(value, 6, inline=TOOLTIP_ELEMENTS)
    if grad is not None and loss is not None:
        text["grad"] = f"∂{loss}/∂{name}: " + format_tensor(grad, 6, inline=TOOLTIP_ELEMENTS)
        if share is not None:
            text["grad"] += "\nthis read adds: " + format_tensor(share, 6, inline=TOOLTIP_ELEMENTS)
    return text


def page_colouring(scene: Scene, t: dict) -> dict:
    """The page's colourings: per measure the edges have, each edge's colour and the legend; which one the
    page starts on ("" for none)."""
    found = [data["measures"] for *_, data in scene.graph.edges(data=True)]
    measures = {}
    for measure in MEASURES:
        coloured = edge_colours(found, measure, t, scene.view.colouring.against)
        if coloured:
            colours, legend = coloured
            measures[measure] = {"colours": colours, "title": legend.title, "ticks": legend.ticks,
                                 "grey": legend.grey, "alert": legend.alert}
    return {"by": scene.view.colouring.by, "measures": measures, "unmeasured": t["unmeasured"]}


def to_html(graph, run=None, view: View = View()) -> str:
    """The interactive page of `graph` (with a run's values and gradients)."""
    with collector_paused():  # the scene is gone by the time the page's text is made: a third less memory
        return fill_template(page_json(page_doc(graph, run, view)))


def page_doc(graph, run, view: View) -> dict:
    """What the page shows, as the data its script reads."""
    t = theme(view.theme)
    plan = schedule(graph, run)
    scene = diagram_scene(graph, run, flat(view))  # focused if asked; the page groups by module itself
    where, label_at = positions(scene)
    big = scene.graph.number_of_nodes() > LIGHT_FROM
    ids, elements, nodes, styles = page_nodes(scene, plan, where, t)
    info = nodes_info(scene, graph, run)
    for key, data in scene.graph.nodes(data=True):  # weights listed inside an op: their values in its panel
        hover, weights = data["hover"], data.get("weights", ())
        info[key]["rows"] += [["weight", text] for text in hover[len(hover) - len(weights):]]
    numbers = Numbers() if big and run is not None else None  # tooltips as numbers the page writes out
    edge_elements, tensors, label_nodes, edges = page_edges(scene, plan, run, label_at, big, t, numbers)
    packed = numbers.text() if numbers is not None else ""
    if packed is None:  # a NaN or an infinity: the tooltips as text
        packed = ""
        edge_elements, tensors, label_nodes, edges = page_edges(scene, plan, run, label_at, big, t, None)
    elements += edge_elements
    nodes += label_nodes
    return {
        "title": graph.name or (graph.path or "graph"), "doc": graph.doc, "theme": t, "light": big,
        "nodes": nodes, "styles": styles, "edges": edges, "info": info, "elements": elements, "tensors": tensors,
        "colouring": page_colouring(scene, t), "loss": run.loss if run is not None else None, "limit": DRAW_LIMIT,
        "window": WINDOW, "along": "x" if scene.view.rankdir in ("LR", "RL") else "y",
        "numbers": packed,
        **page_groups(graph, scene, where, nodes, getattr(view, "collapse", None)),
        "steps": page_steps(plan, ids, len(graph.nodes)) if run is not None else {"active": [], "names": []},
    }


def nodes_info(scene: Scene, graph, run) -> dict:
    """What a click on each node shows; a node of a body (bodies.py) is looked up in that body and its run."""
    bodies = {None: {"graph": graph, "run": run}, **scene.graph.graph.get("bodies", {})}
    ops = {cid: {node.name: node for node in body["graph"].nodes} for cid, body in bodies.items()}
    return {key: node_info(bodies[cid]["graph"], ops[cid], data["model"], data["kind"], bodies[cid]["run"])
            for key, data in scene.graph.nodes(data=True) for cid in [data.get("body")]}


def flat(view: View) -> View:
    """The view with no collapsing: the page draws every node and groups them itself, in the browser."""
    return replace(view, collapse=None) if "collapse" in {f.name for f in fields(view)} else view


def page_groups(graph, scene: Scene, where: dict, nodes: list[dict], collapse: int | None) -> dict:
    """The model's modules as the page's groups, each node tagged with the innermost group it is in (`cg`),
    and the depth the page opens at: `collapse`, or for a big model when no depth is asked the first depth with
    more than one box (a note says so)."""
    if not has_hierarchy(graph):
        return {"groups": body_groups(scene, where, nodes), "collapse": 0, "groupNote": None}
    found = scopes(graph)  # a body's nodes have names of their own: in the module of the node holding them
    scope_of = {key: () if data.get("body") else found.get(data["model"], ())
                for key, data in scene.graph.nodes(data=True)}
    groups = group_table(scene, scope_of, where)
    ends = list(scene.graph.edges())
    for node in nodes:  # an edge's label node (T<i>) lives in the innermost group holding both its ends
        key = node["id"]
        scope = common_prefix(scope_of[end] for end in ends[int(key[1:])]) if key.startswith("T") else scope_of[key]
        if scope:
            node["cg"] = groups[scope]["id"]
    note = None
    if collapse is None and scene.graph.number_of_nodes() > GROUP_FROM:
        collapse = overview_depth(list(groups.values()))
        note = (f"{scene.graph.number_of_nodes():,} nodes: opened grouped by module, {collapse} "
                f"level{'s' if collapse > 1 else ''} deep. Click a module to open it, or pick a depth.")
    return {"groups": [*groups.values(), *body_groups(scene, where, nodes)], "collapse": collapse or 0,
            "groupNote": note}


def body_groups(scene: Scene, where: dict, nodes: list[dict]) -> list[dict]:
    """A group per node holding bodies (bodies.py), closed at first into a box where the node is, `if ▸ then ·
    else`; a click opens it on the node and its bodies. Its nodes are tagged with it (`cg`), and so are the
    labels of its edges; it lies in the module (or the body) holding the node. Outer groups come first."""
    bodies = scene.graph.graph.get("bodies", {})
    by_id, made = {node["id"]: node for node in nodes}, {}
    for body in bodies.values():  # a body's parent comes before it
        key = body["op"]
        if key in made:
            continue
        data = scene.graph.nodes[key]
        parent = made[bodies[body["parent"]]["op"]]["id"] if body["parent"] else by_id[key].get("cg")
        x, y = where[key]
        made[key] = {"id": f"S{len(made)}", "name": data["model"], "parent": parent, "depth": 0, "ops": 1,
                     "inner": False, "x": x, "y": y, "spread": 0, "body": True,
                     "label": vis_text(f"{data['lines'][0].text} ▸ {' · '.join(data['bodies'])}")}
        by_id[key]["cg"] = made[key]["id"]
    ends = list(scene.graph.edges(data="body"))
    for key, node in by_id.items():
        label = key.startswith("T")  # an edge's label: in the body the edge is in
        cid = ends[int(key[1:])][2] if label else scene.graph.nodes[key].get("body")
        if cid is None or key in made:  # a node holding bodies is in its own group
            continue
        group = made[bodies[cid]["op"]]
        node["cg"] = group["id"]
        group["ops"] += not label and scene.graph.nodes[key]["kind"] == "op"
    return list(made.values())


def overview_depth(groups: list[dict]) -> int:
    """The shallowest depth at which the page shows more than one box (DenseNet's `features` alone is none)."""
    def boxes(depth):  # as the page closes them: the modules `depth` down, and shallower ones with none inside;
        # a module of one op is drawn as that op
        return sum(g["ops"] > 1 and (g["depth"] == depth or (g["depth"] < depth and not g["inner"])) for g in groups)

    return next((depth for depth in range(1, max(g["depth"] for g in groups) + 1) if boxes(depth) > 1), 1)


def group_table(scene: Scene, scope_of: dict, where: dict) -> dict[Scope, dict]:
    """Every module holding a node, outer ones first: its id, name, parent, depth, op count, whether it has
    modules inside, where its box sits (at the centroid of the nodes it holds) and how far they spread."""
    members: dict[Scope, list] = {}
    for key, scope in scope_of.items():
        for depth in range(1, len(scope) + 1):
            members.setdefault(scope[:depth], []).append(key)
    groups = {}
    for k, scope in enumerate(sorted(members, key=lambda s: (len(s), s))):
        keys = members[scope]
        ops = sum(scene.graph.nodes[key]["kind"] == "op" for key in keys)
        name = scope[-1]
        groups[scope] = {
            "id": f"G{k}", "name": name, "label": f"{vis_text(name)} · {ops} op{'s' if ops != 1 else ''}",
            "parent": groups[scope[:-1]]["id"] if len(scope) > 1 else None, "depth": len(scope), "ops": ops,
            "inner": False, "x": round(sum(where[key][0] for key in keys) / len(keys), 1),
            "y": round(sum(where[key][1] for key in keys) / len(keys), 1),
            "spread": round(max(max(where[key][i] for key in keys) - min(where[key][i] for key in keys)
                                for i in (0, 1)), 1)}
        if len(scope) > 1:
            groups[scope[:-1]]["inner"] = True
    return groups


def stage_labels(lines, *, node: bool = False) -> list[str]:
    """An element's label at each of the page's STAGES (nothing yet, values, everything): each line marked once
    as it shows and as it stands before, then joined per stage (a 100,000-node page has 170,000 such labels)."""
    if all(line.until is None for line in lines):  # nothing in it waits for the run (most ops): one label
        return [vis_label([line[:2] for line in lines], node=node)] * len(STAGES)
    marks = NODE_MARKS if node else EDGE_MARKS
    shown = [vis_line(line.text, line.role, marks) for line in lines]
    before = [vis_line(*line.at(NOTHING), marks) for line in lines]
    values = [now if line.until is None or line.until[0] == "values" else then  # FORWARD shows values only
              for line, now, then in zip(lines, shown, before)]
    return ["\n".join(before), "\n".join(values), "\n".join(shown)]


def page_nodes(scene: Scene, plan: Schedule, where: dict, t: dict) -> tuple[dict, list, list, list]:
    """The scene's nodes: their keys by (kind, name); the step elements of the nodes whose labels change with
    the steps (those carrying a shared tensor's value and gradient); the nodes, each with its look (`s`) as an
    index into the looks, and the looks."""
    ids, elements, nodes, looks = {}, [], [], {}
    for key, data in scene.graph.nodes(data=True):
        kind = data["kind"]
        if not data.get("body"):  # a body's names are its own: the steps name the enclosing graph's nodes
            ids[(kind, data["model"])] = key
        x, y = where[key]
        labels = stage_labels(data["lines"], node=True)
        ellipse = kind == "op" and not data.get("bodies")  # a node holding bodies is a box, as their groups
        look = (kind, ellipse, bool(data.get("marked")), bool(data["loss"]))
        if look not in looks:
            looks[look] = len(looks)
        nodes.append({"id": key, "label": labels[-1], "x": round(x, 1), "y": round(y, 1), "s": looks[look]})
        if labels[0] != labels[-1]:
            made = data["tensors"]
            elements.append({"node": key, "labels": labels, "value": min(plan.value_step.get(n, 0) for n in made),
                             "grad": max(plan.grad_step.get(n, len(plan.active)) for n in made)})
    return ids, elements, nodes, [node_look(*look, t) for look in looks]


def node_look(kind: str, ellipse: bool, marked: bool, loss: bool, t: dict) -> dict:
    """How a node is drawn, in vis-network's terms: its shape, fill, border and border width."""
    return {"shape": "ellipse" if ellipse else "box",
            "color": {"background": t["fill"][kind], "border": t["accent"] if marked else t["line"]},
            "shapeProperties": {"borderDashes": kind == "constant"}, "borderWidth": 4 if marked else 3 if loss else 1.5}


def page_edges(scene: Scene, plan: Schedule, run, label_at, big: bool, t: dict,
               numbers: Numbers | None = None) -> tuple[list, list, list, list]:
    """The scene's edges: their step elements and hover texts, in edge order (float32 ones as offsets into
    `numbers` when given: tips.py); the text nodes carrying the labels Graphviz placed; the edges (with no label
    on a big graph: they come when zoomed in)."""
    values = run.values if run is not None else {}
    grads = run.grads if run is not None else {}
    loss = run.loss if run is not None else None
    elements, tensors, label_nodes, edges = [], [], [], []
    never = len(plan.active)  # a step past the last: what a forward-only run never shows
    held = body_steps(scene, plan)
    for i, (u, v, data) in enumerate(scene.graph.edges(data=True)):
        name, use = data["tensor"], data["use"]  # use: (reading op, input slot) of one read of a shared tensor
        labels = stage_labels(data["lines"])
        element = {"edge": f"E{i}", "labels": labels, "value": plan.value_step.get(name, 0),
                   "grad": plan.use_step.get(use, plan.grad_step.get(name, never))}
        if data.get("body") or data.get("link"):  # a body's tensor: known once its node has run; no gradient
            body = scene.graph.graph["bodies"].get(data.get("body"))
            element.update(value=held.get(data.get("body"), 0), grad=never)
            text = ({"head": data["hover"][0]} if body is None or body["run"] is None else
                    tensor_text(name, body["run"].values.get(name), None, None))
        else:
            share = run.use_grads.get(use) if run is not None and use else None
            value, grad = values.get(name), grads.get(name) if loss is not None else None
            share = share if grad is not None else None
            text = (compact_tip(f"{name}\n{format_type(value)}", value, grad, share, numbers)
                    if numbers is not None and value is not None and not data.get("chain")
                    and packable(value, grad, share) else tensor_text(name, value, grad, loss, share))
            if data.get("chain"):  # how the gradient is made, as the label writes it
                text["grad"] = text.get("grad", "") + "\n" + data["chain"]
        tensors.append(text)
        label = labels[-1]
        if label_at is not None and label_at[i] is not None and label:  # where Graphviz put the label
            x, y = label_at[i]
            label_nodes.append({"id": f"T{i}", "label": label, "x": x, "y": y, "shape": "text", "group": "label"})
            del element["edge"]
            element["node"], label = f"T{i}", ""
        elements.append(element)
        alert = alerting([line[:2] for line in data["lines"]])  # as everything shows them
        edges.append({"id": f"E{i}", "from": u, "to": v, **({"label": label} if label and not big else {}),
                      **({"dashes": True} if data.get("link") else {}),
                      **({"color": {"color": t["alert"]}, "width": 2.5} if alert else {})})
    return elements, tensors, label_nodes, edges


def body_steps(scene: Scene, plan: Schedule) -> dict:
    """The step at which each body's values show: when the enclosing graph's node holding it has run."""
    bodies, found = scene.graph.graph.get("bodies", {}), {}
    for cid in bodies:
        top = cid
        while bodies[top]["parent"]:
            top = bodies[top]["parent"]
        made = scene.graph.nodes[bodies[top]["op"]]["tensors"]
        found[cid] = max((plan.value_step.get(t, 0) for t in made), default=0)
    return found


def page_steps(plan: Schedule, ids: dict, n_ops: int) -> dict:
    """The steps as the page writes their captions: the node at work in each (its page id) and its name, how
    many steps go forward, and the step seeding backward (-1 for none)."""
    return {"active": [ids.get(active) for active in plan.active],
            "names": [active[1] if active else "" for active in plan.active], "ops": n_ops,
            "seed": next((k for k, active in enumerate(plan.active) if active and active[0] == "output"), -1)}


def node_info(graph, ops: dict, model: str, kind: str, run) -> dict:
    """What a click on a node shows: for an op (`ops` by name), its type, attributes, inputs and outputs; for a
    leaf, its tensor."""
    if kind == "op":
        node = ops[model]
        rows = [["op", node.op],
                *[[f"attribute {k}", attribute_text(v)] for k, v in node.attrs.items()],
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
        rows += [["tensor", format_type(value)],
                 ["value", format_tensor(value, 6, inline=TOOLTIP_ELEMENTS)]]
        if model in run.grads:
            rows.append([f"∂{run.loss}/∂{model}", format_tensor(run.grads[model], 6, inline=TOOLTIP_ELEMENTS)])
    return {"name": model, "kind": kind, "rows": rows}


def attribute_text(value) -> str:
    """An attribute as a node's panel writes it; a subgraph by its name and size (the page draws it)."""
    if isinstance(value, np.ndarray):
        return format_tensor(value)
    if hasattr(value, "outer"):
        return f"subgraph {value.name}: {len(value.nodes)} nodes"
    return json.dumps(value)


def script_json(doc) -> str:
    """JSON that is safe inside a <script> element: no </script>, no <!--, no & entities."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(
        ">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page_json(doc: dict) -> str:
    """script_json of the page's data, field by field, each freed from `doc` (emptied) once it is text: a
    100,000-node page's data as Python objects and as text are not held whole at once."""
    fields = [f"{script_json(key)}:{script_json(doc.pop(key))}" for key in list(doc)]
    return "{" + ",".join(fields) + "}"


def fill_template(data: str) -> str:
    """The page with its data (JSON text) and vis-network filled in."""
    page = resources.files("cgtools.export").joinpath("page.html").read_text(encoding="utf-8")
    vis = resources.files("pyvis").joinpath("lib/vis-9.1.2/vis-network.min.js").read_text(encoding="utf-8")
    parts = {"/*CGTOOLS_DATA*/": data, "/*VIS_NETWORK*/": vis.replace("</script", "<\\/script")}
    # one pass over the template only: text inserted for one marker is never searched for another
    return re.sub("|".join(re.escape(m) for m in parts), lambda m: parts[m.group(0)], page)
