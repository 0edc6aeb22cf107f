"""Where `cgtools render` writes and in which format: -f, the suffix of -o, or beside the graph."""

from __future__ import annotations

from pathlib import Path

from cgtools.errors import CgError, did_you_mean
from cgtools.export import FORMATS

TEXT_FORMATS = ("svg", "dot", "tex")  # the ones `-o -` can write to standard output


def choose_format(fmt: str | None, out: str | None) -> str:
    """The format from -f, else from the suffix of -o, else svg."""
    if fmt is None and out not in (None, "-"):
        fmt = Path(out).suffix.lstrip(".").lower()
        if not fmt:
            raise CgError(f"cannot tell the format from {out!r}: give it a suffix ({', '.join(FORMATS)}) or -f")
    fmt = (fmt or "svg").lower()
    if fmt not in FORMATS:
        raise CgError(f"unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}; expected one of {', '.join(FORMATS)}")
    return fmt


def output_path(graph_path: str, out: str | None, fmt: str) -> Path | None:
    """Where the drawing goes: -o, else beside the graph with the format's suffix; None for stdout."""
    if out == "-":
        if fmt not in TEXT_FORMATS:
            raise CgError(f"-o - writes text to standard output: use -f {' or -f '.join(TEXT_FORMATS)}, "
                          f"not {fmt}")
        return None
    path = Path(out) if out else Path(graph_path).with_suffix(f".{fmt}")
    if path.is_dir():
        raise CgError(f"the output {str(path)!r} is a folder; give a file name")
    if path.resolve() == Path(graph_path).resolve():
        raise CgError(f"the output {str(path)!r} would overwrite the graph itself; choose another -o")
    if not path.parent.resolve().is_dir():
        raise CgError(f"no such folder {str(path.parent)!r} for the output")
    return path
