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
    """The networkx graph whose node, edge and graph attributes are the DOT attributes of the diagram."""
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
    if graph.name or graph.doc:
        title = [font(esc(graph.name), style="B")] if graph.name else []
        title += [font(esc(graph.doc), color=t["muted"], size=t["small"])] if graph.doc else []
        D.graph["graph"]["label"] = html_label(*title)
    # defaults shared by every node and edge keep each one's attributes (and the DOT) short
    D.graph["node"] = {"fontname": t["font"], "fontsize": t["fontsize"], "fontcolor": t["text"], "color": t["line"],
                       "penwidth": t["penwidth"], "shape": "box", "style": "filled,rounded", "margin": "0.12,0.06"}
    D.graph["edge"] = {"fontname": t["font"], "fontsize": t["small"] + 2, "fontcolor": t["value"],
                       "color": t["line"], "penwidth": t["penwidth"], "arrowsize": 0.8}

    ids: dict[str, str] = {}
    for i, (name, leaf) in enumerate(graph.leaves.items()):
        if name in folded:
            continue
        ids[name] = f"L{i}"
        shape_line = [font(esc(format_shape(leaf.shape)), color=t["muted"], size=t["small"])] \
            if "shapes" in show and leaf.shape is not None else []
        D.add_node(ids[name], label=html_label(font(esc(name), style="B" if leaf.kind == "param" else ""),
                                               *shape_line),
                   fillcolor=t["fill"][leaf.kind], tooltip=tooltip(f"{leaf.kind} {name}", leaf.doc),
                   **({"style": "filled,rounded,dashed"} if leaf.kind == "constant" else {}))
    for i, node in enumerate(graph.nodes):
        ids[node.name] = f"N{i}"
        cls = get_op(node.op)
        lines = [font(esc(op_symbol(cls, node.inputs, folded)), size=t["symbol_size"])]
        if "names" in show:
            lines.append(font(esc(", ".join(node.outputs)), color=t["muted"], size=t["small"]))
        attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items())
        D.add_node(ids[node.name], label=html_label(*lines), shape="ellipse", style="filled",
                   fillcolor=t["fill"]["op"], tooltip=tooltip(f"{node.op} {node.name}", attrs, node.doc))
    if reveal.active is not None and reveal.active in ids:
        D.nodes[ids[reveal.active]].update(color=t["accent"], penwidth=t["penwidth"] * 2.5)

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
        oid = f"O{i}"
        lines = [font(esc(out), style="B")]
        if out == loss_name:
            lines.append(font("loss", color=t["muted"], size=t["small"]))
        D.add_node(oid, label=html_label(*lines), fillcolor=t["fill"]["output"],
                   peripheries=2 if out == loss_name else 1, tooltip=tooltip(f"output {out}"))
        if reveal.active == out:
            D.nodes[oid].update(color=t["accent"], penwidth=t["penwidth"] * 2.5)
        value = run.values.get(out) if run is not None else None
        grad = run.grads.get(out) if run is not None else None
        if out == loss and not reveal.seeded:
            grad = None
        D.add_edge(ids[producers[out].name], oid, **edge_attrs(out, value, grad, loss, view, reveal))
    return D


def edge_attrs(tensor: str, value, grad, loss: str | None, view: View, reveal: Reveal) -> dict:
    """Label and tooltip of the edge carrying `tensor`: its value in the forward colour, its gradient as
    ∂loss/∂tensor in the backward colour. A line not yet revealed keeps its place, blank, so frames align."""
    t, show = theme(view.theme), view.show
    value_shown = value is not None and "values" in show and (reveal.values is None or tensor in reveal.values)
    grad_shown = grad is not None and "grads" in show and (reveal.grads is None or tensor in reveal.grads)
    head = esc(tensor) if "names" in show else ""
    if "shapes" in show and value is not None:
        head = f"{head} {esc(format_shape(value.shape))}".strip()
    if value_shown:
        text = esc(format_tensor(value, view.precision))
        head = f"{head} = {text}" if head else text
    bad_value = value_shown and has_non_finite(value)
    lines = [font(head or "&#160;", color=t["alert"] if bad_value else None)]
    bad_grad = False
    if "grads" in show and grad is not None and loss is not None:
        if grad_shown:
            bad_grad = has_non_finite(grad)
            text = esc(f"∂{loss}/∂{tensor} = {format_tensor(grad, view.precision)}")
            lines.append(font(text, color=t["alert"] if bad_grad else t["grad"], style=t["grad_font"]))
        else:
            lines.append("&#160;")
    described = f"{value.dtype} {format_shape(value.shape)}" if value is not None else ""
    attrs = {"label": html_label(*lines), "tooltip": tooltip(f"{tensor}: {described}" if described else tensor)}
    if bad_value or bad_grad:
        attrs["color"] = t["alert"]
    return attrs


def tooltip(*parts: str) -> str:
    """A plain-text tooltip; backslashes doubled so Graphviz reads none of them as escapes."""
    return "\n".join(p for p in parts if p).replace("\\", "\\\\")


def to_dot(graph, run=None, view: View = View(), reveal: Reveal = Reveal()) -> str:
    """The diagram as DOT text, byte-identical for the same graph, run and view."""
    return dot_text(display_graph(graph, run, view, reveal))


def dot_text(D: nx.MultiDiGraph) -> str:
    P = nx.nx_pydot.to_pydot(D)
    P.set_name("cgtools")
    for edge in P.get_edges():  # networkx's multigraph key means nothing to Graphviz
        edge.get_attributes().pop("key", None)
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
