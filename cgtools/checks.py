"""The semantic checks of any Graph, whatever format it came from: names, references, ops, attributes,
arity and cycles; and shapes, by a forward pass on zeros."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from cgtools.errors import CgError, did_you_mean, node_place
from cgtools.limits import checked_size
from cgtools.ops import get_op
from cgtools.ops.base import check_attrs

if TYPE_CHECKING:
    from cgtools.graph import Graph
    from cgtools.parts import Node

DRY_RUN_ELEMENTS = 2**24  # elements of zeros a dry run (validate, convert) may feed: 128 MiB as float64, so with
# outputs of like size it answers in about a second within a few hundred MiB; larger inputs are not run


def check(graph: Graph, places: list[str] | None = None) -> None:
    """The semantic checks: names, references, ops, attributes, arity and cycles. `places` names the nodes
    in messages as their file does (`node 3 (Mul 'c')`), one per node; by default `nodes[3]`. Each pass is
    over whole lists at once; only when it finds a problem does a walk node by node say which comes first."""
    nodes = graph.nodes
    made_by: dict[str, int | None] = dict.fromkeys(graph.leaves)  # tensor -> the node making it; None: a leaf
    made_by.update((out, i) for i, node in enumerate(nodes) for out in node.outputs)
    names = {node.name for node in nodes}
    if (len(made_by) < len(graph.leaves) + sum(len(node.outputs) for node in nodes) or len(names) < len(nodes)
            or not names.isdisjoint(graph.leaves)):
        _refuse_repeats(graph, places)
    read = {tensor for node in nodes for tensor in node.inputs}
    read.discard("")
    if not read.issubset(made_by):
        _refuse_unknown_inputs(graph, made_by, places)
    # nodes alike (op, output count, inputs, no attributes) pass or fail alike: a chain of 100,000 Tanh checks one
    forms = [(node.op, len(node.outputs), len(node.inputs)) if not node.attrs and "" not in node.inputs else i
             for i, node in enumerate(nodes)]
    firsts = {}
    for i, form in enumerate(forms):
        firsts.setdefault(form, i)
    for i in sorted(firsts.values()):
        _check_node(nodes[i], True, places[i] if places else None, i)
    for j, out in enumerate(graph.outputs):
        if out not in made_by:
            raise CgError(f"unknown tensor {out!r}{did_you_mean(out, made_by)}", where=f"outputs[{j}]")
    if graph.loss is not None and graph.loss not in made_by:
        raise CgError(f"unknown tensor {graph.loss!r}{did_you_mean(graph.loss, made_by)}", where="loss")
    graph.topological_order()  # raises on a cycle, naming it


def _place(places: list[str] | None, i: int) -> str:
    return places[i] if places else f"nodes[{i}]"


def _refuse_repeats(graph: Graph, places: list[str] | None) -> None:
    """The first tensor made twice, or node name taken twice, in file order, as a CgError."""
    made_by: dict[str, int | None] = dict.fromkeys(graph.leaves)
    node_names: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for j, out in enumerate(node.outputs):
            if out in made_by:
                k = made_by[out]
                maker = f"the {graph.leaves[out].kind} {out!r}" if k is None else f"nodes[{k}]"
                raise CgError(f"tensor {out!r} is made twice: already by {maker}",
                              where=f"{_place(places, i)}.outputs[{j}]")
            made_by[out] = i
        if node.name in node_names or node.name in graph.leaves:
            other = (f"nodes[{node_names[node.name]}]" if node.name in node_names
                     else f"the {graph.leaves[node.name].kind} {node.name!r}")
            raise CgError(f"node name {node.name!r} is already taken by {other}; give the node its own \"name\"",
                          where=f"{_place(places, i)}.name")
        node_names[node.name] = i


def _refuse_unknown_inputs(graph: Graph, made_by: dict, places: list[str] | None) -> None:
    """The first node, in file order, that reads an unknown tensor or is itself malformed, as a CgError."""
    for i, node in enumerate(graph.nodes):
        for j, tensor in enumerate(node.inputs):
            if tensor and tensor not in made_by:
                raise CgError(f"unknown tensor {tensor!r}{did_you_mean(tensor, made_by)}",
                              where=f"{_place(places, i)}.inputs[{j}]")
        _check_node(node, True, places[i] if places else None, i)


def _check_node(node: Node, arity: bool, place: str | None, i: int) -> None:
    """The node's op exists, takes as many inputs and outputs as it has (when `arity`) and its attributes."""
    try:
        op = get_op(node.op)
    except CgError as e:
        raise e.located(where=f"{place or f'nodes[{i}]'}.op") from None
    try:
        if arity:
            _check_arity(op, node)
    except CgError as e:  # the place made only when needed: 100,000 nodes, 100,000 strings
        raise e.within(place or node_place(i, node)) from None
    try:
        node.attrs = check_attrs(op, node.attrs)
    except CgError as e:
        raise e.within(place or f"nodes[{i}]") from None


def _check_arity(op, node: Node) -> None:
    spec, given = op.spec, len(node.inputs)
    least = max(spec.required, 1) if spec.variadic else spec.required
    variadic_from = len(spec.inputs) - 1 if spec.variadic else given  # none of a variadic op's inputs is optional
    missing = [spec.inputs[min(k, len(spec.inputs) - 1)] for k in range(given)
               if not node.inputs[k] and (k < spec.required or k >= variadic_from)]
    if given < least or (given > len(spec.inputs) and not spec.variadic) or missing:
        names = ", ".join(spec.inputs) + ("…" if spec.variadic else "")
        found = f"{given}" + (f" (input {missing[0]!r} left empty)" if missing else "")
        raise CgError(f"{node.op} takes {spec.arity} inputs ({names}), found {found}",
                      where="inputs")
    made = len(node.outputs)
    if made > spec.most_outputs:  # fewer is fine: the outputs after the first are optional, as in ONNX
        count = "1 output" if len(spec.outputs) == 1 else f"1 to {len(spec.outputs)} outputs"
        raise CgError(f"{node.op} makes {count} ({', '.join(spec.outputs)}), found {made}", where="outputs")
    for attr, fed in spec.forms.items():  # an older opset's attribute stands for an input: one or the other
        if attr in node.attrs and given > spec.inputs.index(fed):
            raise CgError(f"{node.op} takes {fed!r} as its input {spec.inputs.index(fed) + 1} or, as older opsets "
                          f"did, as the attribute {attr!r}, not both (nor with later inputs)", where="attrs")


def check_shapes(graph: Graph) -> None:
    """A forward pass on zeros wherever a leaf has no value but declares its shape; shape errors name the
    node. Skipped when some input has neither a value nor a shape, or (with a note) when the zeros would be
    too many."""
    feed = dry_run_feed(graph, "their shapes are not checked by running the graph")
    if feed is not None:
        graph.run(feed, backward=False)


def dry_run_feed(graph: Graph, skipped: str) -> dict | None:
    """Zeros for each leaf without a value, from its declared shape, as zero-stride views that take no memory;
    None when some leaf declares no shape or, with a note saying `skipped`, when they declare more than
    DRY_RUN_ELEMENTS (the ops' outputs would be as large)."""
    empty = [leaf for leaf in graph.leaves.values() if leaf.value is None]
    if any(leaf.shape is None for leaf in empty):
        return None
    total = 0
    for leaf in empty:
        try:
            total += checked_size(leaf.shape)
        except CgError as e:
            raise e.located(where=f"the {leaf.kind} {leaf.name!r}") from None
    if total > DRY_RUN_ELEMENTS:
        warnings.warn(f"the inputs without a value declare {total:,} elements, more than the {DRY_RUN_ELEMENTS:,} "
                      f"a dry run on zeros may take: {skipped}", stacklevel=3)
        return None
    feed = {leaf.name: np.broadcast_to(np.zeros((), leaf.dtype or np.float64), leaf.shape) for leaf in empty}
    # weights memory-mapped from external data stay on disk: zeros of their shape check the shapes as well
    feed.update((leaf.name, np.broadcast_to(np.zeros((), leaf.value.dtype), leaf.value.shape))
                for leaf in graph.leaves_of("param") if isinstance(leaf.value, np.memmap))
    return feed
