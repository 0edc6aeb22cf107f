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
    """When each value and gradient first appears, and what each step computes.

    Step 0 is the bare graph; steps 1… run forward one node at a time (leaf values come with the first);
    then the seed ∂L/∂L = 1; then backward one node at a time in reverse, each passing its inputs their
    shares; a tensor's whole gradient shows once every reader has passed its share. The last step shows
    everything, with nothing highlighted: the finished picture."""

    value_step: dict[str, int]
    grad_step: dict[str, int]
    use_step: dict[tuple[str, int], int]  # (node name, input slot) -> step its share appears
    active: list[tuple[str, str] | None]  # per step: ("op" | "output", name) being computed

    def reveal(self, k: int) -> Reveal:
        if k == len(self.active) - 1:
            return Reveal()
        return Reveal(values=frozenset(t for t, first in self.value_step.items() if first <= k),
                      grads=frozenset(t for t, first in self.grad_step.items() if first <= k),
                      uses=frozenset(u for u, first in self.use_step.items() if first <= k), active=self.active[k])


def schedule(graph, run) -> Schedule:
    order = [graph.nodes[i] for i in graph.topological_order()]
    value_step = dict.fromkeys(graph.leaves, 1)
    active: list = [None]
    for node in order:
        active.append(("op", node.name))
        value_step.update((t, len(active) - 1) for t in node.outputs)
    grad_step: dict[str, int] = {}
    use_step: dict[tuple[str, int], int] = {}
    if run is not None and run.loss is not None:
        active.append(("output", run.loss))
        grad_step[run.loss] = len(active) - 1
        for node in reversed(order):
            active.append(("op", node.name))
            step = len(active) - 1
            for out in node.outputs:  # an output nobody reads: its (zero) gradient shows with its node
                grad_step.setdefault(out, step)
            for slot, t in enumerate(node.inputs):
                if t in run.grads:
                    use_step[node.name, slot] = step
                    grad_step[t] = step  # the latest reader in backward order completes the sum
    active.append(None)
    for t in graph.leaves:  # leaves nobody reads
        grad_step.setdefault(t, len(active) - 1)
    return Schedule(value_step, grad_step, use_step, active)


def reveals(graph, run) -> list[Reveal]:
    """One Reveal per frame: bare, one per op forward, then (with a backward pass) the seed, one per op
    backward, and the finished picture."""
    plan = schedule(graph, run)
    return [plan.reveal(k) for k in range(len(plan.active))]


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
