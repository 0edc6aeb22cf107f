"""How a notebook shows a graph or a run: as its diagram. The model and the engine sit below the drawing
code, so the package's root (cgtools/__init__.py, which runs before any module of it) puts the drawing here."""

from __future__ import annotations

from collections.abc import Callable

drawing: Callable | None = None  # (graph, run or None) -> SVG text, or None where it cannot draw


def svg(graph, run=None) -> str | None:
    """The diagram as SVG text; None (Jupyter then shows the plain repr) when no drawing is registered."""
    return drawing(graph, run) if drawing is not None else None
