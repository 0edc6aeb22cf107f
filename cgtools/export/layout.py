"""Positions for the diagrams and the interactive page: Graphviz's own layout where it is quick, a layered one
beyond.

`dot` needs seconds for a 1,750-node chain and minutes past a few thousand nodes; its time grows with the
virtual nodes it threads every edge through, one per rank the edge spans: a dense graph's long edges
(DenseNet's concatenations read every earlier layer) make hundreds of thousands of them, and `dot` runs for
more than ten minutes on 800 nodes. So a graph whose edges span too many ranks, or whose layout overruns its
time budget, gets a longest-path layering with barycentre ordering instead: linear in the edges, and the same
picture of a DAG (sources on one side, the loss on the other) in the direction `rankdir` asks for; Graphviz
then only draws it (`neato -n2` keeps the positions given).
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections import defaultdict

import networkx as nx

from cgtools.errors import CgError
from cgtools.export.dot import LayoutTooSlow, display_graph, dot_text, render
from cgtools.export.scene import Reveal, Scene

DOT_LIMIT = 800  # nodes; above this the layered layout is used (dot takes seconds on 1,750)
DOT_SPANS = 20_000  # ranks spanned by all edges (dot's virtual nodes); past this dot takes too long
DOT_BUDGET = 6.0  # s; dot still running then is stopped and the layered layout used
POINTS = 1.5  # Graphviz points per px of the layered layout: its sizes are the page's, Graphviz's fonts are larger
GAP = 40.0  # px of air between layers, and between neighbours in a layer
CHAR, LINE = 8.5, 20.0  # px per character and per line of a label, roughly, at the page's font sizes
SWEEPS = 4
GRAPHVIZ_LIMIT = 5_000  # boxes; Graphviz draws 5,000 in seconds, 20,000 in minutes and gigabytes
FRAMES_LIMIT = DOT_LIMIT  # boxes; frames share one `dot` layout, which has no faster fallback


Point = tuple[float, float]


def positions(scene: Scene) -> tuple[dict[str, Point], list[Point | None] | None]:
    """Screen positions (x right, y down) of the scene's nodes, and of its edge labels where the layout
    placed them (Graphviz does; None otherwise, and labels go on the edges' midpoints)."""
    if scene.graph.number_of_nodes() <= DOT_LIMIT and shutil.which("dot") and quick_for_dot(scene.graph):
        try:
            return dot_positions(scene)
        except LayoutTooSlow as slow:
            warnings.warn(f"{slow}: laid out by cgtools' layered layout instead", stacklevel=2)
    return layered_positions(scene.graph, scene.view.rankdir), None


def refuse_oversized(boxes: int, graph, limit: int = GRAPHVIZ_LIMIT, drawn: str = "one drawing") -> None:
    """A CgError saying what to draw instead when `boxes` are more than Graphviz lays out in reasonable time."""
    if boxes <= limit:
        return
    parts = ["--focus NAME --depth 2 (the neighbourhood of one node)"]
    if any(node.scope for node in graph.nodes):
        parts.append("--collapse 1 (one box per module)")
    raise CgError(f"{boxes:,} boxes are too many for {drawn} (at most {limit:,}; Graphviz would run for minutes); "
                  f"draw part of the graph, with {' or '.join(parts)}, or all of it as an interactive page: -f html")


def drawing(scene: Scene, fmt: str, reveal: Reveal = Reveal()) -> bytes:
    """The scene drawn by Graphviz in `fmt` (svg, png, pdf): laid out by `dot` within its time budget, else on
    the layered layout's positions, with a note saying so."""
    D = display_graph(scene, reveal)
    if quick_for_dot(scene.graph):
        try:
            return render(dot_text(D), fmt, timeout=DOT_BUDGET)
        except LayoutTooSlow as slow:
            warnings.warn(f"{slow}: laid out by cgtools' layered layout instead", stacklevel=2)
    else:
        warnings.warn(f"Graphviz's dot would take minutes on this graph ({rank_spans(scene.graph)} ranks spanned "
                      "by its edges): laid out by cgtools' layered layout instead", stacklevel=2)
    for key, (x, y) in layered_positions(scene.graph, scene.view.rankdir).items():
        D.nodes[key]["pos"] = f"{x * POINTS:.1f},{-y * POINTS:.1f}"
    return render(dot_text(D), fmt, engine="neato", args=("-n2",))


def quick_for_dot(G: nx.MultiDiGraph) -> bool:
    return rank_spans(G) <= DOT_SPANS


def rank_spans(G: nx.MultiDiGraph) -> int:
    """How many virtual nodes `dot` threads the edges through, roughly: the ranks each edge spans in a
    longest-path layering, doubled when edges carry labels (dot gives each label a rank of its own)."""
    rank = longest_path_ranks(G)
    spans = sum(max(rank[v] - rank[u], 1) for u, v in G.edges())
    return spans * 2 if any(lines for _, _, lines in G.edges(data="lines")) else spans


def longest_path_ranks(G: nx.MultiDiGraph, links: tuple | None = None) -> dict:
    """Each node's rank: one past its latest predecessor; a leaf sits just before its first reader, not with
    every other leaf in rank 0. `links`: adjacency(G), when already made."""
    order, preds, succs = links or adjacency(G)
    rank: dict = {}
    for n in order:
        rank[n] = max([rank[p] for p in preds[n]], default=-1) + 1
    for n in order:
        if not preds[n] and succs[n]:
            rank[n] = min([rank[s] for s in succs[n]]) - 1
    return rank


def adjacency(G: nx.MultiDiGraph) -> tuple[list, dict, dict]:
    """G's nodes in networkx's topological order (generation by generation, as nx.topological_sort gives them),
    and each node's predecessors and successors, each once, as plain lists: one pass over G's adjacency, where
    networkx's views cost a call per neighbour."""
    preds = {n: list(near) for n, near in G.pred.items()}
    succs = {n: list(near) for n, near in G.succ.items()}
    waiting = {n: len(near) for n, near in preds.items()}
    generation, order = [n for n, count in waiting.items() if not count], []
    while generation:
        order += generation
        ready = []
        for n in generation:
            for s in succs[n]:
                waiting[s] -= 1
                if not waiting[s]:
                    ready.append(s)
        generation = ready
    if len(order) < len(preds):
        raise nx.NetworkXUnfeasible("the graph has a cycle")
    return order, preds, succs


def dot_positions(scene: Scene) -> tuple[dict[str, Point], list[Point | None]]:
    """Where Graphviz's `dot` puts the scene's diagram, everything shown."""
    layout = json.loads(render(dot_text(display_graph(scene)), "json", timeout=DOT_BUDGET))
    scale = 1.25  # Graphviz points to CSS pixels, so the layout has room for the page's labels

    def point(text):
        x, y = map(float, text.split(","))
        return round(x * scale, 1), round(-y * scale, 1)

    nodes = {obj["name"]: point(obj["pos"]) for obj in layout.get("objects", []) if "pos" in obj}
    edges = sorted(layout.get("edges", []), key=lambda e: e["_gvid"])  # in the order the DOT lists them
    return nodes, [point(e["lp"]) if "lp" in e else None for e in edges]


def layered_positions(D: nx.MultiDiGraph, rankdir: str) -> dict[str, tuple[float, float]]:
    links = order, preds, succs = adjacency(D)
    rank = longest_path_ranks(D, links)
    layers: dict[int, list] = defaultdict(list)
    for n in order:
        layers[rank[n]].append(n)
    place = {n: i for layer in layers.values() for i, n in enumerate(layer)}

    def reorder(layer, neighbours):
        def barycentre(n):
            near = [place[m] for m in neighbours[n]]
            return sum(near) / len(near) if near else place[n]

        layer.sort(key=barycentre)
        place.update((n, i) for i, n in enumerate(layer))

    ranks = sorted(layers)
    down = [layers[r] for r in ranks[1:] if len(layers[r]) > 1]  # a layer of one has nothing to order (most
    up = [layers[r] for r in reversed(ranks[:-1]) if len(layers[r]) > 1]  # layers of a long chain)
    for _ in range(SWEEPS):  # fewer crossings: order each layer by its neighbours' places, down then up
        for layer in down:
            reorder(layer, preds)
        for layer in up:
            reorder(layer, succs)
    return place_layers(D, layers, rank, rankdir)


def extent(lines) -> tuple[float, float]:
    """A label's rough width and height in px, from its lines (all shown)."""
    if not lines:
        return 0.0, 0.0
    return max([len(line.text) for line in lines]) * CHAR + 24, len(lines) * LINE + 12


def place_layers(D, layers: dict, rank: dict, rankdir: str) -> dict[str, Point]:
    """Coordinates with room for every label: each layer as deep as its widest node, plus the widest edge
    label leaving it; neighbours in a layer as far apart as their sizes ask."""
    horizontal = rankdir in ("LR", "RL")
    along_size, across_size = {}, {}  # each node's size along the layers' direction and across it
    for n, lines in D.nodes(data="lines"):
        width, height = extent(lines)
        along_size[n], across_size[n] = (width, height) if horizontal else (height, width)
    labels: dict[int, float] = defaultdict(float)
    for u, _, lines in D.edges(data="lines"):
        if lines:
            labels[rank[u]] = max(labels[rank[u]], extent(lines)[0 if horizontal else 1])
    along, at, previous = {}, 0.0, None
    for r in sorted(layers):
        half = max([along_size[n] for n in layers[r]]) / 2
        if previous is not None:
            at += along[previous][1] + labels[previous] + half + GAP
        along[r], previous = (at, half), r
    point = {"LR": lambda a, b: (a, b), "RL": lambda a, b: (-a, b), "TB": lambda a, b: (b, a),
             "BT": lambda a, b: (b, -a)}[rankdir]
    out = {}
    for r, layer in layers.items():
        spans = [across_size[n] + GAP for n in layer]
        offset, a = -sum(spans) / 2, along[r][0]
        for n, span in zip(layer, spans):
            out[n] = point(a, offset + span / 2)
            offset += span
    return out
