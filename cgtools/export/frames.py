"""The step-by-step build-up of a lecture slide, drawn as frames: the bare graph, then the forward pass one
node at a time (values appear), then the backward pass one node at a time in reverse (gradients appear).
The steps themselves are the scene's schedule (scene.py). Written into a folder, they are numbered files
(`affine-0.svg`, …), the frames of an earlier, longer sequence removed, and for pdf one multi-page PDF too.

Nodes must not move between frames, so the graph is laid out once, with every label in place, and each
frame is drawn on those positions (Graphviz's `neato -n2` takes positions as given).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cgtools.errors import CgError
from cgtools.export.dot import display_graph, dot_text, render
from cgtools.export.grouping import diagram_scene
from cgtools.export.layout import FRAMES_LIMIT, refuse_oversized
from cgtools.export.scene import Reveal, View, reveals
from cgtools.files import write_atomic


class Frames:
    """The frames of a graph and run, drawn in `fmt` on one shared layout. Iterate for each frame's bytes."""

    def __init__(self, graph, run, view: View, fmt: str):
        self.fmt = fmt
        if not (view.focus or view.collapse):
            refuse_oversized(len(graph.nodes), graph, FRAMES_LIMIT, "frames")
        self.scene = diagram_scene(graph, run, view)  # made once (focused, collapsed), drawn at every step
        refuse_oversized(self.scene.graph.number_of_nodes(), graph, FRAMES_LIMIT, "frames")
        self.reveals = reveals(graph, run)
        self._layout = None

    def __len__(self):
        return len(self.reveals)

    def layout(self) -> dict:
        """Positions from one `dot` layout of the complete diagram, with every label at full length."""
        if self._layout is None:
            self._layout = json_layout(self.scene)
        return self._layout

    def dot(self, reveal: Reveal) -> str:
        """A frame as DOT, pinned to the shared layout."""
        return pinned(display_graph(self.scene, reveal), self.layout())

    def __iter__(self):
        for reveal in self.reveals:
            text = self.dot(reveal)
            yield text.encode() if self.fmt == "dot" else render(text, self.fmt, engine="neato", args=("-n2",))


def pinned(D, layout: dict) -> str:
    """The display graph `D` as DOT, every node, edge and label where `layout` (`dot -Tjson` of the same graph)
    put them, for `neato -n2`."""
    D.graph["graph"]["bb"] = layout["bb"]
    placed = {obj["name"]: obj for obj in layout.get("objects", [])}
    for key, data in D.nodes(data=True):
        obj = placed[key]
        data.update(pos=f"{obj['pos']}!", width=obj["width"], height=obj["height"], fixedsize="true")
    edges = placed_edges(layout)
    if len(edges) != D.number_of_edges():
        raise CgError("the frame's edges do not match the layout")  # pragma: no cover - same graph both times
    for (_, _, data), placed_edge in zip(D.edges(data=True), edges):
        data["pos"] = placed_edge["pos"]
        if "lp" in placed_edge:
            data["lp"] = placed_edge["lp"]
    if "lp" in layout:
        D.graph["graph"]["lp"] = layout["lp"]
    return dot_text(D)


def json_layout(scene) -> dict:
    """Graphviz's layout of the complete diagram (`dot -Tjson`): positions, sizes and drawing operations of
    every node and edge, with every label at full length. Frames and the TeX picture are drawn on it."""
    return layout_of(display_graph(scene))


def layout_of(D) -> dict:
    """Graphviz's layout (`dot -Tjson`) of the display graph `D`."""
    return json.loads(render(dot_text(D), "json"))


def placed_edges(layout: dict) -> list[dict]:
    """The layout's edges in the display graph's order."""
    return sorted(layout.get("edges", []), key=lambda e: e["_gvid"])


def merge_pdfs(pages: list[bytes]) -> bytes:
    """One PDF with a page per frame, for \\includegraphics[page=N] in Beamer."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in pages:
        writer.append(PdfReader(io.BytesIO(page)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class NotAFolder(CgError):
    """The place given for the frames is a file."""


@dataclass
class FrameFiles:
    """What `write_frames` wrote: the frames in order and, for pdf, the multi-page PDF."""

    frames: list[Path]
    pdf: Path | None = None


def write_frames(graph, run, view: View | None = None, fmt: str = "svg", folder: Path | str = "frames",
                 stem: str = "graph", *, progress: Callable[[Frames], contextlib.AbstractContextManager] | None = None
                 ) -> FrameFiles:
    """Draw the frames of `graph` and `run` in `fmt` into `folder` (made if missing, inside an existing one) as
    `{stem}-{i}.{fmt}`, numbered with as many digits as the last one needs; files of that pattern already there
    are removed first. For pdf, `{stem}-frames.pdf` holds every frame as a page.

    `progress`, if given, is called with the frames and returns a context manager whose value is iterated in
    their place, e.g. a progress bar: `lambda frames: click.progressbar(frames, length=len(frames))`."""
    folder = frames_folder(folder, fmt)
    return write_drawings(Frames(graph, run, view or View(), fmt), folder, stem, progress=progress)


def frames_folder(folder: Path | str, fmt: str) -> Path:
    """The folder frames are written into, made if missing (inside an existing one)."""
    folder = Path(folder)
    if fmt == "html":
        raise CgError("frames are drawn as svg, png, pdf or dot; the HTML page steps through them itself")
    if fmt == "tex":  # one file of Beamer overlays, not a file per frame
        raise CgError("TeX frames are one file of Beamer overlays: cgtools.export.tex.write_overlays")
    make_folder(folder)
    return folder


def write_drawings(frames, folder: Path, stem: str, *, progress=None) -> FrameFiles:
    """Write `frames` (a sized iterable of drawings in `frames.fmt`) as write_frames does."""
    fmt = frames.fmt
    remove_stale_frames(folder, stem, fmt)
    width = len(str(len(frames) - 1))
    written, pages = [], []
    with (progress or contextlib.nullcontext)(frames) as each:
        for i, data in enumerate(each):
            path = folder / f"{stem}-{i:0{width}d}.{fmt}"
            write_atomic(path, lambda f, d=data: f.write(d))
            written.append(path)
            pages.append(data)
    if fmt != "pdf":
        return FrameFiles(written)
    merged = merge_pdfs(pages)
    pdf = folder / f"{stem}-frames.pdf"
    write_atomic(pdf, lambda f: f.write(merged))
    return FrameFiles(written, pdf)


def make_folder(folder: Path) -> None:
    """The frames' folder, made if missing inside an existing one."""
    if folder.exists() and not folder.is_dir():
        raise NotAFolder(f"{str(folder)!r} is a file; expected a folder")
    if not folder.parent.resolve().is_dir():
        raise CgError(f"no such folder {str(folder.parent)!r} to make {folder.name!r} in")
    folder.mkdir(exist_ok=True)


def remove_stale_frames(folder: Path, stem: str, fmt: str) -> None:
    """Remove `{stem}-{number}.{fmt}` files: frames of an earlier, longer sequence would otherwise linger."""
    stale = re.compile(rf"{re.escape(stem)}-\d+\.{fmt}")
    for old in folder.iterdir():
        if stale.fullmatch(old.name):
            old.unlink()
