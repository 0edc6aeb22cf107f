"""Weights drawn inside the ops that read them, on model-sized graphs, as Netron does: instead of hundreds of leaf
nodes fanning grey lines into a thin spine, each op lists its weights by name and shape (`weight 64×3×7×7`);
the scene (scene.py) puts their values and gradients in the op's hover text. `--leaves` (View.show) turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from cgtools.export.labels import shorten

LECTURE_SIZED = 40  # ops and leaves; a larger graph is model-sized: its weights are listed inside their ops


def weight_line(name: str, shape) -> str:
    """A weight as its op lists it: the last part of its name and its shape, `weight 64×3×7×7`."""
    dims = "" if shape is None else "×".join(map(str, shape)) or "scalar"
    return shorten(f"{name.rsplit('.', 1)[-1] or name} {dims}".strip())


@dataclass
class Inside:
    """On a model-sized graph, the weights one op reads once, listed inside that op instead of drawn as leaves
    (as Netron does): `reader` by tensor; `source` the name each is shown by (an exporter's Identity copy of a
    weight shows the weight's); `hidden` the leaves and weight-computing ops no longer drawn."""

    reader: dict[str, str]
    source: dict[str, str]
    hidden: set[str]


def listed_inside(graph, G: nx.MultiDiGraph, show) -> Inside:
    """Which weights are listed inside their ops: params and constants (small constants stay written in the op's
    symbol), and what ops compute from them alone (Identity copies, ConstantOfShape fills)."""
    found, makers = Inside({}, {}, set()), {}
    if "leaves" in show or len(graph.nodes) + len(graph.leaves) <= LECTURE_SIZED:
        return found
    small = set()
    for name, leaf in graph.leaves.items():
        if leaf.kind == "constant" and leaf.value is not None and leaf.value.size <= 6:
            small.add(name)
        elif leaf.kind != "input":
            found.source[name] = makers[name] = name
    for node in (graph.nodes[i] for i in graph.topological_order()):
        if len(node.outputs) == 1 and node.inputs and all(t in found.source or t in small for t in node.inputs if t):
            out = node.outputs[0]
            found.source[out] = found.source.get(node.inputs[0], out) if node.op == "Identity" else out
            makers[out] = node.name
    computing = set(makers.values())
    for tensor, maker in makers.items():
        if tensor not in graph.outputs and G.out_degree(maker) == 1:
            reader = next(iter(G.successors(maker)))
            if reader not in computing:  # read by a visible op, not by another weight computation
                found.reader[tensor] = reader
                found.hidden.add(maker)
    hide_unread(found, makers, G)
    return found


def hide_unread(found: Inside, makers: dict, G: nx.MultiDiGraph) -> None:
    """Hide, from the outputs back, the weights and weight computations whose every reader is hidden."""
    for tensor in reversed(list(makers)):
        maker = makers[tensor]
        if maker not in found.hidden and G.out_degree(maker) and all(r in found.hidden for r in G.successors(maker)):
            found.hidden.add(maker)
