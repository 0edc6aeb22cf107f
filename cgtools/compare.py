"""One graph run two ways, tensor by tensor: cgtools against onnxruntime, against onnx's ReferenceEvaluator, or
against cgtools on another graph (before and after an edit, an export against its source). Every intermediate
tensor is compared, and the first node whose output differs while the tensors it computes from agree is named.

The runtimes return only a model's outputs: onnxruntime is given every node's output as an output, and the
ReferenceEvaluator is asked for its intermediates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cgtools.errors import CgError, node_place
from cgtools.graph import Graph
from cgtools.io import load
from cgtools.onnx.mapping import TYPE_NAMES, require_onnx
from cgtools.onnx.write import to_onnx

AGAINST = ("onnxruntime", "reference")


@dataclass
class TensorDiff:
    """How far one tensor is from its other run: the largest absolute and relative differences."""

    name: str
    shape: list
    max_abs: float
    max_rel: float
    ok: bool
    problem: str = ""  # a shape or dtype that differs, NaN on one side only


@dataclass
class Divergence:
    """The first node whose output differs while the tensors it computes from agree."""

    place: str  # nodes[3] (Conv 'conv1')
    op: str
    attrs: dict
    inputs: list  # [name, dtype, shape] of each input
    outputs: list[TensorDiff]
    leaves_differing: list = field(default_factory=list)  # [kind, name] of its params or constants that differ
    node: str = ""  # its name in the graph


@dataclass
class Comparison:
    """Every tensor both runs have, in the graph's order, and the first divergence."""

    against: str
    tensors: list[TensorDiff]
    divergence: Divergence | None
    outputs: tuple[str, ...]
    rtol: float
    atol: float
    graph: Graph | None = field(default=None, repr=False)  # what was compared, and cgtools' run of it, to draw
    run: object = field(default=None, repr=False)

    @property
    def outputs_agree(self) -> bool:
        return all(d.ok for d in self.tensors if d.name in self.outputs)

    def report(self, shown: int = 20) -> str:
        """As `cgtools compare` prints it: the tensors that differ (the first `shown`), then the divergence."""
        differ = [d for d in self.tensors if not d.ok]
        lines = [f"against {self.against}: {len(self.tensors) - len(differ)} of {len(self.tensors)} tensors agree "
                 f"(rtol {self.rtol:g}, atol {self.atol:g}); the outputs "
                 f"{'agree' if self.outputs_agree else 'differ'}"]
        for d in differ[:shown]:
            lines.append(f"  {d.name}  {d.shape}  max abs {d.max_abs:.3g}  max rel {d.max_rel:.3g}"
                         + (f"  ({d.problem})" if d.problem else ""))
        if len(differ) > shown:
            lines.append(f"  … and {len(differ) - shown} more")
        if self.divergence:
            v = self.divergence
            lines.append(f"first divergence: {v.place}: its output differs while its inputs agree")
            lines += [f"  attribute {k} = {a}" for k, a in v.attrs.items()]
            lines += [f"  input {name}: {dtype} {shape}" for name, dtype, shape in v.inputs]
            lines += [f"  its {kind} {name!r} differs" for kind, name in v.leaves_differing]
        return "\n".join(lines) + "\n"

    def colouring(self):
        """Edges coloured by their difference, the first divergence outlined and saying by how much."""
        from cgtools.export.colours import Colouring

        mark = None
        if self.divergence:
            worst = max(self.divergence.outputs, key=lambda d: d.max_abs)
            said = worst.problem or f"max abs {worst.max_abs:.3g}"
            mark = (self.divergence.node, f"≠ first divergence: {said}")
        return Colouring("diff", {d.name: d.max_abs for d in self.tensors}, self.against, mark)

    def draw(self, fmt: str = "svg", view=None) -> bytes:
        """The graph with cgtools' values, each edge coloured by its difference (see `colouring`), in `fmt`
        (svg, png, pdf, dot or html); `view` gives the theme and direction."""
        from dataclasses import replace

        from cgtools.export import draw
        from cgtools.export.scene import View

        return draw(self.graph, self.run, replace(view or View(), colouring=self.colouring()), fmt)

    def to_json(self) -> dict:
        return {"against": self.against, "rtol": self.rtol, "atol": self.atol, "outputs_agree": self.outputs_agree,
                "tensors": [asdict(d) for d in self.tensors],
                "first_divergence": asdict(self.divergence) if self.divergence else None}


def compare(source, other=None, *, against: str = "onnxruntime", inputs: dict | None = None,
            rtol: float = 1e-4, atol: float = 1e-5, random_seed: int | None = None, dims: dict | None = None
            ) -> Comparison:
    """Run `source` (a path or a Graph) with cgtools and with `against` (or cgtools on `other`) on the same
    inputs; compare every tensor both runs have. With `random_seed`, inputs without a value are drawn (`dims`
    sizes their symbolic dimensions)."""
    graph = load(source)
    inputs = inputs or {}
    inputs = {**(graph.random_inputs(random_seed, dims, given=inputs) if random_seed is not None else {}), **inputs}
    run = graph.run(inputs, backward=False)
    ours = run.values
    feed = {leaf.name: ours[leaf.name] for leaf in graph.leaves_of("input")}
    if other is not None:
        other_graph = load(other)
        given = {k: v for k, v in feed.items() if k in other_graph.leaves}
        theirs, against = dict(other_graph.run(given, backward=False).values), f"cgtools on {other_graph.name or other}"
    elif against in AGAINST:
        onnx_file = isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".onnx"
        theirs = runtime_values(Path(source) if onnx_file else None, graph, feed, against)
    else:
        raise CgError(f"expected --against one of {', '.join(AGAINST)}, found {against!r}")
    diffs = {name: tensor_diff(name, ours[name], np.asarray(theirs[name]), rtol, atol)
             for name in ordered_tensors(graph) if name in theirs and name in ours}
    return Comparison(against, list(diffs.values()), first_divergence(graph, diffs, ours), tuple(graph.outputs),
                      rtol, atol, graph, run)


def ordered_tensors(graph: Graph) -> list[str]:
    return [*graph.leaves, *(t for i in graph.topological_order() for t in graph.nodes[i].outputs)]


def runtime_values(onnx_file: Path | None, graph: Graph, feed: dict, against: str) -> dict:
    """Every tensor an ONNX runtime computes for the model: the .onnx file itself, or the graph written as one."""
    onnx = require_onnx()
    model = onnx.load(str(onnx_file)) if onnx_file else to_onnx(graph)
    initialized = {t.name for t in model.graph.initializer}
    feeds = {}
    for value_info in model.graph.input:
        if value_info.name in feed and value_info.name not in initialized:
            declared = TYPE_NAMES.get(value_info.type.tensor_type.elem_type, "float32")
            feeds[value_info.name] = np.asarray(feed[value_info.name]).astype(declared, copy=False)
    if against == "reference":
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, feeds, intermediate=True)
    return onnxruntime_values(onnx, model, feeds)


def onnxruntime_values(onnx, model, feeds: dict) -> dict:
    """onnxruntime's value of every node output, each made an output of the model (types from inference)."""
    import onnxruntime

    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in have:
                exposed.graph.output.append(inferred.get(name) or onnx.helper.make_empty_tensor_value_info(name))
                have.add(name)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def tensor_diff(name: str, ours: np.ndarray, theirs: np.ndarray, rtol: float, atol: float) -> TensorDiff:
    """The largest differences, NaN matching NaN and an infinity the same infinity."""
    shape = list(np.shape(ours))
    if np.shape(ours) != np.shape(theirs):
        return TensorDiff(name, shape, np.inf, np.inf, False, f"shape {shape} against {list(np.shape(theirs))}")
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.where(same, 0.0, np.abs(a - b))
        gap = np.where(np.isnan(gap), np.inf, gap)  # NaN on one side only, or opposite infinities
        rel = gap / np.maximum(np.maximum(np.abs(a), np.abs(b)), np.finfo(np.float64).tiny)
    ok = bool(np.all(gap <= atol + rtol * np.abs(np.where(np.isfinite(b), b, 0.0))))
    problem = "NaN on one side only" if bool(np.any(np.isnan(a) != np.isnan(b))) else ""
    return TensorDiff(name, shape, float(gap.max(initial=0.0)), float(rel.max(initial=0.0)), ok, problem)


def first_divergence(graph: Graph, diffs: dict[str, TensorDiff], values) -> Divergence | None:
    """The first node, in topological order, whose output differs while every input a node computes agrees
    (a param or constant that differs is the node's own: it is listed, not a reason to look further up)."""
    producers = graph.producers
    for i in graph.topological_order():
        node = graph.nodes[i]
        outs = [diffs[t] for t in node.outputs if t in diffs]
        if all(d.ok for d in outs):
            continue
        if all(diffs[t].ok for t in node.inputs if t in producers and t in diffs):
            leaves = [[graph.leaves[t].kind, t] for t in node.inputs
                      if t in graph.leaves and t in diffs and not diffs[t].ok]
            inputs = [[t, str(values[t].dtype), list(values[t].shape)] if t in values else [t or "∅", "", []]
                      for t in node.inputs]
            return Divergence(node_place(i, node), node.op, {k: _plain(v) for k, v in node.attrs.items()},
                              inputs, outs, leaves, node.name)
    return None


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value
