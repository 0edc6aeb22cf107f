"""What the commands say on stderr besides errors: where the first NaN or infinity appeared (instead of numpy's
warnings), why a drawing has no values or no gradients (instead of a failure), and the frames being written."""

from __future__ import annotations

import sys

import click

PROGRESS_FROM = 12  # frames; shorter sequences draw in a blink
INTERNAL_ERROR = 70  # exit code of a bug in cgtools (sysexits' EX_SOFTWARE); an input's fault exits 1


def note_rows_left_out(shown: int, tensors: int) -> None:
    if shown < tensors:
        note(f"{tensors - shown:,} of {tensors:,} tensors left out: the table shows the graph's inputs, params and "
             "outputs (not params past 1,000); --all prints every row")


def note(text: str) -> None:
    from cgtools.errors import terminal_safe

    click.echo(f"note: {terminal_safe(text)}", err=True)


def failure_code(e: Exception) -> int:
    """Say what failed on stderr, as `error: …`, never a traceback; the exit code: 1 for what the input or the
    machine caused, INTERNAL_ERROR for a bug."""
    from cgtools.errors import CgError, terminal_safe

    if isinstance(e, click.ClickException):
        hint = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) else ""
        message = e.format_message() + hint
    elif isinstance(e, click.Abort):
        message = "aborted"
    elif isinstance(e, OSError):  # a file missing, unreadable or not writable, a full disk
        message = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    elif isinstance(e, MemoryError):
        message = "out of memory: the graph or its values need more than this machine has"
    elif not isinstance(e, CgError):
        click.echo(f"error: internal error ({type(e).__name__}: {terminal_safe(str(e))[:300]}); this is a bug in "
                   "cgtools, not in your input: please report it with the command and its files (run again with "
                   "CGTOOLS_TRACEBACK=1 for the traceback)", err=True)
        return INTERNAL_ERROR
    click.echo(f"error: {terminal_safe(str(e) if isinstance(e, CgError) else message)}", err=True)
    return 1


def checked_run(graph, sets: dict, **options):
    """Run the graph; instead of numpy's warnings, say where the first NaN or infinity appeared. With
    `check_numerics=True`, stop there: an error naming the node, with its inputs' statistics."""
    import numpy as np

    from cgtools.errors import CgError
    from cgtools.numerics import NumericsError

    try:
        with np.errstate(all="ignore"):
            result = graph.run(sets, **options)
    except NumericsError as e:
        raise CgError(f"{e}\n{numerics_report(e.finding)}") from None
    for sentence in result.first_non_finite():
        note(sentence)
    return result


def numerics_report(finding) -> str:
    """The node that made the first NaN or infinity: its op and attributes, then dtype, shape and tensor_stats
    of what it received (its inputs; backward also its outputs' gradients) and of what went bad."""
    from cgtools.export.labels import format_number, format_shape
    from cgtools.export.table import STATS, tensor_stats, text_table

    made = "output made" if finding.direction == "forward" else "gradient passed back"
    arrays = [*((name, "input", a) for name, a in finding.inputs),
              *((name, "gradient received", g) for name, g in finding.upstream),
              (finding.tensor, made if finding.op else "value", finding.array)]
    rows = [("tensor", "is", "dtype", "shape", *STATS)]
    for name, role, a in arrays:
        s = tensor_stats(a)
        rows.append((name, role, str(a.dtype), format_shape(a.shape),
                     *(format_number(s[k]) for k in ("min", "max", "mean", "std")),
                     f"{s['zeros']:.0%}", str(s["nan"]), str(s["inf"])))
    attrs = ", ".join(f"{k}={v}" for k, v in finding.attrs.items()) or "none"
    head = f"  op {finding.op}, attributes: {attrs}\n" if finding.op else ""
    return head + "\n".join("  " + line for line in text_table(rows).splitlines())


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
