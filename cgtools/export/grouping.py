"""Parts of a big graph's scene: the neighbourhood of one node or tensor (`render --focus NAME --depth K`), and
the graph cut at a depth of its module hierarchy, each module drawn as one box (`render --collapse DEPTH`).

Both rewrite a finished scene (scene.py), so every format draws them the same way.
"""

from __future__ import annotations

import warnings

import networkx as nx

from cgtools.errors import CgError, did_you_mean
from cgtools.export.bodies import draws_bodies, with_bodies
from cgtools.export.hierarchy import group_at, has_hierarchy, scopes
from cgtools.export.scene import Facts, Line, Scene, View, make_scene


def diagram_scene(graph, run=None, view: View = View()) -> Scene:
    """The scene a diagram draws: focused on `view.focus`, cut at `view.collapse`, with the bodies of the ops
    still drawn (bodies.py)."""
    scene = make_scene(graph, run, view)
    if view.focus is not None:
        scene = focused(scene, view.focus, view.depth)
    if view.collapse:
        scene = collapsed(scene, graph, run)
    if draws_bodies(graph, view):
        scene = with_bodies(scene, graph, run)
    return scene


# ---- the neighbourhood of one node or tensor ---------------------------------------------------------------


def centre(S: nx.MultiDiGraph, name: str) -> set:
    """The scene nodes `name` stands for: an op by node name, a leaf or output by tensor name, a tensor by the
    nodes that make and read it, a weight listed inside an op by that op."""
    found = {key for key, data in S.nodes(data=True) if data["model"] == name or name in data.get("weights", ())}
    found |= {end for u, v, tensor in S.edges(data="tensor") if tensor == name for end in (u, v)}
    if not found:
        known = sorted({data["model"] for _, data in S.nodes(data=True)} | {t for *_, t in S.edges(data="tensor")})
        raise CgError(f"--focus: no node or tensor named {name!r}{did_you_mean(name, known)}")
    return found


def within(S: nx.MultiDiGraph, start: set, depth: int, step) -> set:
    """The nodes reached from `start` in at most `depth` steps along `step` (predecessors or successors)."""
    reached, frontier = set(start), set(start)
    for _ in range(depth):
        frontier = {m for n in frontier for m in step(n)} - reached
        reached |= frontier
    return reached


def focused(scene: Scene, name: str, depth: int) -> Scene:
    """The scene cut to what lies within `depth` edges of `name`, upstream and downstream. An edge cut at one
    end keeps its label and leads to a stub: a small box naming the node beyond."""
    S = scene.graph
    middle = centre(S, name)
    kept = within(S, middle, depth, S.predecessors) | within(S, middle, depth, S.successors)
    F = nx.MultiDiGraph(S.subgraph(kept))
    for u, v, data in S.edges(data=True):
        if (u in kept) != (v in kept):
            far = v if u in kept else u
            if far not in F:
                first = S.nodes[far]["lines"][0].text
                F.add_node(far, **{**S.nodes[far], "lines": [Line(f"⋯ {first}", "names")], "stub": True})
            F.add_edge(u, v, **data)
    return Scene(scene.view, scene.title, F)


# ---- modules drawn as one box each -------------------------------------------------------------------------


def collapsed(scene: Scene, graph, run=None) -> Scene:
    """The scene with every node whose scope reaches `view.collapse` levels drawn inside its module's box,
    "layer1 · 12 ops"; a node with a shorter scope stays as it is. Edges inside a box go; one edge per tensor
    crossing a box's boundary stays, carrying the tensor's value and gradient."""
    depth = scene.view.collapse
    if not has_hierarchy(graph):
        warnings.warn("the graph records no module scopes (node names like /layer1/conv/Conv): --collapse draws it "
                      "flat", stacklevel=2)
        return scene
    where, S = scopes(graph), scene.graph
    group = {}
    for key, data in S.nodes(data=True):
        scope = where.get(data["model"], ()) if data["kind"] != "output" else ()
        if len(scope) >= depth:
            group[key] = group_at(scope, depth)
    ids = {scope: f"G{i}" for i, scope in enumerate(sorted(set(group.values())))}
    C = nx.MultiDiGraph()
    for key, data in S.nodes(data=True):
        if key not in group:
            C.add_node(key, **data)
    for scope, key in ids.items():
        members = [k for k, s in group.items() if s == scope]
        C.add_node(key, **module_node(scope, members, S))
    facts = Facts(graph, run, scene.view)
    crossing = set()
    for u, v, data in S.edges(data=True):
        a, b = ids.get(group.get(u), u), ids.get(group.get(v), v)
        if a == b or (a, b, data["tensor"]) in crossing:
            continue
        crossing.add((a, b, data["tensor"]))
        if data["use"] is not None and a != u:  # the shared tensor's value was written on its maker, now hidden
            data = {**data, "lines": facts.tensor_lines(data["tensor"]), "use": None}
        C.add_edge(a, b, **data)
    return Scene(scene.view, scene.title, C)


def module_node(scope: tuple, members: list, S: nx.MultiDiGraph) -> dict:
    """A module's box: its name and op count; its full path and the ops it holds in the hover text."""
    ops = [S.nodes[k]["model"] for k in members if S.nodes[k]["kind"] == "op"]
    tensors = [t for k in members for t in S.nodes[k]["tensors"]]
    count = f"{len(ops)} op" + ("s" if len(ops) != 1 else "")
    return {"kind": "group", "model": "/".join(scope), "tensors": tensors, "loss": False,
            "lines": [Line(scope[-1], "param"), Line(count, "names")],
            "hover": (f"module {'/'.join(scope)}: {count}", ", ".join(ops[:20]) + (" …" if len(ops) > 20 else ""))}
