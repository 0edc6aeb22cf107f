"""The step-by-step build-up of a lecture slide, drawn as frames: the bare graph, then the forward pass one
node at a time (values appear), then the backward pass one node at a time in reverse (gradients appear).
The steps themselves are the scene's schedule (scene.py).

Nodes must not move between frames, so the graph is laid out once, with every label in place, and each
frame is drawn on those positions (Graphviz's `neato -n2` takes positions as given).
"""

from __future__ import annotations

import io
import json

from cgtools.errors import CgError
from cgtools.export.dot import display_graph, dot_text, render
from cgtools.export.scene import Reveal, View, make_scene, reveals


class Frames:
    """The frames of a graph and run, drawn in `fmt` on one shared layout. Iterate for each frame's bytes."""

    def __init__(self, graph, run, view: View, fmt: str):
        self.fmt = fmt
        self.scene = make_scene(graph, run, view)  # made once, drawn at every step
        self.reveals = reveals(graph, run)
        self._layout = None

    def __len__(self):
        return len(self.reveals)

    def layout(self) -> dict:
        """Positions from one `dot` layout of the complete diagram, with every label at full length."""
        if self._layout is None:
            full = dot_text(display_graph(self.scene))
            self._layout = json.loads(render(full, "json"))
        return self._layout

    def dot(self, reveal: Reveal) -> str:
        """A frame as DOT, pinned to the shared layout."""
        layout = self.layout()
        D = display_graph(self.scene, reveal)
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
