"""The `cgtools` command: thin click commands that parse arguments and call the library.

Only click is imported at start-up; numpy, networkx and the rest load inside the commands that use them.
"""

from __future__ import annotations

import sys

import click

from cgtools.cli.drawing import WIDE_UP_TO, auto_rankdir, deliver, edge_colouring, refuse_oversized, structure_only
from cgtools.cli.options import (
    INPUTS_OPTION,
    LABELS_OPTION,
    LOSS_FN_OPTION,
    LOSS_OPTION,
    PARAM_OPTION,
    PRECISION_OPTION,
    SET_OPTION,
    THREADS_OPTION,
    UPSTREAM_OPTION,
    WEIGHTS_OPTION,
    attach_loss,
    feed,
    frames_folder,
    given_values,
    graph_options,
    leaf_kinds_option,
    loaded,
    parse_sets,
    parts_drawn,
    random_inputs_options,
    run_output_options,
    show_items,
    split_names,
    upstream_gradient,
)
from cgtools.cli.reporting import INTERNAL_ERROR, checked_run, note, run_for_drawing
from cgtools.cli.training import train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             invoke_without_command=True)
@click.version_option(package_name="cgtools")
@click.pass_context
def cli(ctx):
    """Computation graphs: run them forward and backward, and draw them with values and gradients."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


cli.add_command(train)


@cli.command()
@graph_options
@click.option("--no-backward", is_flag=True, help="Run the forward pass only.")
@LOSS_OPTION
@UPSTREAM_OPTION
@LABELS_OPTION
@LOSS_FN_OPTION
@run_output_options
def run(graph, sets, inputs_file, random, kinds, no_backward, loss, upstream, labels_file, loss_fn, as_json, stats,
        check_numerics, every_row, precision, profile):
    """Run GRAPH forward and backward; print every tensor's value and gradient."""
    from cgtools.cli.reporting import note_rows_left_out
    from cgtools.export.table import run_json, run_table, shown_tensors, stats_table
    from cgtools.profile import profiled

    # unlike render, run says so when backward cannot start (several outputs, a loss that is no scalar)
    g, values = loaded(graph, sets, inputs_file, random, kinds)
    g, loss = attach_loss(g, values, labels_file, loss_fn, loss, upstream)
    backward = {"loss": loss, "seed": upstream_gradient(upstream)} if not no_backward else {"backward": False}
    with profiled(g, profile) as timings:
        result = checked_run(g, values, check_numerics=check_numerics, **backward)
    names = shown_tensors(result, every_row or as_json)
    click.echo(run_json(result) if as_json else (stats_table if stats else run_table)(result, precision, names))
    note_rows_left_out(len(names), len(result.values))
    if profile:
        click.echo(timings.report())


@cli.command()
@click.argument("graph", type=click.Path(dir_okay=False))
@click.argument("other", type=click.Path(dir_okay=False), required=False)
@click.option("--against", type=click.Choice(["onnxruntime", "reference"]), default="onnxruntime", show_default=True,
              help="The runtime to compare with when no OTHER graph is given (reference: onnx's ReferenceEvaluator).")
@SET_OPTION
@INPUTS_OPTION
@random_inputs_options
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="Relative tolerance per element.")
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Absolute tolerance per element.")
@click.option("--json", "as_json", is_flag=True, help="Print every tensor's differences and the divergence as JSON.")
@click.option("-o", "--output", metavar="OUT", help="Also draw the graph, each edge coloured by its difference and "
              "the first divergence outlined, into OUT (svg, png, pdf, dot or html, from its suffix).")
@THREADS_OPTION
def compare(graph, other, against, sets, inputs_file, random, rtol, atol, as_json, output):
    """Run GRAPH with cgtools and with onnxruntime (or OTHER, a second graph, with cgtools) on the same inputs;
    compare every tensor and name the first node whose output differs while its inputs agree. Exits 1 when an
    output differs."""
    import json

    from cgtools.compare import compare as compare_runs
    from cgtools.errors import terminal_safe
    from cgtools.export.scene import View

    from .paths import choose_format, output_path

    fmt = choose_format(None, output) if output else None
    target = output_path(graph, output, fmt) if output else None  # checked before the (long) runs
    seed, dims = random or (None, {})
    result = compare_runs(graph, other, against=against, inputs=given_values(sets, inputs_file), rtol=rtol, atol=atol,
                          random_seed=seed, dims=dims)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else terminal_safe(result.report()), nl=as_json)
    if output:  # the path goes to stderr: stdout has the report
        deliver(result.draw(fmt, View(rankdir=auto_rankdir(result.graph))), target, path_to_stderr=True)
    if not result.outputs_agree:
        sys.exit(1)


@cli.command()
@graph_options
def info(graph, sets, inputs_file, random, kinds):
    """GRAPH at a glance: op counts, params and their bytes, inputs and outputs, multiply-accumulates, nodes that
    reach no output, params the loss does not depend on."""
    from cgtools.errors import terminal_safe
    from cgtools.info import info as graph_info

    g, given = loaded(graph, sets, inputs_file, random, kinds)
    missing = [leaf.name for leaf in g.leaves.values() if leaf.value is None and leaf.name not in given]
    if missing:
        note(f"no value for {', '.join(missing)}: outputs and multiply-accumulates need a run "
             "(give values with --set, --inputs or --random-inputs)")
    run = None if missing else checked_run(g, given, backward=False)
    click.echo(terminal_safe(graph_info(g, run).report()), nl=False)


@cli.command()
@click.argument("graph", type=click.Path(dir_okay=False), required=False)
@click.option("--expr", "expression", metavar="EXPRESSION",
              help='Draw an expression instead of a file, e.g. "(a*x + b)**2" (see `cgtools new`).')
@PARAM_OPTION
@click.option("-o", "--output", metavar="OUT", help="Output file; '-' writes DOT or SVG to stdout. "
              "Default: beside GRAPH, with the format's suffix.")
@click.option("-f", "--format", "fmt", type=click.Choice(["svg", "png", "pdf", "dot", "html", "tex"],
                                                          case_sensitive=False),
              help="Output format; default: from OUT's suffix, else svg.")
@SET_OPTION
@INPUTS_OPTION
@random_inputs_options
@leaf_kinds_option
@click.option("--no-backward", is_flag=True, help="Draw forward values only.")
@click.option("--no-values", is_flag=True, help="Draw the structure only: no run, no values or gradients; the "
              "weights are not read (a model's external data stays on disk).")
@LOSS_OPTION
@UPSTREAM_OPTION
@LABELS_OPTION
@LOSS_FN_OPTION
@click.option("--theme", type=click.Choice(["slide", "paper", "dark"], case_sensitive=False), default="slide",
              show_default=True,
              help="slide: large, high contrast; paper: print, greyscale-safe; dark.")
@click.option("--rankdir", type=click.Choice(["auto", "LR", "TB", "BT", "RL"], case_sensitive=False), default="auto",
              show_default=True, help="Direction the graph flows in; auto: left to right for a slide-sized graph "
              f"(up to {WIDE_UP_TO} nodes), top to bottom for a deep model.")
@PRECISION_OPTION
@click.option("--show", default="values,grads,names", show_default=True, metavar="ITEMS",
              help="What to write, comma-separated, among: values, grads, shapes, names, chain (how each gradient "
                   "is made: upstream gradient times local derivative).")
@click.option("--draw-constants", "draw_constants", is_flag=True,
              help="Draw constants as nodes instead of folding them into the ops that read them.")
@click.option("--leaves", "draw_leaves", is_flag=True, help="Draw weights as nodes, not listed inside their ops.")
@click.option("--collapse", type=int, metavar="DEPTH", help="Draw each module DEPTH levels down the scopes "
              "(/layer1/...) as one box with its op count.")
@click.option("--bodies/--no-bodies", default=None, help="Draw the bodies of If, Loop and Scan beside them, with "
              "their last execution's values; default: for a lecture-sized graph.")
@click.option("--focus", metavar="NAME", help="Draw only what lies within --depth edges of this node or tensor.")
@click.option("--depth", type=int, help="With --focus: edges kept upstream and downstream (default 2).")
@click.option("--frames", "frames_dir", metavar="DIR", help="Write the step-by-step build-up into DIR: the bare "
              "graph, the forward pass node by node, then the backward pass (and, for pdf, one multi-page PDF).")
@click.option("--color-by", "color_by", type=click.Choice(["value", "grad", "diff"], case_sensitive=False),
              help="Colour each edge by its tensor's magnitude on a log scale, with a legend: value and grad, the root "
              "mean square; diff, the largest difference to --against.")
@click.option("--against", metavar="onnxruntime|reference|OTHER", help="What --color-by diff compares with: "
              "onnxruntime (the default), onnx's ReferenceEvaluator, or OTHER, a second graph run by cgtools.")
@THREADS_OPTION
def render(graph, expression, params, output, fmt, sets, inputs_file, random, kinds, no_backward, no_values, loss,
           upstream, labels_file, loss_fn, theme, rankdir, precision, show, draw_constants, frames_dir, color_by,
           against, draw_leaves, collapse, focus, depth, bodies):
    """Draw GRAPH (or --expr EXPRESSION) with the value and the gradient on every edge."""
    from pathlib import Path

    import cgtools
    from cgtools.errors import CgError
    from cgtools.export import draw
    from cgtools.export.scene import View

    from .drawing import frame_files
    from .paths import choose_format, output_path

    shown = show_items(show, draw_constants) | ({"leaves"} if draw_leaves else set())
    shown = structure_only(shown, color_by or against) if no_values else shown
    fmt = choose_format(fmt, output)
    if (graph is None) == (expression is None):
        raise CgError("give a GRAPH file or --expr EXPRESSION (one of the two)")
    sets = given_values(sets, inputs_file)
    if expression is not None:
        from cgtools.expr import parse

        g = cgtools.load(parse(expression, values=sets, params=split_names(params)), **kinds)
        graph, sets = "expression.json", {}  # drawn beside where we are, as expression.<format>
    else:
        g = cgtools.load(graph, **kinds)
    sets = feed(g, sets, random)
    g, loss = attach_loss(g, sets, labels_file, loss_fn, loss, upstream)
    target = output_path(graph, output, fmt) if output or frames_dir is None else None
    rankdir = auto_rankdir(g) if rankdir.lower() == "auto" else rankdir
    refuse_oversized(g, fmt, frames_dir is not None, collapse or focus)  # before the run, which takes long too
    run = None if no_values else run_for_drawing(g, sets, not no_backward, loss=loss, seed=upstream_gradient(upstream))
    if run is not None and run.grads and upstream:
        note(f"gradients of {run.loss!r} from the upstream gradient {upstream}")
    colouring = edge_colouring(color_by, against, g if expression is not None else graph, sets, run, fmt)
    view = View(theme.lower(), rankdir.upper(), precision, shown, colouring, **parts_drawn(collapse, focus, depth),
                bodies=bodies)
    if frames_dir is not None:
        frame_files(g, run, view, fmt, frames_folder(frames_dir), Path(graph).stem)
    if target is not None or output == "-":
        deliver(draw(g, run, view, fmt), target)


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


@cli.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@WEIGHTS_OPTION
@leaf_kinds_option
def convert(source, target, weights, kinds):
    """Convert between formats: model.onnx -> graph.json (weights into graph.npz) or graph.json -> model.onnx."""
    from cgtools.io import convert as convert_files

    for written in convert_files(source, target, weights=weights, **kinds):
        click.echo(str(written))


@cli.command()
@graph_options
@LABELS_OPTION
@LOSS_FN_OPTION
@click.option("--eps", type=click.FloatRange(0, min_open=True), default=1e-6, show_default=True,
              help="Step of the central finite differences.")
@click.option("--rtol", type=click.FloatRange(0), default=1e-5, show_default=True,
              help="Relative tolerance: an element fails when |analytic − numeric| > atol + rtol·|numeric|.")
@click.option("--atol", type=click.FloatRange(0), default=1e-8, show_default=True, help="Absolute tolerance.")
@click.option("--max-elements", type=click.IntRange(1), default=64, show_default=True, metavar="N",
              help="Check at most N elements of each tensor, a random sample of larger ones.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling of large tensors.")
@click.option("--tensor", "tensors", multiple=True, metavar="NAME",
              help="Check only this input or param (a custom op's, say). Repeatable, or a,b.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def gradcheck(graph, sets, inputs_file, random, kinds, labels_file, loss_fn, eps, rtol, atol, max_elements, seed,
              tensors, as_json):
    """Check GRAPH's gradients against finite differences, in float64, for every float input and param."""
    import json

    from cgtools.gradcheck import gradcheck as check

    g, values = loaded(graph, sets, inputs_file, random, kinds)
    g, _ = attach_loss(g, values, labels_file, loss_fn, None, None)
    report = check(g, values, eps=eps, rtol=rtol, atol=atol, max_elements=max_elements, seed=seed,
                   tensors=split_names(tensors) or None)
    click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if as_json else report.table())
    if not report.ok:
        click.echo(f"gradcheck failed: {report.summary()}", err=True)
        sys.exit(1)


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
    """List the ops with their inputs, attributes, a one-line description, and whether backward passes through."""
    from cgtools.ops import REGISTRY, summary
    from cgtools.ops.base import has_gradient

    for op_type, op in sorted(REGISTRY.items()):
        gradient = "" if has_gradient(op) else "; no gradient: backward stops here"
        click.echo(f"{op_type:<24} {summary(op)}\n{'':<24} ({op.spec.signature}){gradient}")
    click.echo(f"\n{len(REGISTRY)} ops. Not supported: string and map types (and the ops on them), the ai.onnx.ml "
               "domain, ImageDecoder.")


def main(argv=None) -> None:
    """Entry point: user errors become `error: …` on stderr and exit code 1, never a traceback."""
    import os
    import warnings

    from cgtools.cli.reporting import failure_code

    warnings.showwarning = lambda message, *_, **__: click.echo(f"note: {message}", err=True)
    try:
        code = cli.main(args=argv, prog_name="cgtools", standalone_mode=False)
    except Exception as e:  # noqa: BLE001 - every failure said in words; failure_code tells a bug from the input's
        code = failure_code(e)
        if code == INTERNAL_ERROR and os.environ.get("CGTOOLS_TRACEBACK"):
            raise
    sys.exit(code if isinstance(code, int) else 0)
