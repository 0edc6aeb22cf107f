"""What a diagram shows, in no particular format: DOT (dot.py), the frames (frames.py) and the HTML page
(html.py) each draw the same scene.

The scene is a networkx graph of what every node and edge says, line by line, each line with its role (a
value, a gradient, one use's share, a name, an op's symbol, a shape, a non-finite alert, …). A line that a
step of the build-up has not reached yet says what reveals it, so one scene serves every step; the step
schedule is here too. Ids are stable (L0… leaves, N0… ops, O0… outputs, in file order).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import networkx as nx

from cgtools.errors import CgError, did_you_mean
from cgtools.export.chain import Chains
from cgtools.export.colours import MEASURES, Colouring, magnitudes
from cgtools.export.folding import listed_inside, weight_line
from cgtools.export.labels import (
    float_summaries,
    format_shape,
    format_tensor,
    format_type,
    has_non_finite,
    op_symbol,
    root_mean_squares,
    shorten,
    stacked_sums,
)
from cgtools.export.themes import theme
from cgtools.numerics import deliberate_infinities
from cgtools.ops import get_op
from cgtools.runs import arrays_of, surely_finite

SHOW = ("values", "grads", "shapes", "names", "constants", "leaves", "chain")
DEFAULT_SHOW = frozenset({"values", "grads", "names"})
RANKDIRS = ("LR", "TB", "BT", "RL")
# The roles of label lines, by what they say; each exporter decides how a role looks.
#   name, param, output: a leaf's, a param's, an output's name (a shared leaf's value line keeps its role)
#   symbol: an op's symbol; names: the tensors an op makes; shape: a leaf's shape; loss: the loss's mark
#   value, grad, share: a tensor's value, its whole gradient, one use's share of a shared tensor's gradient
#   alert, alert_grad, alert_share: the same three holding a NaN or an infinity
#   title, doc: the graph's name and doc; blank: a line not shown yet, keeping its place
ALERTS = frozenset({"alert", "alert_grad", "alert_share"})


@dataclass(frozen=True)
class View:
    """How a diagram looks: theme, direction, digits, which of SHOW it shows; the depth of the module hierarchy
    it is cut at (None: not cut; the page's initial depth), and the node or tensor it focuses on, with what
    lies within `depth` edges of it (grouping.py); whether the bodies of If, Loop and Scan are drawn (bodies.py;
    None: when the graph is lecture-sized)."""

    theme: str = "slide"
    rankdir: str = "LR"
    precision: int = 4
    show: frozenset = DEFAULT_SHOW
    colouring: Colouring = Colouring()  # edges coloured by value, gradient or difference (colours.py)
    collapse: int | None = None
    focus: str | None = None
    depth: int = 2
    bodies: bool | None = None

    def __post_init__(self):
        theme(self.theme)  # unknown names fail here, with the list of themes
        if self.collapse is not None and self.collapse < 0:  # 0: every module open (the page's initial depth)
            raise CgError(f"expected --collapse a depth of 1 or more, found {self.collapse}")
        if self.depth < 0:
            raise CgError(f"expected --depth 0 or more edges around --focus, found {self.depth}")
        if self.colouring.by not in ("", *MEASURES):
            raise CgError(f"expected --color-by one of {', '.join(MEASURES)}, found {self.colouring.by!r}")
        if self.rankdir not in RANKDIRS:
            raise CgError(f"expected rankdir one of {', '.join(RANKDIRS)}, found {self.rankdir!r}")
        for item in sorted(set(self.show) - set(SHOW)):
            raise CgError(f"unknown --show item {item!r}{did_you_mean(item, SHOW)}; expected some of {', '.join(SHOW)}")


@dataclass(frozen=True)
class Reveal:
    """What a frame of the step-by-step build-up shows; None means everything.

    `grads` holds tensors whose whole gradient is shown, `uses` the (node, input slot) pairs whose share of
    a shared tensor's gradient is shown, `active` the ("op" | "output", name) being computed."""

    values: frozenset | None = None
    grads: frozenset | None = None
    uses: frozenset | None = None
    active: tuple[str, str] | None = None

    def shows(self, field_name: str, item) -> bool:
        shown = getattr(self, field_name)
        return shown is None or item in shown


NOTHING = Reveal(values=frozenset(), grads=frozenset(), uses=frozenset())
FORWARD = Reveal(grads=frozenset(), uses=frozenset())


class Line(NamedTuple):
    """One line of a label: its text and role once shown. `until` is what reveals it, a Reveal field and an
    item (None: always shown); `before` is the (text, role) standing in its place until then."""

    text: str
    role: str
    until: tuple[str, object] | None = None
    before: tuple[str, str] = ("", "blank")

    def at(self, reveal: Reveal) -> tuple[str, str]:
        if self.until is None or reveal.shows(*self.until):
            return self.text, self.role
        return self.before


def at(lines: list[Line], reveal: Reveal) -> list[tuple[str, str]]:
    """The (text, role) lines as a step shows them."""
    return [line.at(reveal) for line in lines]


def alerting(lines: list[tuple[str, str]]) -> bool:
    """Whether shown lines hold a NaN or an infinity."""
    return any(role in ALERTS for _, role in lines)


@dataclass
class Scene:
    """A graph and run as a diagram shows them.

    `graph` is a networkx MultiDiGraph. Its nodes have `kind` (input, param, constant, op, output), `model`
    (the name in the graph), `tensors` (those the node stands for), `loss` (the output that is the loss),
    `lines` and `hover` (plain text parts). Its edges have `tensor`, `slot` (the reader's input slot),
    `use` ((op, slot) of one read of a shared tensor, else None), `lines` and `hover`."""

    view: View
    title: list[Line]
    graph: nx.MultiDiGraph


def make_scene(graph, run=None, view: View = View()) -> Scene:
    """What the diagram of `graph` (with a run's values and gradients) says, node by node and edge by edge.

    A tensor read once is written on its edge: `c = 3` and `∂e/∂c = 10`. A tensor read by several nodes is
    written on the node that makes it, and each of its edges carries that use's share, `∂L/∂x += 24`:
    the multivariable chain rule, drawn."""
    facts = Facts(graph, run, view)
    S = nx.MultiDiGraph()
    ids = add_leaves(S, facts)
    for i, node in enumerate(graph.nodes):
        ids[node.name] = f"N{i}"
        if node.name in facts.inside.hidden:
            continue
        weights = [t for t in node.inputs if facts.inside.reader.get(t) == node.name]
        lines = [Line(op_symbol(get_op(node.op), node.inputs, facts.folded), "symbol")]
        if "names" in view.show:
            lines.append(Line(shorten(", ".join(node.outputs)), "names"))
        lines += [Line(weight_line(facts.inside.source[t], facts.weight_shape(t)), "shape") for t in weights]
        for out in node.outputs:
            if out in facts.shared and run is not None:
                lines += facts.tensor_lines(out)
        attrs = ", ".join(f"{k}={v}" for k, v in node.attrs.items())
        S.add_node(ids[node.name], kind="op", model=node.name, tensors=list(node.outputs), loss=False, lines=lines,
                   hover=(f"{node.op} {node.name}", attrs, node.doc, *map(facts.leaf_hover, weights)),
                   weights=weights)
    for u, v, slot, data in facts.G.edges(keys=True, data=True):
        if facts.drops(u) or facts.drops(v):
            continue
        tensor = data["tensor"]
        use = (v, slot) if tensor in facts.shared else None
        lines = facts.use_lines(tensor, use) if use else facts.tensor_lines(tensor)
        lines, chain = facts.chained(lines, tensor, (v, slot))
        S.add_edge(ids[u], ids[v], **facts.edge(tensor, lines), slot=slot, use=use, chain=chain)
    add_outputs(S, facts, ids)
    measure_and_mark(S, ids, facts)
    title = [Line(text, role) for text, role in ((graph.name, "title"), (graph.doc, "doc")) if text]
    return Scene(view, title, S)


def measure_and_mark(S: nx.MultiDiGraph, ids: dict[str, str], facts: Facts) -> None:
    """Each edge's magnitudes, to colour it by (`measures`); a comparison's marked op (its first divergence)
    outlined (`marked`), with a line saying why."""
    colouring, found = facts.view.colouring, {}
    for _, _, data in S.edges(data=True):
        tensor = data["tensor"]
        if tensor not in found:
            found[tensor] = magnitudes(tensor, facts.values, facts.grads, colouring.diffs, facts.rms)
        data["measures"] = found[tensor]
    if colouring.mark and colouring.mark[0] in ids:
        node = S.nodes[ids[colouring.mark[0]]]
        node.update(marked=True, lines=[*node["lines"], Line(colouring.mark[1], "alert")])


def add_leaves(S: nx.MultiDiGraph, facts: Facts) -> dict[str, str]:
    """A node per leaf not folded into its readers; their ids by tensor name."""
    ids = {}
    for i, (name, leaf) in enumerate(facts.graph.leaves.items()):
        if facts.drops(name):
            continue
        ids[name] = f"L{i}"
        role = "param" if leaf.kind == "param" else "name"
        if name in facts.shared and facts.run is not None:
            lines = facts.tensor_lines(name, role=role)
        else:
            lines = [Line(shorten(name), role)]
        if "shapes" in facts.view.show and leaf.shape is not None:
            lines.append(Line(format_shape(leaf.shape), "shape"))
        S.add_node(ids[name], kind=leaf.kind, model=name, tensors=[name], loss=False, lines=lines,
                   hover=(f"{leaf.kind} {name}", leaf.doc))
    return ids


def add_outputs(S: nx.MultiDiGraph, facts: Facts, ids: dict[str, str]) -> None:
    """A node per output, the loss marked, and the edge from what makes it."""
    graph = facts.graph
    producers = graph.producers
    loss_name = graph.loss or (graph.outputs[0] if len(graph.outputs) == 1 else None)
    for i, out in enumerate(graph.outputs):
        lines = [Line(shorten(out), "output")] + ([Line("loss", "loss")] if out == loss_name else [])
        S.add_node(f"O{i}", kind="output", model=out, tensors=[out], loss=out == loss_name, lines=lines,
                   hover=(f"output {out}",))
        source = ids[producers[out].name] if out in producers else ids[out]
        lines = [] if out in facts.shared else facts.tensor_lines(out)
        S.add_edge(source, f"O{i}", **facts.edge(out, lines), slot=0, use=None)


class Facts:
    """What a scene is made from: the graph, the run's numbers, the constants folded into the ops that read
    them, the weights listed inside their ops, and the tensors read by several nodes (shared)."""

    def __init__(self, graph, run, view: View):
        self.graph, self.run, self.view = graph, run, view
        self.G = graph.to_networkx()  # the structure; the run's numbers are looked up by tensor name
        self.loss = run.loss if run is not None else None
        self.values = run.values if run is not None else {}
        self.grads = run.grads if run is not None else {}
        self.shares = run.use_grads if run is not None else {}
        self.inside = listed_inside(graph, self.G, view.show)
        # a run whose values (gradients) are all finite needs no look at each for an alert
        self.finite_values = run is None or surely_finite(arrays_of(self.values))
        self.finite_grads = run is None or surely_finite(arrays_of(self.grads)) and surely_finite(self.shares.values())
        self.masked = frozenset() if self.finite_values else deliberate_infinities(graph, self.values)  # no alert
        sums = [] if run is None else stacked_sums([*arrays_of(self.values), *arrays_of(self.grads),
                                                    *self.shares.values()])
        self.summaries, self.rms = float_summaries(sums, view.precision), root_mean_squares(sums)
        self.folded = {} if "constants" in view.show else {
            name: format_tensor(leaf.value, view.precision) if leaf.value is not None and leaf.value.size <= 6
            else name for name, leaf in graph.leaves.items()
            if leaf.kind == "constant" and name not in self.inside.hidden}
        readers = Counter(data["tensor"] for u, v, data in self.G.edges(data=True)
                          if not self.drops(u) and not self.drops(v))
        readers.update(graph.outputs)
        self.shared = {name for name, n in readers.items() if n > 1}
        chained = "chain" in view.show and run is not None
        self.chains = Chains(graph, run, self.folded, view.precision) if chained else None

    def tensor_lines(self, tensor: str, role: str | None = None) -> list[Line]:
        """The tensor's value (`c = 3`) and whole gradient (`∂e/∂c = 10`). Before its value is revealed the
        first line keeps what needs no run (the name, the shape) or stays blank, so frames align. `role`
        is a leaf's name role, which its value line keeps."""
        show, value = self.view.show, self.values.get(tensor)
        head = shorten(tensor) if "names" in show or role else ""
        if "shapes" in show and value is not None:
            head = f"{head} {format_shape(value.shape)}".strip()
        bare = (head, role or "value") if head else ("", "blank")
        if value is not None and "values" in show:
            text = self.written(value)
            text = f"{head} = {text}" if head else text
            bad = not self.finite_values and has_non_finite(value) and tensor not in self.masked
            lines = [Line(("⚠ " if bad else "") + text, "alert" if bad else role or "value", ("values", tensor), bare)]
        else:
            lines = [Line(*bare)]
        grad = self.grads.get(tensor)
        if "grads" in show and grad is not None and self.loss is not None:
            lines.append(self.grad_line(f"∂{self.loss}/∂{shorten(tensor)} = ", grad, "grad", ("grads", tensor)))
        return self.chained(lines, tensor)[0] if tensor in self.shared else lines

    def chained(self, lines: list[Line], tensor: str, use: tuple[str, int] | None = None) -> tuple[list[Line], str]:
        """With "chain" shown, the chain rule making the gradient on an edge (`use`: its reader and slot) or a
        shared tensor's node (the sum of its uses), and its text; it replaces the gradient line it ends in."""
        share = use is not None and tensor in self.shared
        chain = self.chains and (self.chains.edge(tensor, *use, share) if use else self.chains.total(tensor))
        if not chain:
            return lines, ""
        role, until = ("share", ("uses", use)) if share else ("grad", ("grads", tensor))
        kept = [line for line in lines if not (chain.complete and line.role == role)]
        return [*kept, Line(chain.text, role, until)], chain.text

    def written(self, array) -> str:
        """format_tensor(array) at the view's precision; a small tensor's summary was made with the others'."""
        found = self.summaries.get(id(array))
        return found[1] if found is not None and found[0] is array else format_tensor(array, self.view.precision)

    def drops(self, key: str) -> bool:
        """Whether a leaf or op of the graph is not drawn: folded into its reader's symbol or listed inside it."""
        return key in self.folded or key in self.inside.hidden

    def weight_value(self, name: str):
        """A listed weight's value: from the run, else the leaf's it stands for (None if neither has one)."""
        leaf = self.graph.leaves.get(self.inside.source[name])
        return self.values.get(name, leaf.value if leaf is not None else None)

    def weight_shape(self, name: str):
        value, leaf = self.weight_value(name), self.graph.leaves.get(self.inside.source[name])
        return value.shape if value is not None else leaf.shape if leaf is not None else None

    def leaf_hover(self, name: str) -> str:
        """A weight listed inside its op, in the op's hover text: name, type, value and gradient."""
        leaf, value = self.graph.leaves.get(self.inside.source[name]), self.weight_value(name)
        source = self.inside.source[name]
        text = f"{leaf.kind if leaf is not None else 'weight'} {source}" + (f" (as {name})" if source != name else "")
        if value is not None:  # without "values" shown, a weight mapped from disk is not read
            text += ": " + format_type(value)
            text += f" = {self.written(value)}" if "values" in self.view.show else ""
        grad = self.grads.get(name)
        if grad is not None and self.loss is not None:
            text += f"; ∂{self.loss}/∂{name} = {self.written(grad)}"
        return text

    def use_lines(self, tensor: str, use: tuple[str, int]) -> list[Line]:
        """The edge of one use of a shared tensor: what this use adds to its gradient, `∂L/∂x += 24`."""
        share = self.shares.get(use)
        if share is None or self.loss is None or "grads" not in self.view.show:
            return []
        return [self.grad_line(f"∂{self.loss}/∂{shorten(tensor)} += ", share, "share", ("uses", use))]

    def grad_line(self, prefix: str, grad, role: str, until: tuple) -> Line:
        text = prefix + self.written(grad)
        if not self.finite_grads and has_non_finite(grad):
            return Line("⚠ " + text, f"alert_{role}", until)
        return Line(text, role, until)

    def edge(self, tensor: str, lines: list[Line]) -> dict:
        """What an edge carrying `tensor` says, and its hover text: the name, dtype and shape."""
        value = self.values.get(tensor)
        described = format_type(value) if value is not None else ""
        return {"tensor": tensor, "lines": lines, "hover": (f"{tensor}: {described}" if described else tensor,)}


# ---- the step-by-step build-up ---------------------------------------------------------------------------


@dataclass
class Schedule:
    """When each value and gradient first appears, and what each step computes.

    Step 0 is the bare graph; steps 1… run forward one node at a time (leaf values come with the first);
    then the seed ∂L/∂L = 1; then backward one node at a time in reverse, each passing its inputs their
    shares; a tensor's whole gradient shows once every reader has passed its share. The last step shows
    everything, with nothing highlighted: the finished picture."""

    value_step: dict[str, int]
    grad_step: dict[str, int]
    use_step: dict[tuple[str, int], int]  # (node name, input slot) -> step its share appears
    active: list[tuple[str, str] | None]  # per step: ("op" | "output", name) being computed

    def reveal(self, k: int) -> Reveal:
        if k == len(self.active) - 1:
            return Reveal()
        return Reveal(values=frozenset(t for t, first in self.value_step.items() if first <= k),
                      grads=frozenset(t for t, first in self.grad_step.items() if first <= k),
                      uses=frozenset(u for u, first in self.use_step.items() if first <= k), active=self.active[k])


def schedule(graph, run) -> Schedule:
    order = [graph.nodes[i] for i in graph.topological_order()]
    value_step = dict.fromkeys(graph.leaves, 1)
    active: list = [None]
    for node in order:
        active.append(("op", node.name))
        value_step.update((t, len(active) - 1) for t in node.outputs)
    grad_step: dict[str, int] = {}
    use_step: dict[tuple[str, int], int] = {}
    if run is not None and run.loss is not None:
        active.append(("output", run.loss))
        grad_step[run.loss] = len(active) - 1
        for node in reversed(order):
            active.append(("op", node.name))
            step = len(active) - 1
            for out in node.outputs:  # an output nobody reads: its (zero) gradient shows with its node
                grad_step.setdefault(out, step)
            for slot, t in enumerate(node.inputs):
                if t in run.grads:
                    use_step[node.name, slot] = step
                    grad_step[t] = step  # the latest reader in backward order completes the sum
    active.append(None)
    for t in graph.leaves:  # leaves nobody reads
        grad_step.setdefault(t, len(active) - 1)
    return Schedule(value_step, grad_step, use_step, active)


def reveals(graph, run) -> list[Reveal]:
    """One Reveal per frame: bare, one per op forward, then (with a backward pass) the seed, one per op
    backward, and the finished picture."""
    plan = schedule(graph, run)
    return [plan.reveal(k) for k in range(len(plan.active))]
