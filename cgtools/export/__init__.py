"""Drawing graphs: what a diagram shows (scene.py), drawn as DOT/SVG/PNG/PDF through Graphviz (dot.py), as
slide frames (frames.py), as a TikZ picture or Beamer overlays (tex.py) or as one interactive HTML page (html.py);
labels and themes."""

from __future__ import annotations

from cgtools.errors import CgError

FORMATS = ("svg", "png", "pdf", "dot", "html", "tex")


def draw(graph, run=None, view=None, fmt: str = "svg") -> bytes:
    """The diagram of `graph` (with a run's values and gradients) as bytes in `fmt`."""
    from cgtools.export.dot import display_graph, dot_text
    from cgtools.export.grouping import diagram_scene
    from cgtools.export.layout import drawing, refuse_oversized
    from cgtools.export.scene import View
    from cgtools.memory import collector_paused

    view = view or View()
    if fmt == "html":
        from cgtools.export.html import to_html

        return to_html(graph, run, view).encode()
    if fmt == "tex":
        from cgtools.export.tex import to_tex

        return to_tex(graph, run, view).encode()
    if not (view.focus or view.collapse):  # the diagram has a box per op at least: refused before it is made
        refuse_oversized(len(graph.nodes), graph)
    with collector_paused():
        scene = diagram_scene(graph, run, view)
        refuse_oversized(scene.graph.number_of_nodes(), graph)
        return dot_text(display_graph(scene)).encode() if fmt == "dot" else drawing(scene, fmt)


def notebook_svg(graph, run=None) -> str | None:
    """The diagram a notebook shows; None without Graphviz, so Jupyter falls back to the plain repr."""
    try:
        return draw(graph, run, fmt="svg").decode()
    except CgError:
        return None


