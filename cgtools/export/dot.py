"""Graphs as Graphviz diagrams: a networkx graph whose attributes are the DOT attributes, through pydot.

The model's networkx graph (leaves, ops, one edge per tensor use) becomes a display graph: every node and
edge gets its label, shape and colours from the theme; pydot writes it out as DOT; Graphviz draws it.
Ids are stable (L0… leaves, N0… ops, O0… outputs, in file order) so the same graph gives the same DOT.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections import Counter
from dataclasses import dataclass

import networkx as nx

from cgtools.errors import CgError, did_you_mean
from cgtools.export.labels import (
    CONTROL_PICTURES,
    esc,
    font,
    format_shape,
    format_tensor,
    has_non_finite,
    op_symbol,
)
from cgtools.export.themes import theme
from cgtools.memory import collector_paused
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
        for item in sorted(set(self.show) - set(SHOW)):
            raise CgError(f"unknown --show item {item!r}{did_you_mean(item, SHOW)}; expected some of {', '.join(SHOW)}")


@dataclass(frozen=True)
class Reveal:
    """What a frame of the step-by-step build-up shows; None means everything.

    `grads` holds tensors whose whole gradient is shown, `uses` the (node, input slot) pairs whose share of
    a shared tensor's gradient is shown, `active` the ("op" | "output", name) being computed."""

    values: frozenset | None = None
    grads: frozenset | None = None
    uses: frozenset | None = None
    active: tuple[str, str] | None = None

    def shows(self, field_name: str, item) -> bool:
        shown = getattr(self, field_name)
        return shown is None or item in shown


NOTHING = Reveal(values=frozenset(), grads=frozenset(), uses=frozenset())
FORWARD = Reveal(grads=frozenset(), uses=frozenset())


def display_graph(graph, run=None, view: View = View(), reveal: Reveal = Reveal()) -> nx.MultiDiGraph:
    """The networkx graph whose node, edge and graph attributes are the DOT attributes of the diagram.

    A tensor read once is written on its edge: `c = 3` and `∂e/∂c = 10`. A tensor read by several nodes is
    written on the node that makes it, and each of its edges carries that use's share, `∂L/∂x += 24`:
    the multivariable chain rule, drawn. Each node and edge also keeps its label as plain lines (`_lines`,
    text and role) for other exporters; attributes starting with "_" never reach the DOT."""
    t = theme(view.theme)
    show = view.show
    G = graph.to_networkx()  # the structure; the run's numbers are looked up by tensor name below
    loss = run.loss if run is not None else None
    values = run.values if run is not None else {}
    grads = run.grads if run is not None else {}
    shares = run.use_grads if run is not None else {}
    folded = {} if "constants" in show else {
        name: format_tensor(leaf.value, view.precision) if leaf.value is not None and leaf.value.size <= 6 else name
        for name, leaf in graph.leaves.items() if leaf.kind == "constant"}
    readers = Counter(data["tensor"] for u, _, data in G.edges(data=True) if u not in folded)
    readers.update(graph.outputs)
    shared = {name for name, n in readers.items() if n > 1}

    def lines_of(tensor, *, role=None):
        """The tensor's value and whole gradient, as far as this frame shows them."""
        return tensor_lines(tensor, values.get(tensor), grads.get(tensor), loss, view, reveal, role)

    D = nx.MultiDiGraph()
    D.graph["graph"] = {"rankdir": view.rankdir, "bgcolor": t["background"], "fontname": t["font"],
                        "fontcolor": t["text"], "fontsize": t["fontsize"], "nodesep": t["nodesep"],
                        "ranksep": t["ranksep"], "labelloc": "t", "pad": 0.2}
    title = [(text, role) for text, role in ((graph.name, "title"), (graph.doc, "muted")) if text]
    if title:
        D.graph["graph"]["label"] = title_label(title, t)
    # defaults shared by every node and edge keep each one's attributes (and the DOT) short
    D.graph["node"] = {"fontname": t["font"], "fontsize": t["fontsize"], "fontcolor": t["text"], "color": t["line"],
                       "penwidth": t["penwidth"], "shape": "box", "style": "filled,rounded", "margin": "0.12,0.06"}
    D.graph["edge"] = {"fontname": t["font"], "fontsize": t["small"] + 2, "fontcolor": t["value"],
                       "color": t["line"], "penwidth": t["penwidth"], "arrowsize": 0.8}

    def add_node(key, model, kind, lines, **attrs):
        D.add_node(key, label=dot_label(lines, t), **attrs, _lines=lines, _model=model, _kind=kind)
        if reveal.active == (kind, model):
            D.nodes[key].update(color=t["accent"], penwidth=t["penwidth"] * 2.5)

    ids: dict[str, str] = {}
    for i, (name, leaf) in enumerate(graph.leaves.items()):
        if name in folded:
            continue
        ids[name] = f"L{i}"
        role = "bold" if leaf.kind == "param" else "plain"
        lines = lines_of(name, role=role) if name in shared and run is not None else [(shorten(name), role)]
        if "shapes" in show and leaf.shape is not None:
            lines.append((format_shape(leaf.shape), "muted"))
        add_node(ids[name], name, leaf.kind, lines, fillcolor=t["fill"][leaf.kind],
                 tooltip=tooltip(f"{leaf.kind} {name}", leaf.doc),
                 **({"style": "filled,rounded,dashed"} if leaf.kind == "constant" else {}))
    for i, node in enumerate(graph.nodes):
        ids[node.name] = f"N{i}"
        lines = [(op_symbol(get_op(node.op), node.inputs, folded), "symbol")]
        if "names" in show:
            lines.append((shorten(", ".join(node.outputs)), "muted"))
        for out in node.outputs:
            if out in shared and run is not None:
                lines += lines_of(out)
        attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items())
        add_node(ids[node.name], node.name, "op", lines, shape="ellipse", style="filled", fillcolor=t["fill"]["op"],
                 tooltip=tooltip(f"{node.op} {node.name}", attrs, node.doc))

    for u, v, slot, data in G.edges(keys=True, data=True):
        if u in folded:
            continue
        tensor = data["tensor"]
        if tensor in shared:
            lines = use_lines(tensor, shares.get((v, slot)), loss, view, reveal.shows("uses", (v, slot)))
        else:
            lines = lines_of(tensor)
        D.add_edge(ids[u], ids[v], **edge_attrs(tensor, values.get(tensor), lines, t), _slot=slot,
                   _shared=tensor in shared)
    producers = graph.producers
    loss_name = graph.loss or (graph.outputs[0] if len(graph.outputs) == 1 else None)
    for i, out in enumerate(graph.outputs):
        lines = [(shorten(out), "bold")] + ([("loss", "muted")] if out == loss_name else [])
        add_node(f"O{i}", out, "output", lines, fillcolor=t["fill"]["output"],
                 peripheries=2 if out == loss_name else 1, tooltip=tooltip(f"output {out}"))
        source = ids[producers[out].name] if out in producers else ids[out]
        D.add_edge(source, f"O{i}", **edge_attrs(out, values.get(out), [] if out in shared else lines_of(out), t),
                   _slot=0, _shared=out in shared)
    return D


def shorten(name: str, limit: int = 28) -> str:
    """Long names cut to fit a slide (the tooltip keeps the whole name)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def tensor_lines(tensor: str, value, grad, loss: str | None, view: View, reveal: Reveal,
                 role: str | None = None) -> list[tuple[str, str]]:
    """The tensor's lines: its value (`c = 3`) and its gradient (`∂e/∂c = 10`). A line not yet revealed
    keeps its place, blank, so frames align. `role` styles the value line (a leaf's name style)."""
    show = view.show
    value_shown = value is not None and "values" in show and reveal.shows("values", tensor)
    head = shorten(tensor) if "names" in show or role else ""
    if "shapes" in show and value is not None:
        head = f"{head} {format_shape(value.shape)}".strip()
    if value_shown:
        text = format_tensor(value, view.precision)
        head = f"{head} = {text}" if head else text
    bad = value_shown and has_non_finite(value)
    lines = [(("⚠ " if bad else "") + head, "alert" if bad else role or "value") if head else ("", "blank")]
    if "grads" in show and grad is not None and loss is not None:
        lines.append(grad_line(f"∂{loss}/∂{shorten(tensor)} = ", grad, view, reveal.shows("grads", tensor)))
    return lines


def use_lines(tensor: str, share, loss: str | None, view: View, shown: bool) -> list[tuple[str, str]]:
    """The edge of one use of a shared tensor: what this use adds to its gradient, `∂L/∂x += 24`."""
    if share is None or loss is None or "grads" not in view.show:
        return []
    return [grad_line(f"∂{loss}/∂{shorten(tensor)} += ", share, view, shown)]


def grad_line(prefix: str, grad, view: View, shown: bool) -> tuple[str, str]:
    if not shown:
        return ("", "blank")
    if has_non_finite(grad):
        return ("⚠ " + prefix + format_tensor(grad, view.precision), "alert_grad")
    return (prefix + format_tensor(grad, view.precision), "grad")


def edge_attrs(tensor: str, value, lines: list[tuple[str, str]], t: dict) -> dict:
    """The DOT attributes of the edge carrying `tensor` (drawn in the alert colour when it holds a NaN)."""
    described = f"{value.dtype} {format_shape(value.shape)}" if value is not None else ""
    attrs = {"label": dot_label(lines, t, edge=True) if lines else "",
             "tooltip": tooltip(f"{tensor}: {described}" if described else tensor), "_lines": lines, "_tensor": tensor}
    if any(role.startswith("alert") for _, role in lines):
        attrs.update(color=t["alert"], style="bold")
    return attrs


def dot_label(lines: list[tuple[str, str]], t: dict, *, edge: bool = False) -> str:
    """Plain label lines as a Graphviz HTML-like label, every user string escaped, styled by role.

    Edge labels sit in a padded cell so their text keeps clear of the edge's own line."""
    text = "<BR/>".join(styled(esc(text), role, t, edge) for text, role in lines)
    if edge:
        text = f'<TABLE BORDER="0" CELLPADDING="1"><TR><TD>{text}</TD></TR></TABLE>'
    return f"<{text}>"


def title_label(lines: list[tuple[str, str]], t: dict) -> str:
    """The graph's name and doc, one table row each so the lines keep apart."""
    rows = "".join(f"<TR><TD>{styled(esc(text), role, t, False)}</TD></TR>" for text, role in lines)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="0">{rows}</TABLE>>'


def styled(text: str, role: str, t: dict, edge: bool) -> str:
    if role == "plain" or (role == "value" and edge):  # the edges' default font colour is the value colour
        return text
    if role == "value":
        return font(text, color=t["value"])
    if role == "blank":
        return "&#160;"  # keeps the line's place in a frame that does not show it yet
    if role in ("bold", "title"):
        return font(text, style="B")
    if role == "symbol":
        return font(text, size=t["symbol_size"])
    if role == "muted":
        return font(text, color=t["muted"], size=t["small"])
    if role == "grad":
        return font(text, color=t["grad"], style=t["grad_font"])
    if role == "alert_grad":  # a NaN gradient: alert colour, still in the gradients' style
        return font(font(text, style=t["grad_font"]), color=t["alert"], style="B")
    return font(text, color=t["alert"], style="B")


def tooltip(*parts: str) -> str:
    """A plain-text tooltip; backslashes doubled so Graphviz reads none of them as escapes."""
    return "\n".join(p for p in parts if p).translate(CONTROL_PICTURES).replace("\\", "\\\\")


def to_dot(graph, run=None, view: View = View(), reveal: Reveal = Reveal()) -> str:
    """The diagram as DOT text, byte-identical for the same graph, run and view."""
    with collector_paused():
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
    said = " ".join(done.stderr.decode(errors="replace").split())  # Graphviz's message, on one line
    if done.returncode != 0:
        raise CgError(f"Graphviz could not draw the graph: {said}")
    if said:
        warnings.warn(f"Graphviz: {said}", stacklevel=2)  # e.g. a bitmap too large, scaled down
    return done.stdout
