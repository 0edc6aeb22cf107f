"""What the commands say on stderr besides errors: where the first NaN or infinity appeared (instead of numpy's
warnings), why a drawing has no values or no gradients (instead of a failure), and the frames being written."""

from __future__ import annotations

import sys

import click

PROGRESS_FROM = 12  # frames; shorter sequences draw in a blink


def note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


def checked_run(graph, sets: dict, **options):
    """Run the graph; instead of numpy's warnings, say where the first NaN or infinity appeared."""
    import numpy as np

    with np.errstate(all="ignore"):
        result = graph.run(sets, **options)
    for sentence in result.first_non_finite():
        note(sentence)
    return result


def run_for_drawing(graph, sets: dict, backward: bool, **start):
    """The run to draw; a graph whose inputs have no values is drawn without numbers, one with no scalar loss
    without gradients, each with a note."""
    missing = [name for name, leaf in graph.leaves.items() if leaf.value is None and name not in sets]
    if missing:
        note(f"no value for {', '.join(missing)}; drawing the graph without values "
             f"(give them with --set NAME=VALUE or --inputs FILE.npz)")
        return None
    return forgiving_run(graph, sets, backward, **start)


def forgiving_run(graph, sets: dict, backward: bool, loss: str | None = None, seed=None):
    """A run to draw that falls back to forward values, with a note, when backward has nowhere to start:
    several outputs and no loss, or a loss that is not a scalar (a model's logits) and no upstream gradient."""
    from cgtools.errors import LossNotScalar

    if backward and not (loss or graph.loss) and len(graph.outputs) != 1:
        note(f"the graph has {len(graph.outputs)} outputs and no \"loss\" to start backward from; "
             "drawing forward values only")
        backward = False
    try:
        options = {"per_use": True, "loss": loss, "seed": seed} if backward else {}
        return checked_run(graph, sets, backward=backward, **options)
    except LossNotScalar as e:
        note(f"{e.detail.split(';')[0]}; drawing forward values only")
        return checked_run(graph, sets, backward=False)


def write_frame_files(graph, run, view, fmt: str, folder, stem: str) -> None:
    """Write the frames into `folder` with a progress bar for a long sequence; say on stderr what was written."""
    from cgtools.errors import CgError
    from cgtools.export.frames import NotAFolder, write_frames

    def progress(frames):
        return click.progressbar(frames, length=len(frames), label="drawing frames", file=sys.stderr,
                                 show_pos=True, hidden=len(frames) <= PROGRESS_FROM)

    try:
        written = write_frames(graph, run, view, fmt, folder, stem, progress=progress)
    except NotAFolder as e:
        raise CgError(f"--frames {e.detail}") from None
    click.echo(f"{folder}: {len(written.frames)} frames" + (f" and {written.pdf.name}" if written.pdf else ""),
               err=True)
