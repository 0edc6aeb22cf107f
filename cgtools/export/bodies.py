"""Subgraphs drawn with the node that holds them: If's then and else branches, Loop's and Scan's body.

Each body is a scene of its own (scene.py) merged into the enclosing one, its nodes tagged with the body they
belong to (`body`, a key of the scene graph's `bodies` table); DOT draws a body as a labelled cluster, the
page as a group that opens on a click. A tensor of the enclosing graph a body reads is drawn inside the body
as an input, with a dashed link from what makes it outside; each of the body's outputs has a dashed link to
the node, whose results they become.

With a run, a body shows the values of its last execution (a Loop's last iteration, a Scan's last slice, the
branch If took), found by running the node once more on the run's values and keeping its body's last run; the
cluster's label says which. Bodies are run forward only, so they carry no gradients.
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from cgtools.errors import CgError
from cgtools.export.colours import Colouring, magnitudes
from cgtools.export.folding import LECTURE_SIZED
from cgtools.export.scene import Line, Scene, View, make_scene
from cgtools.ops import Context, get_op
from cgtools.ops.base import bound_forward


def subgraphs(node) -> list[tuple[str, object]]:
    """The node's graph attributes, (attribute name, Graph), in the node's order."""
    found = [(name, value) for name, value in node.attrs.items() if hasattr(value, "outer") and hasattr(value, "nodes")]
    return sorted(found, key=lambda item: item[0] == "else_branch")  # then before else, as they are read


def has_bodies(graph) -> bool:
    return any(subgraphs(node) for node in graph.nodes)


def draws_bodies(graph, view: View) -> bool:
    """Whether the diagram draws the bodies: as `view.bodies` says, else when the graph has some and is
    lecture-sized (a model's bodies would bury it)."""
    if view.bodies is not None:
        return view.bodies and has_bodies(graph)
    return has_bodies(graph) and len(graph.nodes) + len(graph.leaves) <= LECTURE_SIZED


class Recorder:
    """A body that keeps its last run and counts its runs; everything else is the body's own."""

    def __init__(self, body):
        self.body, self.last, self.runs = body, None, 0

    def __getattr__(self, name):
        return getattr(self.body, name)

    def run(self, *args, **kwargs):
        self.last = self.body.run(*args, **kwargs)
        self.runs += 1
        return self.last


def last_runs(node, run, held) -> dict[str, Recorder]:
    """Each body's last run and run count, from running the node again on the run's values (none when the run
    lacks an input's value or the node fails)."""
    if run is None or any(t and t not in run.values for t in node.inputs):
        return {}
    recorders = {name: Recorder(body) for name, body in held}
    forward = bound_forward(get_op(node.op), {**node.attrs, **recorders})
    try:
        forward(Context(), *(run.values[t] if t else None for t in node.inputs))
    except CgError:
        return {}
    return recorders


def body_label(node, attr: str, recorder: Recorder | None) -> list[Line]:
    """The cluster's label: the body's part (then, else, body) and which execution its values are from."""
    part = attr.removesuffix("_branch")
    if recorder is None:
        return [Line(part, "param")]
    if node.op == "If":
        said = "taken" if recorder.runs else "not taken"
    else:
        said = {0: "not run", 1: "run once"}.get(recorder.runs, f"values of the last of {recorder.runs} iterations")
    return [Line(part, "param"), Line(said, "names")]


def with_bodies(scene: Scene, graph, run) -> Scene:
    """The scene with the bodies of its nodes (and theirs, nested) drawn beside them."""
    S = nx.MultiDiGraph(scene.graph)
    S.graph["bodies"] = {}
    ops = {data["model"]: key for key, data in S.nodes(data=True) if data["kind"] == "op"}
    add_bodies(S, graph, run, scene.view, ops, tensor_keys(S, S.nodes), None)
    return Scene(scene.view, scene.title, S)


def tensor_keys(S: nx.MultiDiGraph, keys) -> dict[str, str]:
    """The scene node standing for each tensor, among `keys` (outputs' nodes aside: they make nothing)."""
    return {t: key for key in keys if S.nodes[key]["kind"] != "output" for t in S.nodes[key]["tensors"]}


def add_bodies(S: nx.MultiDiGraph, graph, run, view: View, ops: dict, names: dict, parent: str | None) -> None:
    """Each body of the ops drawn (`ops`: scene key by node name) merged into S, its outer reads linked from the
    scene nodes making them (`names`), then the bodies inside it."""
    for node in graph.nodes:
        key, held = ops.get(node.name), subgraphs(node)
        if not held or key not in S:
            continue
        S.nodes[key]["bodies"] = [attr.removesuffix("_branch") for attr, _ in held]
        recorders = last_runs(node, run, held)
        for b, (attr, body) in enumerate(held):
            cid, recorder = f"{key}_{b}", recorders.get(attr)
            body_run = recorder.last if recorder is not None else None
            inner = make_scene(body, body_run, replace(view, colouring=Colouring(), focus=None, collapse=None))
            keys = merge(S, inner.graph, cid)
            S.graph["bodies"][cid] = {"op": key, "parent": parent, "label": body_label(node, attr, recorder),
                                      "graph": body, "run": body_run}
            inside = tensor_keys(S, keys)
            for name in body.outer:
                if names.get(name) in S and name in inside:
                    link(S, names[name], inside[name], name, run, view)
            for i, out in enumerate(body.outputs):
                link(S, f"{cid}_O{i}", key, out, None, view)
            inner_ops = {S.nodes[k]["model"]: k for k in keys if S.nodes[k]["kind"] == "op"}
            add_bodies(S, body, body_run, view, inner_ops, {**names, **inside}, cid)


def merge(S: nx.MultiDiGraph, inner: nx.MultiDiGraph, cid: str) -> list[str]:
    """The body's scene into S, its keys prefixed with the body's id and its nodes tagged with it; its outputs
    are no loss. The keys, in the body scene's order."""
    keys = {key: f"{cid}_{key}" for key in inner}
    for key, data in inner.nodes(data=True):
        lines = [line for line in data["lines"] if line.role != "loss"]
        S.add_node(keys[key], **{**data, "lines": lines, "loss": False, "body": cid})
    for u, v, data in inner.edges(data=True):
        S.add_edge(keys[u], keys[v], **data, body=cid)
    return list(keys.values())


def link(S: nx.MultiDiGraph, u: str, v: str, tensor: str, run, view: View) -> None:
    """A dashed edge between a body and the graph around it, carrying no label (the tensor's edge does)."""
    values, grads = (run.values, run.grads) if run is not None else ({}, {})
    S.add_edge(u, v, tensor=tensor, slot=0, use=None, lines=[], hover=(f"{tensor}: passed to or from a body",),
               link=True, measures=magnitudes(tensor, values, grads, view.colouring.diffs))
