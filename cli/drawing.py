"""What render and compare decide before drawing: the direction a graph flows in, and what its edges are
coloured by. Only click is imported at start-up."""

from __future__ import annotations

import click

from cgtools.cli.reporting import note

WIDE_UP_TO = 40  # nodes: a lecture's graph reads left to right; a deep model top to bottom, as in Netron


def auto_rankdir(graph) -> str:
    """Left to right for a lecture's graph, top to bottom for a deep model."""
    return "LR" if len(graph.nodes) + len(graph.leaves) <= WIDE_UP_TO else "TB"


def edge_colouring(color_by: str | None, against: str | None, source, sets: dict, run, fmt: str = "svg"):
    """What render colours edges by; for differences, GRAPH (`source`) compared on the drawing's inputs with
    onnxruntime, onnx's ReferenceEvaluator or another graph. Without the numbers asked for, a note."""
    from cgtools.errors import CgError
    from cgtools.export.colours import Colouring

    if fmt == "tex" and (color_by or against):  # refused before a comparison is run for nothing
        raise CgError(f"-f tex draws no colour scale: --{'color-by' if color_by else 'against'} needs -f svg, png, "
                      "pdf or html")
    if against and color_by not in (None, "diff"):
        raise CgError(f"--against is what --color-by diff compares with; it does nothing with --color-by {color_by}")
    color_by = (color_by or ("diff" if against else "")).lower()
    if color_by == "diff":
        from cgtools.compare import AGAINST, compare

        against = against or "onnxruntime"
        other = None if against in AGAINST else against
        result = compare(source, other, against="onnxruntime" if other else against, inputs=sets)
        differ = [d for d in result.tensors if not d.ok]
        note(f"against {result.against}: {len(differ)} of {len(result.tensors)} tensors differ"
             + (f"; first divergence: {result.divergence.place}" if result.divergence else ""))
        return result.colouring()
    wanted = {"value": "values", "grad": "gradients"}.get(color_by)
    if wanted and (run is None or (color_by == "grad" and not run.grads)):
        note(f"no {wanted} to colour the edges by; drawing them uncoloured")
    return Colouring(color_by)


def structure_only(shown: frozenset, colouring: str | None) -> frozenset:
    """What `render --no-values` writes: `--show` without values and gradients (names and shapes stay)."""
    from cgtools.errors import CgError

    if colouring:
        raise CgError("--no-values draws no numbers, so there are none for --color-by or --against to colour by")
    return shown - {"values", "grads"}


def refuse_oversized(graph, fmt: str, frames: bool, part_drawn) -> None:
    """A graph too large for Graphviz refused before its run: every op is a box, unless a part is drawn."""
    from cgtools.export.layout import FRAMES_LIMIT, GRAPHVIZ_LIMIT, refuse_oversized

    if part_drawn:
        return
    if frames:
        refuse_oversized(len(graph.nodes), graph, FRAMES_LIMIT, "frames")
    elif fmt != "html":
        refuse_oversized(len(graph.nodes), graph, GRAPHVIZ_LIMIT)


def frame_files(graph, run, view, fmt: str, folder, stem: str) -> None:
    """`--frames`: the frames' files, or for tex one file of Beamer overlays; what was written, said on stderr."""
    if fmt != "tex":
        from cgtools.cli.reporting import write_frame_files

        return write_frame_files(graph, run, view, fmt, folder, stem)
    from cgtools.errors import CgError
    from cgtools.export.frames import NotAFolder
    from cgtools.export.tex import write_overlays

    try:
        path, steps = write_overlays(graph, run, view, folder, stem)
    except NotAFolder as e:
        raise CgError(f"--frames {e.detail}") from None
    click.echo(f"{folder}: {steps} frames as Beamer overlays in {path.name}", err=True)


def deliver(data: bytes, target, *, path_to_stderr: bool = False) -> None:
    """A drawing written to `target` (atomically), its path said; with no target, written to stdout."""
    from cgtools.files import write_atomic

    if target is None:
        click.echo(data, nl=False)
        return
    write_atomic(target, lambda f: f.write(data))
    click.echo(str(target), err=path_to_stderr)
