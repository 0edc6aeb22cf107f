"""Positions for the interactive page: Graphviz's own layout where it is quick, a layered one beyond.

`dot` needs seconds for a 1,750-node graph and minutes past a few thousand nodes, so larger
graphs get a longest-path layering with barycentre ordering: linear in the edges, and the same picture of a
DAG (sources on one side, the loss on the other) in the direction `rankdir` asks for.
"""

from __future__ import annotations

import json
from collections import defaultdict

import networkx as nx

from cgtools.export.dot import display_graph, dot_text, render
from cgtools.export.scene import Scene

DOT_LIMIT = 800  # nodes; above this the layered layout is used (dot takes seconds on 1,750)
GAP = 40.0  # px of air between layers, and between neighbours in a layer
CHAR, LINE = 8.5, 20.0  # px per character and per line of a label, roughly, at the page's font sizes
SWEEPS = 4


Point = tuple[float, float]


def positions(scene: Scene) -> tuple[dict[str, Point], list[Point | None] | None]:
    """Screen positions (x right, y down) of the scene's nodes, and of its edge labels where the layout
    placed them (Graphviz does; None otherwise, and labels go on the edges' midpoints)."""
    import shutil

    if scene.graph.number_of_nodes() <= DOT_LIMIT and shutil.which("dot"):
        return dot_positions(scene)
    return layered_positions(scene.graph, scene.view.rankdir), None


def dot_positions(scene: Scene) -> tuple[dict[str, Point], list[Point | None]]:
    """Where Graphviz's `dot` puts the scene's diagram, everything shown."""
    layout = json.loads(render(dot_text(display_graph(scene)), "json"))
    scale = 1.25  # Graphviz points to CSS pixels, so the layout has room for the page's labels

    def point(text):
        x, y = map(float, text.split(","))
        return round(x * scale, 1), round(-y * scale, 1)

    nodes = {obj["name"]: point(obj["pos"]) for obj in layout.get("objects", []) if "pos" in obj}
    edges = sorted(layout.get("edges", []), key=lambda e: e["_gvid"])  # in the order the DOT lists them
    return nodes, [point(e["lp"]) if "lp" in e else None for e in edges]


def layered_positions(D: nx.MultiDiGraph, rankdir: str) -> dict[str, tuple[float, float]]:
    order = list(nx.topological_sort(D))
    rank: dict = {}
    for n in order:
        rank[n] = max((rank[p] + 1 for p in D.predecessors(n)), default=0)
    for n in order:  # a leaf sits just before its first reader, not with every other leaf in rank 0
        if D.in_degree(n) == 0 and D.out_degree(n):
            rank[n] = min(rank[s] for s in D.successors(n)) - 1
    layers: dict[int, list] = defaultdict(list)
    for n in order:
        layers[rank[n]].append(n)
    place = {n: i for layer in layers.values() for i, n in enumerate(layer)}

    def reorder(layer, neighbours):
        def barycentre(n):
            near = [place[m] for m in neighbours(n)]
            return sum(near) / len(near) if near else place[n]

        layer.sort(key=barycentre)
        place.update((n, i) for i, n in enumerate(layer))

    ranks = sorted(layers)
    for _ in range(SWEEPS):  # fewer crossings: order each layer by its neighbours' places, down then up
        for r in ranks[1:]:
            reorder(layers[r], D.predecessors)
        for r in reversed(ranks[:-1]):
            reorder(layers[r], D.successors)
    return place_layers(D, layers, rank, rankdir)


def extent(lines) -> tuple[float, float]:
    """A label's rough width and height in px, from its lines (all shown)."""
    if not lines:
        return 0.0, 0.0
    return max(len(line.text) for line in lines) * CHAR + 24, len(lines) * LINE + 12


def place_layers(D, layers: dict, rank: dict, rankdir: str) -> dict[str, Point]:
    """Coordinates with room for every label: each layer as deep as its widest node, plus the widest edge
    label leaving it; neighbours in a layer as far apart as their sizes ask."""
    horizontal = rankdir in ("LR", "RL")
    size = {n: extent(D.nodes[n]["lines"]) for n in D}
    along_of = (lambda wh: wh[0]) if horizontal else (lambda wh: wh[1])
    across_of = (lambda wh: wh[1]) if horizontal else (lambda wh: wh[0])
    labels: dict[int, float] = defaultdict(float)
    for u, _, lines in D.edges(data="lines"):
        labels[rank[u]] = max(labels[rank[u]], along_of(extent(lines)))
    along, at = {}, 0.0
    ranks = sorted(layers)
    for r in ranks:
        half = max(along_of(size[n]) for n in layers[r]) / 2
        if along:
            previous = ranks[ranks.index(r) - 1]
            at += along[previous][1] + labels[previous] + half + GAP
        along[r] = (at, half)
    out = {}
    for r, layer in layers.items():
        spans = [across_of(size[n]) + GAP for n in layer]
        offset = -sum(spans) / 2
        for n, span in zip(layer, spans):
            a, b = along[r][0], offset + span / 2
            offset += span
            out[n] = {"LR": (a, b), "RL": (-a, b), "TB": (b, a), "BT": (b, -a)}[rankdir]
    return out
