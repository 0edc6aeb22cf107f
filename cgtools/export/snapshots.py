"""Training you can watch: the graph drawn at some steps of a training, with the params' values and gradients
of that step and its step, epoch and loss written under the title.

As files, the snapshots are frames (frames.py): laid out once, on labels as wide as the widest any snapshot
has, and each drawn pinned to that layout, so nothing moves between them. As one page, the graph is drawn
once and a slider puts each snapshot's labels, tooltips and loss on it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cgtools.export.dot import display_graph, render
from cgtools.export.frames import FrameFiles, frames_folder, layout_of, pinned, write_drawings
from cgtools.export.grouping import diagram_scene
from cgtools.export.html import fill_template, flat, node_info, page_doc, page_json, stage_labels, tensor_text
from cgtools.export.labels import format_number
from cgtools.export.layout import FRAMES_LIMIT, refuse_oversized
from cgtools.export.scene import Line, Scene, View
from cgtools.files import write_atomic


def caption(snapshot) -> str:
    """What a snapshot says of its step (a train.Step: number, epoch, loss)."""
    return f"step {snapshot.number} · epoch {snapshot.epoch} · loss {format_number(snapshot.loss, 4)}"


def snapshot_scene(graph, snapshot, view: View) -> Scene:
    """The diagram of a step's run, its caption a line of the title."""
    scene = diagram_scene(graph, snapshot.run, view)
    return replace(scene, title=[*scene.title, Line(caption(snapshot), "doc")])


class Snapshots:
    """The snapshots of a training (train.Step each) drawn in `fmt` on one layout; iterate for their bytes."""

    def __init__(self, graph, snapshots: list, view: View, fmt: str):
        refuse_oversized(len(graph.nodes), graph, FRAMES_LIMIT, "frames")
        self.fmt = fmt
        self.drawn = [display_graph(snapshot_scene(graph, snapshot, view)) for snapshot in snapshots]
        self.layout = layout_of(widest(self.drawn))

    def __len__(self):
        return len(self.drawn)

    def __iter__(self):
        for D in self.drawn:
            text = pinned(D, self.layout)
            yield text.encode() if self.fmt == "dot" else render(text, self.fmt, engine="neato", args=("-n2",))


def widest(drawn: list):
    """The first display graph with each node's, edge's and the graph's label the longest any of `drawn` has
    there: a layout fitting every snapshot."""
    def longest(labels):
        return max(labels, key=lambda label: len(str(label)))

    D = drawn[0].copy()
    D.graph["graph"] = dict(D.graph["graph"], label=longest(d.graph["graph"]["label"] for d in drawn))
    for key, data in D.nodes(data=True):
        data["label"] = longest(d.nodes[key].get("label", "") for d in drawn)
    for u, v, k, data in D.edges(keys=True, data=True):
        data["label"] = longest(d.edges[u, v, k].get("label", "") for d in drawn)
    return D


def write_snapshots(graph, snapshots: list, view: View | None = None, fmt: str = "svg",
                    folder: Path | str = "frames", stem: str = "graph", *, progress=None) -> FrameFiles:
    """The snapshots written into `folder` as write_frames writes frames; for html, one page `{stem}.html`."""
    view = view or View()
    if fmt == "html":
        folder = frames_folder(folder, "svg")
        page = folder / f"{stem}.html"
        text = snapshot_page(graph, snapshots, view)
        write_atomic(page, lambda f: f.write(text.encode()))
        return FrameFiles([page])
    return write_drawings(Snapshots(graph, snapshots, view, fmt), frames_folder(folder, fmt), stem,
                          progress=progress)


def snapshot_page(graph, snapshots: list, view: View) -> str:
    """The interactive page of the last snapshot, with every snapshot's labels and tooltips for its slider."""
    doc = page_doc(graph, snapshots[-1].run, view)
    ids = {node["id"] for node in doc["nodes"]}
    doc["snapshots"] = [snapshot_labels(graph, diagram_scene(graph, snapshot.run, flat(view)), snapshot, ids)
                        for snapshot in snapshots]
    return fill_template(page_json(doc))


def snapshot_labels(graph, scene: Scene, snapshot, ids: set) -> dict:
    """What the page's slider puts on the graph for one snapshot: its caption, each node's and edge's label
    by page id (an edge's label on its label node `T<i>` where Graphviz placed one), each edge's tooltip and
    what a click on an input or param shows."""
    run = snapshot.run
    labels = [[key, stage_labels(data["lines"], node=True)[-1]] for key, data in scene.graph.nodes(data=True)]
    info = {key: node_info(graph, {}, data["model"], data["kind"], run)["rows"]
            for key, data in scene.graph.nodes(data=True) if data["kind"] in ("input", "param")}
    tensors = []
    for i, (_, _, data) in enumerate(scene.graph.edges(data=True)):
        labels.append([f"T{i}" if f"T{i}" in ids else f"E{i}", stage_labels(data["lines"])[-1]])
        name = data["tensor"]
        share = run.use_grads.get(data["use"]) if data["use"] else None
        tensors.append(tensor_text(name, run.values.get(name), run.grads.get(name), run.loss, share))
    return {"caption": caption(snapshot), "labels": labels, "tensors": tensors, "info": info}
