"""The `cgtools` command: thin click commands that parse arguments and call the library.

Only click is imported at start-up; numpy, networkx and the rest load inside the commands that use them.
"""

from __future__ import annotations

import re
import sys

import click


def parse_sets(pairs) -> dict:
    from cgtools.errors import CgError
    from cgtools.values import parse_cli_value

    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise CgError(f"expected NAME=VALUE, found {pair!r}", where="--set")
        try:
            values[name] = parse_cli_value(text)
        except CgError as e:
            raise e.located(where=f"--set {name}") from None
    return values


INPUTS_OPTION = click.option("--inputs", "inputs_file", type=click.Path(exists=True, dir_okay=False),
                             metavar="FILE.npz", help="Feed inputs (or params) from an .npz, arrays by name; "
                             "--set values win.")


def given_values(sets, inputs_file) -> dict:
    """The values given on the command line: an .npz's arrays, then each --set over them."""
    from pathlib import Path

    from cgtools.errors import CgError
    from cgtools.files import read_npz

    try:
        values = read_npz(Path(inputs_file)) if inputs_file else {}
    except CgError as e:
        raise CgError(e.detail, where=f"--inputs {inputs_file}") from None
    values.update(parse_sets(sets))
    return values


PRECISION_OPTION = click.option("--precision", type=click.IntRange(1, 17), default=4, show_default=True,
                                help="Significant digits.")
SET_OPTION = click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                          help="Give an input (or param) a value: a number or a JSON list. Repeatable.")


WIDE_UP_TO = 40  # nodes: a lecture's graph reads left to right; a deep model top to bottom, as in Netron
PARAM_OPTION = click.option("--param", "params", multiple=True, metavar="NAME",
                            help="Make this leaf a param (trainable); the others are inputs. Repeatable, or a,b.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             invoke_without_command=True)
@click.version_option(package_name="cgtools")
@click.pass_context
def cli(ctx):
    """Computation graphs: run them forward and backward, and draw them with values and gradients."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command()
@click.argument("graph", type=click.Path(dir_okay=False))
@SET_OPTION
@INPUTS_OPTION
@click.option("--no-backward", is_flag=True, help="Run the forward pass only.")
@click.option("--json", "as_json", is_flag=True, help='Print {"values": {...}, "grads": {...}} as JSON.')
@PRECISION_OPTION
def run(graph, sets, inputs_file, no_backward, as_json, precision):
    """Run GRAPH forward and backward; print every tensor's value and gradient."""
    import cgtools

    # unlike render, run says so when backward cannot start (several outputs, a loss that is no scalar)
    result = checked_run(cgtools.load(graph), given_values(sets, inputs_file), backward=not no_backward)
    if as_json:
        import json

        doc = {"values": {k: v.tolist() for k, v in result.values.items()},
               "grads": {k: v.tolist() for k, v in result.grads.items()}}
        click.echo(json.dumps(strict_json(doc), indent=2))
    else:
        click.echo(run_table(result, precision))


def run_table(result, precision: int) -> str:
    from cgtools.export.labels import format_shape, format_tensor

    graph = result.graph
    kinds = {name: leaf.kind for name, leaf in graph.leaves.items()}
    kinds.update((out, f"{n.op}") for n in graph.nodes for out in n.outputs)
    grad_head = f"∂{result.loss}/∂·" if result.loss else "gradient"
    rows = [("tensor", "from", "shape", "value", grad_head)]
    for name, value in result.values.items():
        grad = result.grads.get(name)
        rows.append((name, kinds[name], format_shape(value.shape), format_tensor(value, precision),
                     "" if grad is None else format_tensor(grad, precision)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("─" * w for w in widths) + "  " + "─" * len(grad_head))
    return "\n".join(line.rstrip() for line in lines)


@cli.command()
@click.argument("graph", type=click.Path(dir_okay=False), required=False)
@click.option("--expr", "expression", metavar="EXPRESSION",
              help='Draw an expression instead of a file, e.g. "(a*x + b)**2" (see `cgtools new`).')
@PARAM_OPTION
@click.option("-o", "--output", metavar="OUT", help="Output file; '-' writes DOT or SVG to stdout. "
              "Default: beside GRAPH, with the format's suffix.")
@click.option("-f", "--format", "fmt", type=click.Choice(["svg", "png", "pdf", "dot", "html"], case_sensitive=False),
              help="Output format; default: from OUT's suffix, else svg.")
@SET_OPTION
@INPUTS_OPTION
@click.option("--no-backward", is_flag=True, help="Draw forward values only.")
@click.option("--theme", type=click.Choice(["slide", "paper", "dark"], case_sensitive=False), default="slide",
              show_default=True,
              help="slide: large, high contrast; paper: print, greyscale-safe; dark.")
@click.option("--rankdir", type=click.Choice(["auto", "LR", "TB", "BT", "RL"], case_sensitive=False), default="auto",
              show_default=True, help="Direction the graph flows in; auto: left to right for a slide-sized graph "
              f"(up to {WIDE_UP_TO} nodes), top to bottom for a deep model.")
@PRECISION_OPTION
@click.option("--show", default="values,grads,names", show_default=True, metavar="ITEMS",
              help="What to write, comma-separated, among: values, grads, shapes, names.")
@click.option("--constants", "draw_constants", is_flag=True,
              help="Draw constants as nodes instead of folding them into the ops that read them.")
@click.option("--frames", "frames_dir", metavar="DIR", help="Write the step-by-step build-up into DIR: the bare "
              "graph, the forward pass node by node, then the backward pass (and, for pdf, one multi-page PDF).")
def render(graph, expression, params, output, fmt, sets, inputs_file, no_backward, theme, rankdir, precision, show,
           draw_constants, frames_dir):
    """Draw GRAPH (or --expr EXPRESSION) with the value and the gradient on every edge."""
    from pathlib import Path

    import cgtools
    from cgtools.errors import CgError
    from cgtools.export import draw
    from cgtools.export.scene import View
    from cgtools.files import write_atomic

    from .paths import choose_format, output_path

    show_items = {s.strip().lower() for s in show.split(",") if s.strip()}
    if not show_items:
        raise CgError("--show needs at least one of values, grads, shapes, names")
    if "constants" in show_items:
        raise CgError("constants are drawn with --constants, not --show")
    show_items = frozenset(show_items | ({"constants"} if draw_constants else set()))
    fmt = choose_format(fmt, output)
    if (graph is None) == (expression is None):
        raise CgError("give a GRAPH file or --expr EXPRESSION (one of the two)")
    sets = given_values(sets, inputs_file)
    if expression is not None:
        from cgtools.expr import parse

        g = cgtools.load(parse(expression, values=sets, params=split_names(params)))
        graph, sets = "expression.json", {}  # drawn beside where we are, as expression.<format>
    else:
        g = cgtools.load(graph)
    target = output_path(graph, output, fmt) if output or frames_dir is None else None
    if rankdir.lower() == "auto":
        rankdir = "LR" if len(g.nodes) + len(g.leaves) <= WIDE_UP_TO else "TB"
    view = View(theme.lower(), rankdir.upper(), precision, show_items)
    run = run_for_drawing(g, sets, not no_backward)
    if frames_dir is not None:
        if not frames_dir.strip():
            raise CgError("--frames needs a folder name")
        write_frames(g, run, view, fmt, Path(frames_dir), Path(graph).stem)
    if target is None and output == "-":
        click.echo(draw(g, run, view, fmt), nl=False)
    elif target is not None:
        data = draw(g, run, view, fmt)
        write_atomic(target, lambda f: f.write(data))
        click.echo(str(target))


def run_for_drawing(graph, sets: dict, backward: bool):
    """The run to draw; a graph whose inputs have no values is drawn without numbers, one with no scalar loss
    without gradients, each with a note."""
    missing = [name for name, leaf in graph.leaves.items() if leaf.value is None and name not in sets]
    if missing:
        click.echo(f"note: no value for {', '.join(missing)}; drawing the graph without values "
                   f"(give them with --set NAME=VALUE or --inputs FILE.npz)", err=True)
        return None
    return forgiving_run(graph, sets, backward)


def forgiving_run(graph, sets: dict, backward: bool):
    """A run to draw that falls back to forward values, with a note, when backward has nowhere to start:
    several outputs and no loss, or a loss that is not a scalar (a model's logits)."""
    from cgtools.errors import LossNotScalar

    if backward and not graph.loss and len(graph.outputs) != 1:
        click.echo(f"note: the graph has {len(graph.outputs)} outputs and no \"loss\" to start backward from; "
                   "drawing forward values only", err=True)
        backward = False
    try:
        return checked_run(graph, sets, backward=backward, per_use=backward)
    except LossNotScalar as e:
        click.echo(f"note: {e.detail.split(';')[0]}; drawing forward values only", err=True)
        return checked_run(graph, sets, backward=False)


def strict_json(doc):
    """JSON that every parser reads: NaN and infinities written as the strings "NaN", "Infinity", "-Infinity"."""
    import math

    if isinstance(doc, dict):
        return {k: strict_json(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [strict_json(v) for v in doc]
    if isinstance(doc, float) and not math.isfinite(doc):
        return "NaN" if math.isnan(doc) else "Infinity" if doc > 0 else "-Infinity"
    return doc


def checked_run(graph, sets: dict, **options):
    """Run the graph; instead of numpy's warnings, say where the first NaN or infinity appeared."""
    import numpy as np

    from cgtools.errors import node_place

    with np.errstate(all="ignore"):
        result = graph.run(sets, **options)
    values, grads = result.non_finite()
    producers = {out: i for i, node in enumerate(graph.nodes) for out in node.outputs}
    if values:
        first = values[0]
        made = f", made by {node_place(producers[first], graph.nodes[producers[first]])}" if first in producers else ""
        more = len(values) - 1
        more = f"; {more} more tensor{'s follow' if more > 1 else ' follows'} it" if more else ""
        click.echo(f"note: the first NaN or infinity in the forward pass is {first!r}{made}{more}", err=True)
    if grads and grads[0] not in values:
        click.echo(f"note: the first NaN or infinity in the backward pass is ∂{result.loss}/∂{grads[0]}", err=True)
    return result


PROGRESS_FROM = 12  # frames; shorter sequences draw in a blink


def write_frames(graph, run, view, fmt: str, folder, stem: str) -> None:
    from cgtools.errors import CgError
    from cgtools.export.frames import Frames, merge_pdfs
    from cgtools.files import write_atomic

    if fmt == "html":
        raise CgError("frames are drawn as svg, png, pdf or dot; the HTML page steps through them itself")
    if folder.exists() and not folder.is_dir():
        raise CgError(f"--frames {str(folder)!r} is a file; expected a folder")
    if not folder.parent.resolve().is_dir():
        raise CgError(f"no such folder {str(folder.parent)!r} to make {folder.name!r} in")
    folder.mkdir(exist_ok=True)
    frames = Frames(graph, run, view, fmt)
    stale = re.compile(rf"{re.escape(stem)}-\d+\.{fmt}")
    for old in folder.iterdir():  # frames of an earlier, longer sequence would otherwise linger
        if stale.fullmatch(old.name):
            old.unlink()
    width = len(str(len(frames) - 1))
    pages = []
    quiet = len(frames) <= PROGRESS_FROM
    with click.progressbar(frames, length=len(frames), label="drawing frames", file=sys.stderr, show_pos=True,
                           hidden=quiet) as bar:
        for i, data in enumerate(bar):
            write_atomic(folder / f"{stem}-{i:0{width}d}.{fmt}", lambda f, d=data: f.write(d))
            pages.append(data)
    if fmt == "pdf":
        merged = merge_pdfs(pages)
        write_atomic(folder / f"{stem}-frames.pdf", lambda f: f.write(merged))
    click.echo(f"{folder}: {len(frames)} frames" + (f" and {stem}-frames.pdf" if fmt == "pdf" else ""), err=True)


@cli.command()
@click.argument("expression")
@SET_OPTION
@PARAM_OPTION
@click.option("-o", "--output", metavar="OUT", help="Write the graph here (JSON); default: standard output.")
@click.option("--name", help="The graph's name; default: OUT's stem, else 'expression'.")
def new(expression, sets, params, output, name):
    """Write the graph of EXPRESSION: "c = a*x; d = c + b; e = d**2" or "(a*x + b)**2".

    Assignments name intermediate tensors; the last statement is the output. Numbers, names,
    + - * / ** @, unary minus and calls (relu, sigmoid, tanh, exp, log, sum, mean, softmax, matmul, …)
    are allowed; the text is parsed, never run."""
    import json
    from pathlib import Path

    import cgtools
    from cgtools.expr import parse
    from cgtools.files import write_atomic

    doc = parse(expression, values=parse_sets(sets), params=split_names(params),
                name=name or (Path(output).stem if output else "expression"))
    cgtools.load(doc).validate()  # a graph that cannot run is refused here, not when drawn
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output:
        write_atomic(Path(output), lambda f: f.write(text.encode()))
        click.echo(output)
    else:
        click.echo(text, nl=False)


def split_names(items) -> list[str]:
    return [n.strip() for item in items for n in item.split(",") if n.strip()]


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
def convert(source, target):
    """Convert between formats: model.onnx -> graph.json (weights into graph.npz) or graph.json -> model.onnx."""
    from cgtools.io import convert as convert_files

    for written in convert_files(source, target):
        click.echo(str(written))


@cli.command()
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
def train(graph, data, epochs, lr, optimizer, momentum, batch_size, seed, output):
    """Train GRAPH's params on DATA with SGD or Adam; write the trained params back (large ones to an .npz)."""
    from pathlib import Path

    import cgtools
    from cgtools import optim
    from cgtools import train as training

    g = cgtools.load(graph)
    arrays = training.load_data(data, g)
    opt = optim.SGD(g, lr, momentum) if optimizer == "sgd" else optim.Adam(g, lr)
    per_epoch = -(-len(next(iter(arrays.values()))) // batch_size)
    latest = {"loss": float("nan")}

    def show(_):
        return f"loss {latest['loss']:.4f}"

    with click.progressbar(length=epochs * per_epoch, label="training", item_show_func=show,
                           file=sys.stderr) as bar:
        def on_batch(epoch, loss):
            latest["loss"] = loss
            bar.update(1, loss)

        history = training.train(g, arrays, opt, epochs=epochs, batch_size=batch_size, seed=seed,
                                 on_batch=on_batch)
    accuracy = training.accuracy(g, arrays)
    click.echo(f"loss {history[0]:.4f} -> {history[-1]:.4f} over {epochs} epochs"
               + (f"; accuracy {accuracy:.1%}" if accuracy is not None else ""))
    target = Path(output) if output else Path(graph)
    g.save(target)
    click.echo(str(target))


@cli.command()
@click.argument("graph", type=click.Path(dir_okay=False))
def validate(graph):
    """Check GRAPH: schema, names, ops, attributes, arity, cycles and (where known) shapes."""
    import cgtools

    g = cgtools.load(graph)
    g.validate()
    click.echo(f"{graph}: ok ({len(g.leaves)} leaves, {len(g.nodes)} nodes)")


@cli.command()
@click.option("--markdown", is_flag=True, help="Print the format's reference as Markdown instead.")
def schema(markdown):
    """Print the JSON Schema of the graph format."""
    import json

    from cgtools.json_format import json_schema, schema_markdown

    click.echo(schema_markdown() if markdown else json.dumps(json_schema(), indent=2), nl=not markdown)


@cli.command()
def ops():
    """List the ops with their inputs, attributes and a one-line description."""
    from cgtools.ops import REGISTRY, summary

    for op_type in sorted(REGISTRY):
        click.echo(f"{op_type:<24} {summary(REGISTRY[op_type])}\n{'':<24} ({REGISTRY[op_type].spec.signature})")


def main(argv=None) -> None:
    """Entry point: user errors become `error: …` on stderr and exit code 1, never a traceback."""
    import warnings

    from cgtools.errors import CgError

    warnings.showwarning = lambda message, *_, **__: click.echo(f"note: {message}", err=True)
    try:
        code = cli.main(args=argv, prog_name="cgtools", standalone_mode=False)
    except CgError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except click.ClickException as e:
        hint = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) else ""
        click.echo(f"error: {e.format_message()}{hint}", err=True)
        sys.exit(1)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
