"""Graphs as Graphviz diagrams: a networkx graph whose attributes are the DOT attributes, through pydot.

The model's networkx graph (leaves, ops, one edge per tensor use) becomes a display graph: every node and
edge gets its label, shape and colours from the theme; pydot writes it out as DOT; Graphviz draws it.
Ids are stable (L0… leaves, N0… ops, O0… outputs, in file order) so the same graph gives the same DOT.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

import networkx as nx

from cgtools.errors import CgError
from cgtools.export.labels import (
    esc,
    font,
    format_shape,
    format_tensor,
    has_non_finite,
    html_label,
    op_symbol,
)
from cgtools.export.themes import theme
from cgtools.ops import get_op

SHOW = ("values", "grads", "shapes", "names", "constants")
DEFAULT_SHOW = frozenset({"values", "grads", "names"})
RANKDIRS = ("LR", "TB", "BT", "RL")
GRAPHVIZ_MISSING = ("Graphviz is not installed (its `dot` program draws the diagrams): install it with "
                    "'apt-get install graphviz' or 'brew install graphviz'; `-f dot` works without it")


@dataclass(frozen=True)
class View:
    """How a diagram looks: theme, direction, digits, and which of SHOW it shows."""

    theme: str = "slide"
    rankdir: str = "LR"
    precision: int = 4
    show: frozenset = DEFAULT_SHOW

    def __post_init__(self):
        theme(self.theme)  # unknown names fail here, with the list of themes
        if self.rankdir not in RANKDIRS:
            raise CgError(f"expected rankdir one of {', '.join(RANKDIRS)}, found {self.rankdir!r}")
        unknown = set(self.show) - set(SHOW)
        if unknown:
            raise CgError(f"expected --show items among {', '.join(SHOW)}, found {', '.join(sorted(unknown))}")


@dataclass(frozen=True)
class Reveal:
    """What a frame of the step-by-step build-up shows: None means everything."""

    values: frozenset | None = None
    grads: frozenset | None = None
    active: str | None = None  # the model node being computed, highlighted
    seeded: bool = field(default=True)  # whether the output's ∂L/∂L = 1 is shown


def display_graph(graph, run=None, view: View = View(), reveal: Reveal = Reveal()) -> nx.MultiDiGraph:
    """The networkx graph whose node, edge and graph attributes are the DOT attributes of the diagram.

    Each node and edge also keeps its label as plain lines (`_lines`: text and role) for other exporters;
    attributes starting with "_" never reach the DOT."""
    t = theme(view.theme)
    show = view.show
    G = graph.to_networkx(run)
    loss = run.loss if run is not None else None
    folded = {} if "constants" in show else {
        name: format_tensor(leaf.value, view.precision) if leaf.value is not None and leaf.value.size <= 6 else name
        for name, leaf in graph.leaves.items() if leaf.kind == "constant"}
    D = nx.MultiDiGraph()
    D.graph["graph"] = {"rankdir": view.rankdir, "bgcolor": t["background"], "fontname": t["font"],
                        "fontcolor": t["text"], "fontsize": t["fontsize"], "nodesep": t["nodesep"],
                        "ranksep": t["ranksep"], "labelloc": "t", "pad": 0.2}
    title = [(text, role) for text, role in ((graph.name, "bold"), (graph.doc, "muted")) if text]
    if title:
        D.graph["graph"]["label"] = dot_label(title, t)
    # defaults shared by every node and edge keep each one's attributes (and the DOT) short
    D.graph["node"] = {"fontname": t["font"], "fontsize": t["fontsize"], "fontcolor": t["text"], "color": t["line"],
                       "penwidth": t["penwidth"], "shape": "box", "style": "filled,rounded", "margin": "0.12,0.06"}
    D.graph["edge"] = {"fontname": t["font"], "fontsize": t["small"] + 2, "fontcolor": t["value"],
                       "color": t["line"], "penwidth": t["penwidth"], "arrowsize": 0.8}

    def add_node(key, model, kind, lines, **attrs):
        D.add_node(key, label=dot_label(lines, t), **attrs, _lines=lines, _model=model, _kind=kind)
        if reveal.active == model:
            D.nodes[key].update(color=t["accent"], penwidth=t["penwidth"] * 2.5)

    ids: dict[str, str] = {}
    for i, (name, leaf) in enumerate(graph.leaves.items()):
        if name in folded:
            continue
        ids[name] = f"L{i}"
        lines = [(name, "bold" if leaf.kind == "param" else "plain")]
        if "shapes" in show and leaf.shape is not None:
            lines.append((format_shape(leaf.shape), "muted"))
        add_node(ids[name], name, leaf.kind, lines, fillcolor=t["fill"][leaf.kind],
                 tooltip=tooltip(f"{leaf.kind} {name}", leaf.doc),
                 **({"style": "filled,rounded,dashed"} if leaf.kind == "constant" else {}))
    for i, node in enumerate(graph.nodes):
        ids[node.name] = f"N{i}"
        lines = [(op_symbol(get_op(node.op), node.inputs, folded), "symbol")]
        if "names" in show:
            lines.append((", ".join(node.outputs), "muted"))
        attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items())
        add_node(ids[node.name], node.name, "op", lines, shape="ellipse", style="filled", fillcolor=t["fill"]["op"],
                 tooltip=tooltip(f"{node.op} {node.name}", attrs, node.doc))

    labelled: dict = {}  # a tensor read by several nodes is labelled once
    for u, v, data in G.edges(data=True):
        if u in folded:
            continue
        tensor = data["tensor"]
        if tensor not in labelled:
            labelled[tensor] = edge_attrs(tensor, data.get("value"), data.get("grad"), loss, view, reveal)
        D.add_edge(ids[u], ids[v], **labelled[tensor])
    producers = graph.producers
    loss_name = graph.loss or (graph.outputs[0] if len(graph.outputs) == 1 else None)
    for i, out in enumerate(graph.outputs):
        lines = [(out, "bold")] + ([("loss", "muted")] if out == loss_name else [])
        add_node(f"O{i}", out, "output", lines, fillcolor=t["fill"]["output"],
                 peripheries=2 if out == loss_name else 1, tooltip=tooltip(f"output {out}"))
        value = run.values.get(out) if run is not None else None
        grad = run.grads.get(out) if run is not None else None
        if out == loss and not reveal.seeded:
            grad = None
        D.add_edge(ids[producers[out].name], f"O{i}", **edge_attrs(out, value, grad, loss, view, reveal))
    return D


def dot_label(lines: list[tuple[str, str]], t: dict) -> str:
    """Plain label lines as a Graphviz HTML-like label, every user string escaped, styled by role."""
    return html_label(*(styled(esc(text), role, t) for text, role in lines))


def styled(text: str, role: str, t: dict) -> str:
    if role in ("plain", "value"):  # the edges' default font colour is the value colour
        return text
    if role == "blank":
        return "&#160;"  # keeps the line's place in a frame that does not show it yet
    if role == "bold":
        return font(text, style="B")
    if role == "symbol":
        return font(text, size=t["symbol_size"])
    if role == "muted":
        return font(text, color=t["muted"], size=t["small"])
    if role == "grad":
        return font(text, color=t["grad"], style=t["grad_font"])
    return font(text, color=t["alert"])


def edge_lines(tensor: str, value, grad, loss: str | None, view: View, reveal: Reveal) -> list[tuple[str, str]]:
    """The lines on the edge carrying `tensor`: its value (`c = 3`) and its gradient (`∂e/∂c = 10`). A line not
    yet revealed keeps its place, blank, so frames align."""
    show = view.show
    value_shown = value is not None and "values" in show and (reveal.values is None or tensor in reveal.values)
    grad_shown = grad is not None and "grads" in show and (reveal.grads is None or tensor in reveal.grads)
    head = tensor if "names" in show else ""
    if "shapes" in show and value is not None:
        head = f"{head} {format_shape(value.shape)}".strip()
    if value_shown:
        text = format_tensor(value, view.precision)
        head = f"{head} = {text}" if head else text
    lines = [(head, "alert" if value_shown and has_non_finite(value) else "value") if head else ("", "blank")]
    if "grads" in show and grad is not None and loss is not None:
        if grad_shown:
            text = f"∂{loss}/∂{tensor} = {format_tensor(grad, view.precision)}"
            lines.append((text, "alert" if has_non_finite(grad) else "grad"))
        else:
            lines.append(("", "blank"))
    return lines


def edge_attrs(tensor: str, value, grad, loss: str | None, view: View, reveal: Reveal) -> dict:
    """The DOT attributes of the edge carrying `tensor` (drawn in the alert colour when it holds a NaN)."""
    t = theme(view.theme)
    lines = edge_lines(tensor, value, grad, loss, view, reveal)
    described = f"{value.dtype} {format_shape(value.shape)}" if value is not None else ""
    attrs = {"label": dot_label(lines, t), "tooltip": tooltip(f"{tensor}: {described}" if described else tensor),
             "_lines": lines, "_tensor": tensor}
    if any(role == "alert" for _, role in lines):
        attrs["color"] = t["alert"]
    return attrs


def tooltip(*parts: str) -> str:
    """A plain-text tooltip; backslashes doubled so Graphviz reads none of them as escapes."""
    return "\n".join(p for p in parts if p).replace("\\", "\\\\")


def to_dot(graph, run=None, view: View = View(), reveal: Reveal = Reveal()) -> str:
    """The diagram as DOT text, byte-identical for the same graph, run and view."""
    return dot_text(display_graph(graph, run, view, reveal))


def dot_text(D: nx.MultiDiGraph) -> str:
    """DOT through pydot: the display graph's attributes map one to one (the "_" ones stay behind)."""
    import pydot

    def public(data):
        return {k: v for k, v in data.items() if not k.startswith("_")}

    P = pydot.Dot("cgtools", graph_type="digraph", **D.graph.get("graph", {}))
    P.set_node_defaults(**D.graph.get("node", {}))
    P.set_edge_defaults(**D.graph.get("edge", {}))
    for key, data in D.nodes(data=True):
        P.add_node(pydot.Node(key, **public(data)))
    for u, v, data in D.edges(data=True):
        P.add_edge(pydot.Edge(u, v, **public(data)))
    return P.to_string()


def render(dot: str, fmt: str, *, engine: str = "dot", args: tuple = ()) -> bytes:
    """Graphviz's drawing of `dot` in format `fmt` (svg, png, pdf, json, …)."""
    program = shutil.which(engine)
    if program is None:
        raise CgError(GRAPHVIZ_MISSING)
    extra = ("-Gdpi=144",) if fmt == "png" else ()  # crisp on slides
    done = subprocess.run([program, f"-T{fmt}", *extra, *args], input=dot.encode(), capture_output=True)
    if done.returncode != 0:
        raise CgError(f"Graphviz could not draw the graph: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
