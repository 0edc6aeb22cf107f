"""What the commands share: their common options and the rules for reading what was typed (--set NAME=VALUE,
--inputs FILE.npz, comma-separated names, the --frames folder). Only click is imported at start-up."""

from __future__ import annotations

import click

INPUTS_OPTION = click.option("--inputs", "inputs_file", type=click.Path(exists=True, dir_okay=False),
                             metavar="FILE.npz", help="Feed inputs (or params) from an .npz, arrays by name; "
                             "--set values win.")


def chosen_threads(ctx, param, value):
    """--threads N: runs in this command use N BLAS threads; without it cgtools decides (called either way, so an
    earlier command's choice in the same process does not stay)."""
    from cgtools.threads import use_threads

    use_threads(value)


THREADS_OPTION = click.option("--threads", type=click.IntRange(1), metavar="N", expose_value=False,
                              callback=chosen_threads, help="BLAS threads the runs use; default: CGTOOLS_THREADS, "
                              "else the cores this process may use less those other processes keep busy.")
PRECISION_OPTION = click.option("--precision", type=click.IntRange(1, 17), default=4, show_default=True,
                                help="Significant digits.")
SET_OPTION = click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                          help="Give an input (or param) a value: a number or a JSON list. Repeatable.")
LOSS_OPTION = click.option("--loss", metavar="TENSOR",
                           help="The tensor backward starts from; default: the graph's loss, or its one output.")
UPSTREAM_WORDS = "ones, mean, random[:SEED] or FILE.npy"
UPSTREAM_OPTION = click.option("--upstream-grad", "upstream", metavar="ones|mean|random[:SEED]|FILE.npy",
                               help="The upstream gradient of a loss that is not a scalar (a classifier's logits): "
                               "ones (as if its elements were summed), mean, standard normal, or an .npy array.")
LABELS_OPTION = click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False),
                             metavar="FILE", help="Attach a standard loss to the output (or the --loss tensor): "
                             "class labels or a target, one array in an .npy or .npz.")
LOSS_FN_OPTION = click.option("--loss-fn", type=click.Choice(["xent", "mse"]), help="The loss --labels attaches: "
                              "cross-entropy over the class axis 1, or mean squared error; default: xent for integer "
                              "labels, mse for a float target.")
WEIGHTS_OPTION = click.option("--weights", type=click.Path(dir_okay=False), metavar="FILE.npz",
                              help="Where the graph's arrays over 1,000 elements go, inside its folder; "
                              "default: beside the graph, with its name and .npz.")
PARAM_OPTION = click.option("--param", "params", multiple=True, metavar="NAME",
                            help="Make this leaf a param (trainable); the others are inputs. Repeatable, or a,b.")



def leaf_kinds_option(command):
    """--params NAMES and --constants NAMES: override which leaves are trainable (on every command that loads a
    graph). The command receives `kinds`, the keyword arguments of cgtools.load."""
    import functools

    @click.option("--params", "param_names", multiple=True, metavar="NAMES",
                  help="Make these leaves params (trainable), overriding the file; comma-separated or repeated.")
    @click.option("--constants", "constant_names", multiple=True, metavar="NAMES",
                  help="Make these leaves constants (no gradient), overriding the file; comma-separated or repeated.")
    @functools.wraps(command)
    def wrapped(*args, param_names=(), constant_names=(), **kwargs):
        kinds = {"params": split_names(param_names), "constants": split_names(constant_names)}
        return command(*args, kinds=kinds, **kwargs)

    return wrapped


def random_inputs_options(command):
    """--random-inputs [SEED] and --dim NAME=SIZE: draw the inputs that have no value. The command receives
    `random`: None, or (seed, {dim name: size})."""
    import functools

    @click.option("--random-inputs", "random_seed", type=int, is_flag=False, flag_value=0, default=None,
                  metavar="[SEED]", help="Draw inputs that have no value from their declared shapes and dtypes "
                  "(seeded; 0 when no SEED is given).")
    @click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE", help="Size a symbolic dimension of the "
                  "inputs for --random-inputs (--dim batch=4); unsized ones are 1. Repeatable.")
    @functools.wraps(command)
    def wrapped(*args, random_seed=None, dims=(), **kwargs):
        sizes = parse_dims(dims)
        if sizes and random_seed is None:
            raise click.UsageError("--dim sizes the inputs --random-inputs draws; give --random-inputs too")
        return command(*args, random=None if random_seed is None else (random_seed, sizes), **kwargs)

    return wrapped


def run_output_options(command):
    """How `run` prints its result: --json, --stats, --check-numerics, --all, --precision and --profile."""
    for option in reversed((
            click.option("--json", "as_json", is_flag=True, help='Print {"values": {...}, "grads": {...}} as JSON.'),
            click.option("--stats", is_flag=True, help="Print per tensor, value and gradient: dtype, shape, min, max, "
                         "mean, std, the fraction of zeros, and the NaN and infinity counts, instead of the values."),
            click.option("--check-numerics", is_flag=True, help="Stop at the first node making a NaN or an infinity "
                         "(not a mask's -inf), forward or backward: print it, its op, attributes and its inputs' "
                         "statistics; exit 1."),
            click.option("--all", "every_row", is_flag=True, help="Print every tensor's row even on a graph of over "
                         "1,000 tensors (by default its inputs, params and outputs)."),
            PRECISION_OPTION,
            click.option("--profile", is_flag=True, help="Also print where the time went: each op type's forward and "
                         "backward milliseconds and the slowest nodes (the run interpreted, each op timed)."))):
        command = option(command)
    return command


def graph_options(command):
    """GRAPH and its values, as run, info and gradcheck take them: the argument, --set, --inputs, --random-inputs
    with --dim, and --params/--constants (the command receives graph, sets, inputs_file, random and kinds), and
    --threads."""
    for option in reversed((click.argument("graph", type=click.Path(dir_okay=False)), SET_OPTION, INPUTS_OPTION,
                            random_inputs_options, leaf_kinds_option, THREADS_OPTION)):
        command = option(command)
    return command


def loaded(graph, sets, inputs_file, random, kinds):
    """What graph_options name: the graph with its leaf kinds, and the values to run it on."""
    import cgtools

    g = cgtools.load(graph, **kinds)
    return g, feed(g, given_values(sets, inputs_file), random)


def parse_dims(pairs) -> dict:
    """The sizes of `--dim NAME=SIZE` options, by name."""
    from cgtools.errors import CgError

    sizes = {}
    for pair in pairs:
        name, _, size = pair.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise CgError(f"expected NAME=SIZE with a whole number of at least 1, found {pair!r}", where="--dim")
        sizes[name] = int(size)
    return sizes


def feed(graph, given: dict, random) -> dict:
    """The values to run `graph` on: those `given` (given_values), and the inputs still missing drawn when
    `random` (from random_inputs_options) asks for it."""
    if random is None:
        return given
    seed, dims = random
    return {**graph.random_inputs(seed, dims, given=given), **given}


def attach_loss(graph, values: dict, labels_file, loss_fn, loss, upstream):
    """--labels FILE --loss-fn: the graph with the standard loss attached (said on stderr), and the loss to start
    backward from; without --labels, the graph and --loss as given."""
    from cgtools.errors import CgError

    if labels_file is None:
        if loss_fn:
            raise CgError("--loss-fn needs --labels FILE (the class labels or the target)")
        return graph, loss
    if upstream:
        raise CgError("give --labels (a loss of the output) or --upstream-grad (a gradient for the output), not both")
    from cgtools.losses import read_labels, with_loss

    from .reporting import note

    attached = with_loss(graph, read_labels(labels_file), loss_fn, loss, values, source=click.format_filename(
        labels_file, shorten=True))
    note(attached.sentence)
    return attached.graph, attached.loss


def parse_cli_value(text: str):
    """A value given on the command line (`--set x=[1, 2]`): JSON, or the words true/false."""
    from cgtools.errors import CgError
    from cgtools.limits import check_document, parse_json

    expected = f"expected a number or a JSON list, found {text if len(text) <= 60 else text[:59] + '…'!r}"
    try:
        value = parse_json(text)
    except CgError as e:  # a list was meant: say what is wrong with it
        raise CgError(expected + (f": {e.detail}" if text.lstrip().startswith("[") else "")) from None
    check_document(value)  # within the limits a graph file's values keep: nesting, literals
    if not isinstance(value, (int, float, bool, list)):
        raise CgError(expected)
    return value


def parse_sets(pairs) -> dict:
    """The values of `--set NAME=VALUE` options, by name."""
    from cgtools.errors import CgError

    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise CgError(f"expected NAME=VALUE, found {pair!r}", where="--set")
        try:
            values[name] = parse_cli_value(text)
        except CgError as e:
            raise e.within(f"--set {name}") from None
    return values


def upstream_gradient(text: str | None):
    """--upstream-grad as Graph.run takes its seed: a number, a function of the loss's value, or an array."""
    import numpy as np

    from cgtools.errors import CgError

    if text is None or text == "ones":
        return None if text is None else 1.0
    if text == "mean":
        return lambda value: np.full(value.shape, 1.0 / max(value.size, 1), value.dtype)
    if text == "random" or text.startswith("random:"):
        seed = text.partition(":")[2] or "0"
        if not seed.isdigit():
            raise CgError(f"expected --upstream-grad random:SEED with a whole number, found {text!r}")
        return lambda value: np.random.default_rng(int(seed)).standard_normal(value.shape).astype(value.dtype)
    if text.endswith(".npy"):
        try:
            return np.load(text, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CgError(f"cannot read an array from {text!r}: {e}", where="--upstream-grad") from None
    raise CgError(f"expected --upstream-grad {UPSTREAM_WORDS}, found {text!r}")


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


def split_names(items) -> list[str]:
    """`--param a,b --param c` -> ['a', 'b', 'c']."""
    return [n.strip() for item in items for n in item.split(",") if n.strip()]


def show_items(show: str, draw_constants: bool) -> frozenset:
    """What `--show` asks to write, with "constants" added by --draw-constants."""
    from cgtools.errors import CgError

    items = {s.strip().lower() for s in show.split(",") if s.strip()}
    if not items:
        raise CgError("--show needs at least one of values, grads, shapes, names, chain")
    if "constants" in items:
        raise CgError("constants are drawn as nodes with --draw-constants, not --show")
    return frozenset(items | ({"constants"} if draw_constants else set()))


def frames_folder(text: str):
    """The folder `--frames` names, as a Path; an empty name is refused."""
    from pathlib import Path

    from cgtools.errors import CgError

    if not text.strip():
        raise CgError("--frames needs a folder name")
    return Path(text)


def parts_drawn(collapse: int | None, focus: str | None, depth: int | None) -> dict:
    """render's --collapse, --focus and --depth as View fields, checked."""
    from cgtools.errors import CgError

    if collapse is not None and collapse < 1:
        raise CgError(f"expected --collapse a depth of 1 or more, found {collapse}")
    if depth is not None and focus is None:
        raise CgError("--depth counts the edges kept around --focus NAME: give --focus too")
    return {"collapse": collapse, "focus": focus, "depth": 2 if depth is None else depth}
