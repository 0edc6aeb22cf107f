"""The step-by-step build-up of a lecture slide: the bare graph, then the forward pass one node at a time
(values appear), then the backward pass one node at a time in reverse (gradients appear).

Nodes must not move between frames, so the graph is laid out once, with every label in place, and each
frame is drawn on those positions (Graphviz's `neato -n2` takes positions as given).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from cgtools.errors import CgError
from cgtools.export.dot import Reveal, View, display_graph, dot_text, render


@dataclass
class Schedule:
    """When each tensor's value and gradient first appear, and which node each step computes.

    Step 0 is the bare graph; steps 1… run forward one node at a time (leaf values come with the first);
    then the seed ∂L/∂L = 1, then backward one node at a time in reverse, each giving its inputs' gradients."""

    value_step: dict[str, int]
    grad_step: dict[str, int]
    active: list[str | None]  # per step: the model node being computed


def schedule(graph, run) -> Schedule:
    order = [graph.nodes[i] for i in graph.topological_order()]
    value_step = dict.fromkeys(graph.leaves, 1)
    grad_step: dict[str, int] = {}
    active: list[str | None] = [None]
    for node in order:
        active.append(node.name)
        value_step.update((t, len(active) - 1) for t in node.outputs)
    if run is not None and run.loss is not None:
        active.append(run.loss)
        grad_step[run.loss] = len(active) - 1
        for node in reversed(order):
            active.append(node.name)
            grad_step.update((t, len(active) - 1) for t in node.inputs if t in run.grads and t not in grad_step)
    return Schedule(value_step, grad_step, active)


def reveals(graph, run) -> list[Reveal]:
    """One Reveal per frame: 1 bare + one per op forward + (seed + one per op) backward."""
    plan = schedule(graph, run)
    frames = []
    for k, active in enumerate(plan.active):
        values = frozenset(t for t, first in plan.value_step.items() if first <= k)
        grads = frozenset(t for t, first in plan.grad_step.items() if first <= k)
        frames.append(Reveal(values=values, grads=grads, active=active, seeded=bool(grads)))
    return frames


class Frames:
    """The frames of a graph and run, drawn in `fmt` on one shared layout. Iterate for each frame's bytes."""

    def __init__(self, graph, run, view: View, fmt: str):
        self.graph, self.run, self.view, self.fmt = graph, run, view, fmt
        self.reveals = reveals(graph, run)
        self._layout = None

    def __len__(self):
        return len(self.reveals)

    def layout(self) -> dict:
        """Positions from one `dot` layout of the complete diagram, with every label at full length."""
        if self._layout is None:
            full = dot_text(display_graph(self.graph, self.run, self.view))
            self._layout = json.loads(render(full, "json"))
        return self._layout

    def dot(self, reveal: Reveal) -> str:
        """A frame as DOT, pinned to the shared layout."""
        layout = self.layout()
        D = display_graph(self.graph, self.run, self.view, reveal)
        D.graph["graph"]["bb"] = layout["bb"]
        placed = {obj["name"]: obj for obj in layout.get("objects", [])}
        for key, data in D.nodes(data=True):
            obj = placed[key]
            data.update(pos=f"{obj['pos']}!", width=obj["width"], height=obj["height"], fixedsize="true")
        edges = sorted(layout.get("edges", []), key=lambda e: e["_gvid"])
        if len(edges) != D.number_of_edges():
            raise CgError("the frame's edges do not match the layout")  # pragma: no cover - same graph both times
        for (_, _, data), placed_edge in zip(D.edges(data=True), edges):
            data["pos"] = placed_edge["pos"]
            if "lp" in placed_edge:
                data["lp"] = placed_edge["lp"]
        if "lp" in layout:
            D.graph["graph"]["lp"] = layout["lp"]
        return dot_text(D)

    def __iter__(self):
        for reveal in self.reveals:
            text = self.dot(reveal)
            yield text.encode() if self.fmt == "dot" else render(text, self.fmt, engine="neato", args=("-n2",))


def merge_pdfs(pages: list[bytes]) -> bytes:
    """One PDF with a page per frame, for \\includegraphics[page=N] in Beamer."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in pages:
        writer.append(PdfReader(io.BytesIO(page)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
