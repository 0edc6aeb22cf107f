"""The step-by-step frames written into a folder: one numbered file per frame (`affine-0.svg`, …), the frames
of an earlier, longer sequence removed, and for pdf one multi-page PDF of them all (`affine-frames.pdf`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cgtools.errors import CgError
from cgtools.export.frames import Frames, merge_pdfs
from cgtools.export.scene import View
from cgtools.files import write_atomic


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
    folder = Path(folder)
    if fmt == "html":
        raise CgError("frames are drawn as svg, png, pdf or dot; the HTML page steps through them itself")
    if folder.exists() and not folder.is_dir():
        raise NotAFolder(f"{str(folder)!r} is a file; expected a folder")
    if not folder.parent.resolve().is_dir():
        raise CgError(f"no such folder {str(folder.parent)!r} to make {folder.name!r} in")
    folder.mkdir(exist_ok=True)
    frames = Frames(graph, run, view or View(), fmt)
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


def remove_stale_frames(folder: Path, stem: str, fmt: str) -> None:
    """Remove `{stem}-{number}.{fmt}` files: frames of an earlier, longer sequence would otherwise linger."""
    stale = re.compile(rf"{re.escape(stem)}-\d+\.{fmt}")
    for old in folder.iterdir():
        if stale.fullmatch(old.name):
            old.unlink()
