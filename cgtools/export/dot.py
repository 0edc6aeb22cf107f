"""Scenes as Graphviz diagrams: a networkx graph whose attributes are the DOT attributes, through pydot.

The scene (scene.py) says what every node and edge shows, line by line and role by role; here each role
and kind gets its font, shape and colours from the theme, in a display graph whose node, edge and graph
attributes are the DOT attributes; pydot writes it out as DOT; Graphviz draws it. The same graph, run and
view give the same DOT, byte for byte.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import warnings

import networkx as nx

from cgtools.errors import CgError
from cgtools.export.colours import Legend, edge_colours
from cgtools.export.scene import Reveal, Scene, View, alerting, at
from cgtools.export.themes import theme
from cgtools.memory import collector_paused

GRAPHVIZ_MISSING = ("Graphviz is not installed (its `dot` program draws the diagrams): install it with "
                    "'apt-get install graphviz' or 'brew install graphviz'; `-f dot` works without it")
CONTROL_PICTURES = {c: 0x2400 + c for c in range(32) if c != 10} | {127: 0x2421}  # BEL -> ␇: visible, harmless
BIG = 150  # nodes; past this, dot's search for fewer crossings and straighter edges is bounded (TUNING)
# dot's iterative phases run until they stop improving: capped, a model-sized graph is laid out in seconds, a
# little less tidily (a few more crossings); mincross is not rerun over the whole graph
TUNING = {"nslimit": 2, "nslimit1": 2, "mclimit": 0.2, "searchsize": 20, "remincross": "false"}


class LayoutTooSlow(CgError):
    """Graphviz did not finish the layout within its time budget."""


def display_graph(scene: Scene, reveal: Reveal = Reveal()) -> nx.MultiDiGraph:
    """The networkx graph whose node, edge and graph attributes are the DOT attributes of the scene's
    diagram, at the step `reveal` (the active node drawn in the accent colour)."""
    t = theme(scene.view.theme)
    D = nx.MultiDiGraph()
    D.graph["graph"] = {"rankdir": scene.view.rankdir, "bgcolor": t["background"], "fontname": t["font"],
                        "fontcolor": t["text"], "fontsize": t["fontsize"], "nodesep": t["nodesep"],
                        "ranksep": t["ranksep"], "labelloc": "t", "pad": 0.2}
    if scene.title:
        D.graph["graph"]["label"] = title_label(at(scene.title, reveal), t)
    # defaults shared by every node and edge keep each one's attributes (and the DOT) short
    D.graph["node"] = {"fontname": t["font"], "fontsize": t["fontsize"], "fontcolor": t["text"], "color": t["line"],
                       "penwidth": t["penwidth"], "shape": "box", "style": "filled,rounded", "margin": "0.12,0.06"}
    D.graph["edge"] = {"fontname": t["font"], "fontsize": t["small"] + 2, "fontcolor": t["value"],
                       "color": t["line"], "penwidth": t["penwidth"], "arrowsize": 0.8}
    if scene.graph.number_of_nodes() > BIG:
        D.graph["graph"].update(TUNING)
    for key, data in scene.graph.nodes(data=True):
        D.add_node(key, **node_attrs(data, reveal, t))
    by = scene.view.colouring.by
    coloured = edge_colours([d["measures"] for *_, d in scene.graph.edges(data=True)], by, t,
                            scene.view.colouring.against) if by else None
    for i, (u, v, data) in enumerate(scene.graph.edges(data=True)):
        attrs = edge_attrs(data, reveal, t)
        if coloured and "color" not in attrs and reveal.shows("grads" if by == "grad" else "values", data["tensor"]):
            attrs.update(measured_edge(coloured[0][i], t))
        D.add_edge(u, v, **attrs)
    if coloured:
        D.add_node(LEGEND, **legend_attrs(coloured[1], t))
    if scene.graph.graph.get("bodies"):
        add_clusters(D, scene, t)
    return D


def add_clusters(D: nx.MultiDiGraph, scene: Scene, t: dict) -> None:
    """The bodies of If, Loop and Scan as clusters (bodies.py): each one's DOT attributes and parent body, and
    the body each node is drawn in, for dot_text."""
    D.graph["clusters"] = {cid: ({"label": cluster_label(body["label"], t), "style": "rounded,dashed",
                                  "color": t["muted"], "fontsize": t["small"], "labeljust": "l"}, body["parent"])
                           for cid, body in scene.graph.graph["bodies"].items()}
    D.graph["members"] = {key: body for key, body in scene.graph.nodes(data="body") if body}


LEGEND = "legend"  # the legend's node, in a rank of its own after the graph's last


def measured_edge(colour: str, t: dict) -> dict:
    """A coloured edge drawn thicker so its colour reads; one with no magnitude dashed, for greyscale."""
    dashed = {"style": "dashed"} if colour == t["unmeasured"] else {}
    return {"color": colour, "penwidth": round(t["penwidth"] * 2.2, 2), **dashed}


def legend_attrs(legend: Legend, t: dict) -> dict:
    """The colour scale's legend as a table: its title, a swatch per power of ten, grey and alert if drawn."""
    keys = [*legend.ticks] + [("none", t["unmeasured"])] * legend.grey + [("NaN, ∞", t["alert"])] * legend.alert
    swatches = "".join(f'<TD BGCOLOR="{colour}" WIDTH="34" HEIGHT="12" FIXEDSIZE="TRUE"></TD>' for _, colour in keys)
    labels = "".join(f'<TD>{font(esc(label), size=t["small"])}</TD>' for label, _ in keys)
    title = font(esc(legend.title), color=t["muted"], size=t["small"])
    table = (f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="3" CELLPADDING="1"><TR><TD COLSPAN="{len(keys)}">'
             f"{title}</TD></TR><TR>{swatches}</TR><TR>{labels}</TR></TABLE>")
    return {"label": f"<{table}>", "shape": "none", "margin": 0, "style": "", "tooltip": legend.title}


def node_attrs(data: dict, reveal: Reveal, t: dict) -> dict:
    """The DOT attributes of a scene node: ops are ellipses, constants dashed, the loss doubly outlined, a
    module a bold box, a stub (the far end of an edge cut by --focus) small and dotted."""
    kind = data["kind"]
    attrs = {"label": dot_label(at(data["lines"], reveal), t)}
    if data.get("stub"):
        return {**attrs, "style": "dotted,rounded", "fontsize": t["small"], "tooltip": tooltip(*data["hover"])}
    if kind == "op":  # a node holding bodies is a box, as the clusters beside it
        attrs.update(shape="box" if data.get("bodies") else "ellipse", style="filled")
    if kind == "group":
        attrs.update(style="filled,rounded,bold", penwidth=t["penwidth"] * 2)
    attrs["fillcolor"] = t["fill"]["op" if kind == "group" else kind]
    if kind == "output":
        attrs["peripheries"] = 2 if data["loss"] else 1
    attrs["tooltip"] = tooltip(*data["hover"])
    if kind == "constant":
        attrs["style"] = "filled,rounded,dashed"
    if reveal.active == (kind, data["model"]) or data.get("marked"):
        attrs.update(color=t["accent"], penwidth=t["penwidth"] * 2.5)
    return attrs


def edge_attrs(data: dict, reveal: Reveal, t: dict) -> dict:
    """The DOT attributes of a scene edge (drawn in the alert colour when it shows a NaN)."""
    lines = at(data["lines"], reveal)
    attrs = {"label": dot_label(lines, t, edge=True) if lines else "", "tooltip": tooltip(*data["hover"])}
    if alerting(lines):
        attrs.update(color=t["alert"], style="bold")
    if data.get("link"):  # between a body and the graph around it
        attrs.update(style="dashed", color=t["muted"])
    return attrs


def dot_label(lines: list[tuple[str, str]], t: dict, *, edge: bool = False) -> str:
    """Plain label lines as a Graphviz HTML-like label, every user string escaped, styled by role.

    Edge labels sit in a padded cell so their text keeps clear of the edge's own line."""
    text = "<BR/>".join(styled(esc(text), role, t, edge) for text, role in lines)
    if edge:
        text = f'<TABLE BORDER="0" CELLPADDING="1"><TR><TD>{text}</TD></TR></TABLE>'
    return f"<{text}>"


def cluster_label(lines, t: dict) -> str:
    """A body's label on one line, `then · taken`, every user string escaped."""
    return "<" + " · ".join(styled(esc(text), role, t, False) for text, role in at(lines, Reveal())) + ">"


def title_label(lines: list[tuple[str, str]], t: dict) -> str:
    """The graph's name and doc, one table row each so the lines keep apart."""
    rows = "".join(f"<TR><TD>{styled(esc(text), role, t, False)}</TD></TR>" for text, role in lines)
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="0">{rows}</TABLE>>'


def styled(text: str, role: str, t: dict, edge: bool) -> str:
    """Escaped text in its role's font, from the theme."""
    if role == "name" or (role == "value" and edge):  # the edges' default font colour is the value colour
        return text
    if role == "value":
        return font(text, color=t["value"])
    if role == "blank":
        return "&#160;"  # keeps the line's place in a frame that does not show it yet
    if role in ("param", "output", "title"):
        return font(text, style="B")
    if role == "symbol":
        return font(text, size=t["symbol_size"])
    if role in ("names", "shape", "loss", "doc"):
        return font(text, color=t["muted"], size=t["small"])
    if role in ("grad", "share"):
        return font(text, color=t["grad"], style=t["grad_font"])
    if role in ("alert_grad", "alert_share"):  # a NaN gradient: alert colour, still in the gradients' style
        return font(font(text, style=t["grad_font"]), color=t["alert"], style="B")
    return font(text, color=t["alert"], style="B")


def esc(text) -> str:
    """A user string made literal inside a Graphviz HTML-like label (and so inside SVG).

    Graphviz still reads backslash escapes (\\N is the node's name) in HTML-like labels, so backslashes
    are doubled; control characters, which break its XML parser, are shown as their control pictures."""
    text = str(text).translate(CONTROL_PICTURES).replace("\\", "\\\\")
    return html.escape(text, quote=True).replace("\n", "<BR/>")


def font(text: str, *, color: str | None = None, size: int | None = None, style: str = "") -> str:
    """`text` (already escaped) in a colour, size and style ("B", "I" or "" for plain)."""
    attrs = "".join(f' {k}="{v}"' for k, v in (("COLOR", color), ("POINT-SIZE", size)) if v)
    if style:
        text = f"<{style}>{text}</{style}>"
    return f"<FONT{attrs}>{text}</FONT>" if attrs else text


def tooltip(*parts: str) -> str:
    """A plain-text tooltip; backslashes doubled so Graphviz reads none of them as escapes."""
    return "\n".join(p for p in parts if p).translate(CONTROL_PICTURES).replace("\\", "\\\\")


def to_dot(graph, run=None, view: View = View(), reveal: Reveal = Reveal()) -> str:
    """The diagram as DOT text, byte-identical for the same graph, run and view."""
    from cgtools.export.grouping import diagram_scene

    with collector_paused():
        return dot_text(display_graph(diagram_scene(graph, run, view), reveal))


def dot_text(D: nx.MultiDiGraph) -> str:
    """DOT through pydot: the display graph's attributes map one to one."""
    import pydot

    P = pydot.Dot("cgtools", graph_type="digraph", **D.graph.get("graph", {}))
    P.set_node_defaults(**D.graph.get("node", {}))
    P.set_edge_defaults(**D.graph.get("edge", {}))
    holders = clusters(P, D.graph.get("clusters", {}))
    members = D.graph.get("members", {})
    for key, data in D.nodes(data=True):
        if key == LEGEND:  # out of the graph's way: after its last rank
            rank = pydot.Subgraph("legend_rank", rank="sink")
            rank.add_node(pydot.Node(key, **data))
            P.add_subgraph(rank)
        else:
            holders.get(members.get(key), P).add_node(pydot.Node(key, **data))
    for u, v, data in D.edges(data=True):
        P.add_edge(pydot.Edge(u, v, **data))
    return P.to_string()


def clusters(P, table: dict) -> dict:
    """The pydot clusters of `table` (id -> (attributes, parent id)), each inside its parent, by id."""
    import pydot

    made = {}
    for cid, (attrs, parent) in table.items():  # a body's parent comes before it
        made[cid] = pydot.Cluster(cid, **attrs)
        (made[parent] if parent else P).add_subgraph(made[cid])
    return made


def render(dot: str, fmt: str, *, engine: str = "dot", args: tuple = (), timeout: float | None = None) -> bytes:
    """Graphviz's drawing of `dot` in format `fmt` (svg, png, pdf, json, …); LayoutTooSlow past `timeout` s."""
    program = shutil.which(engine)
    if program is None:
        raise CgError(GRAPHVIZ_MISSING)
    extra = ("-Gdpi=144",) if fmt == "png" else ()  # crisp on slides
    try:
        done = subprocess.run([program, f"-T{fmt}", *extra, *args], input=dot.encode(), capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LayoutTooSlow(f"Graphviz's {engine} took more than {timeout:g} s") from None
    said = " ".join(done.stderr.decode(errors="replace").split())  # Graphviz's message, on one line
    if done.returncode != 0:
        raise CgError(f"Graphviz could not draw the graph: {said}")
    if said:
        warnings.warn(f"Graphviz: {said}", stacklevel=2)  # e.g. a bitmap too large, scaled down
    return done.stdout
