"""`cgtools train`: the lecture's training loop from the command line, with a loss plot and snapshots of the
graph to watch it learn."""

from __future__ import annotations

import sys

import click

from cgtools.cli.options import THREADS_OPTION, WEIGHTS_OPTION, frames_folder, leaf_kinds_option


@click.command()
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="An .npz with one array per graph input (examples along the first axis).")
@click.option("--epochs", type=click.IntRange(1), default=20, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True, help="Learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--momentum", type=float, default=0.0, show_default=True, help="SGD momentum.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the batch shuffling.")
@click.option("-o", "--output", metavar="OUT", help="Write the trained graph here; default: back into GRAPH.")
@click.option("--plot", metavar="FILE", help="Draw the loss of every step and each epoch's mean (and the accuracy "
              "where the graph has labels) into FILE: .svg, .png or .pdf.")
@click.option("--print-steps", is_flag=True, help="Print every step's loss and each epoch's mean (and accuracy) "
              "in full: the numbers --plot draws.")
@click.option("--frames", "frames_dir", metavar="DIR", help="Draw the graph, its params' values and gradients and "
              "the step's loss, every --every steps (and the first and last) into DIR, all on one layout.")
@click.option("--every", type=int, metavar="K", help="With --frames: a snapshot every K steps (default 1).")
@click.option("-f", "--format", "fmt", type=click.Choice(["svg", "png", "pdf", "dot", "html"], case_sensitive=False),
              help="With --frames: the snapshots' format (default svg); pdf also writes one multi-page PDF, html "
              "one page with a slider over the snapshots.")
@WEIGHTS_OPTION
@leaf_kinds_option
@THREADS_OPTION
def train(graph, data, epochs, lr, optimizer, momentum, batch_size, seed, output, plot, print_steps, frames_dir,
          every, fmt, weights, kinds):
    """Train GRAPH's params on DATA with SGD or Adam; write the trained params back (large ones to an .npz)."""
    from pathlib import Path

    import cgtools
    from cgtools import optim
    from cgtools import train as training
    from cgtools.cli.drawing import refuse_oversized
    from cgtools.json_format import check_save, save

    every = watch_options(plot, frames_dir, every, fmt)
    fmt = (fmt or "svg").lower()
    g = cgtools.load(graph, **kinds)
    if frames_dir is not None:  # refused before training, not after
        refuse_oversized(g, fmt, fmt != "html", None)
    arrays = training.load_data(data, g)
    target = Path(output) if output else Path(graph)
    check_save(g, target, weights=weights, inputs=(data,))  # before training, not after
    opt = optim.SGD(g, lr, momentum) if optimizer == "sgd" else optim.Adam(g, lr)
    total = epochs * -(-len(next(iter(arrays.values()))) // batch_size)
    history, snapshots = training.History(), []
    measured = plot or print_steps  # accuracy after each epoch: a forward pass over all the data

    with click.progressbar(length=total, label="training", item_show_func=lambda step: step and
                           f"loss {step.loss:.4f}", file=sys.stderr) as bar:
        def on_step(step):
            history.record(step, training.accuracy(g, arrays) if measured and step.ends_epoch else None)
            if frames_dir is not None and (step.number % every == 0 or step.number == total - 1):
                snapshots.append(step)
            if print_steps:
                said_step(step, history)
            bar.update(1, step)

        losses = training.train(g, arrays, opt, epochs=epochs, batch_size=batch_size, seed=seed, on_step=on_step)
    accuracy = training.accuracy(g, arrays)
    click.echo(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {epochs} epochs"
               + (f"; accuracy {accuracy:.1%}" if accuracy is not None else ""))
    written = save(g, target, weights=weights, inputs=(data,))
    click.echo("\n".join(map(str, filter(None, (target, written)))))
    watched(g, history, snapshots, plot, frames_dir, fmt, Path(graph).stem)


def said_step(step, history) -> None:
    """A step's loss in full (repr: the float itself), and at an epoch's end its mean and accuracy."""
    click.echo(f"step {step.number} epoch {step.epoch} loss {step.loss!r}")
    if step.ends_epoch:
        accuracy = f" accuracy {history.accuracy[-1]!r}" if len(history.accuracy) == step.epoch else ""
        click.echo(f"epoch {step.epoch} mean loss {history.epoch_means()[-1]!r}{accuracy}")


def watch_options(plot, frames_dir, every, fmt) -> int:
    """--plot, --frames and --every checked before training (which takes long): the snapshots' spacing."""
    from cgtools.errors import CgError
    from cgtools.export.frames import NotAFolder
    from cgtools.export.frames import frames_folder as ready_folder
    from cgtools.export.plot import plot_format

    if plot is not None:
        plot_format(plot)
    if frames_dir is None:
        if every is not None or fmt is not None:
            raise CgError(f"{'--every' if every is not None else '-f/--format'} needs --frames DIR: where the "
                          "snapshots go")
        return 1
    if every is not None and every < 1:
        raise CgError(f"expected --every a number of steps, 1 or more, found {every}")
    try:
        ready_folder(frames_folder(frames_dir), "svg" if fmt in (None, "html") else fmt.lower())
    except NotAFolder as e:
        raise CgError(f"--frames {e.detail}") from None
    return every or 1


def watched(g, history, snapshots: list, plot, frames_dir, fmt: str, stem: str) -> None:
    """Draw the plot and the snapshots asked for; say on stderr what was written."""
    from cgtools.export.plot import write_plot
    from cgtools.export.scene import View
    from cgtools.export.snapshots import write_snapshots

    if plot is not None:
        click.echo(f"{write_plot(history, plot, title=f'training {g.name or stem}')}: loss plot", err=True)
    if frames_dir is not None:
        written = write_snapshots(g, snapshots, View(), fmt, frames_dir, stem)
        said = (f"{written.frames[0]}: {len(snapshots)} snapshots on one page" if fmt == "html" else
                f"{frames_dir}: {len(written.frames)} snapshots" + (f" and {written.pdf.name}" if written.pdf else ""))
        click.echo(said, err=True)
