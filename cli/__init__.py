"""The `cgtools` command: thin click commands that parse arguments and call the library.

Only click is imported at start-up; numpy, networkx and the rest load inside the commands that use them.
"""

from __future__ import annotations

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
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Give an input (or param) a value: a number or a JSON list. Repeatable.")
@click.option("--no-backward", is_flag=True, help="Run the forward pass only.")
@click.option("--json", "as_json", is_flag=True, help='Print {"values": {...}, "grads": {...}} as JSON.')
@click.option("--precision", default=4, show_default=True, help="Significant digits in the table.")
def run(graph, sets, no_backward, as_json, precision):
    """Run GRAPH forward and backward; print every tensor's value and gradient."""
    import cgtools

    result = cgtools.load(graph).run(parse_sets(sets), backward=not no_backward)
    if as_json:
        import json

        doc = {"values": {k: v.tolist() for k, v in result.values.items()},
               "grads": {k: v.tolist() for k, v in result.grads.items()}}
        click.echo(json.dumps(doc, indent=2, allow_nan=True))
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

    from cgtools.schema import json_schema, schema_markdown

    click.echo(schema_markdown() if markdown else json.dumps(json_schema(), indent=2), nl=not markdown)


@cli.command()
def ops():
    """List the ops with their inputs, attributes and a one-line description."""
    from cgtools.ops import REGISTRY, summary
    from cgtools.ops.base import REQUIRED

    for op_type in sorted(REGISTRY):
        spec = REGISTRY[op_type].spec
        inputs = [name if k < spec.required else f"[{name}]" for k, name in enumerate(spec.inputs)]
        if spec.variadic:
            inputs[-1] = spec.inputs[-1] + "…"
        attrs = [name if default is REQUIRED else f"{name}={default!r}" for name, (_, default) in spec.attrs.items()]
        signature = ", ".join(inputs) + ("; " + ", ".join(attrs) if attrs else "")
        click.echo(f"{op_type:<24} {summary(REGISTRY[op_type])}\n{'':<24} ({signature})")


def main(argv=None) -> None:
    """Entry point: user errors become `error: …` on stderr and exit code 1, never a traceback."""
    from cgtools.errors import CgError

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
