"""The numpy interpreter: compile a graph once into a flat plan, then run it forward and backward.

Tensors live in a list indexed by slot; slot 0 is always None and stands for an omitted optional input.
Backward walks the plan in reverse, reduces broadcast gradients to their input's shape and adds up the
gradients a tensor receives from each of its consumers (the multivariable chain rule).
The loops run a graph's first runs (and every run that keeps per-use gradients); a plan run often enough
goes through the same calls as straight-line Python (compiled.py), and back to the loops on an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from time import perf_counter
from typing import NamedTuple

import numpy as np

from cgtools import compiled
from cgtools.errors import CgError, LossNotScalar, did_you_mean
from cgtools.memory import collector_paused
from cgtools.ops import Context, get_op
from cgtools.schema import node_place
from cgtools.values import decode as decode_value


class Step(NamedTuple):
    forward: object  # the op's forward with the node's attributes bound
    backward: object
    ins: tuple[int, ...]
    outs: tuple[int, ...]
    place: str  # "nodes[3] (Mul 'c')", for messages
    gather: object  # slot list -> the input (one input) or the tuple of inputs
    unary: bool
    node: str  # the node's name


@dataclass
class Plan:
    slots: dict[str, int]
    names: list
    steps: list[Step]
    leaf_slots: list[int]
    constant_slots: set[int]
    flows: dict = field(default_factory=dict)  # leaf dtypes -> Flow
    interpreted: float = 0.0  # seconds spent interpreting forward
    compiled_forward: object = None


@dataclass
class Flow:
    """Which tensors get a gradient, and which steps pass one back: fixed by the leaves' dtypes."""

    requires: list[bool]  # per slot
    backward_steps: list[tuple]  # (step index, backward, (position, slot) of inputs wanting a gradient, outs,
    #                               needs_grad per input, place), in reverse
    interpreted: float = 0.0  # seconds spent interpreting backward
    compiled_backward: object = None


class SlotView(Mapping):
    """A read-only name -> array mapping over the interpreter's slot list, built without copying.

    With `zeros_like`, slots marked in `present` but never reached read as zeros of that value's shape."""

    def __init__(self, plan: Plan, arrays: list, present=None, zeros_like=None):
        self._plan, self._arrays, self._zeros_like = plan, arrays, zeros_like
        self._present = present if present is not None else [a is not None for a in arrays]

    def __getitem__(self, name):
        slot = self._plan.slots.get(name, 0)
        if not slot or not self._present[slot]:
            raise KeyError(name)
        array = self._arrays[slot]
        if array is None:
            array = self._arrays[slot] = np.zeros_like(self._zeros_like[slot])
        return array

    def __iter__(self):
        names = self._plan.names
        return (names[i] for i, here in enumerate(self._present) if i and here)

    def __len__(self):
        return sum(self._present[1:])

    def __repr__(self):
        return repr(dict(self))


@dataclass
class Run:
    """What a run computed: `values` and `grads` map tensor names to arrays. A tensor has a gradient when it
    is a float input, param or intermediate (zero where the loss does not depend on it).

    With `per_use`, `use_grads[(node name, input slot)]` is what that one use passed back: a tensor read
    twice gets two contributions, and its gradient is their sum (the multivariable chain rule)."""

    graph: object
    values: Mapping[str, np.ndarray]
    grads: Mapping[str, np.ndarray]
    loss: str | None
    use_grads: dict = field(default_factory=dict)

    def to_networkx(self):
        return self.graph.to_networkx(self)

    def non_finite(self) -> tuple[list[str], list[str]]:
        """Tensors holding a NaN or an infinity: values in forward order (the first is where it started) and
        gradients in backward order (the first is nearest the loss)."""
        graph = self.graph
        order = [*graph.leaves, *(t for i in graph.topological_order() for t in graph.nodes[i].outputs)]

        def bad(array):
            return array is not None and array.dtype.kind in "fc" and not np.isfinite(array).all()

        return ([t for t in order if bad(self.values.get(t))],
                [t for t in reversed(order) if bad(self.grads.get(t))])

    def _repr_svg_(self):
        """Jupyter shows a run as its diagram, values and gradients on the edges."""
        return svg_or_none(self.graph, self)


def svg_or_none(graph, run) -> str | None:
    from cgtools.export import draw

    try:
        return draw(graph, run, fmt="svg").decode()
    except CgError:  # no Graphviz: let Jupyter fall back to the plain repr
        return None


def compile_plan(graph) -> Plan:
    """The graph's topological order, flattened into slot indices."""
    names = [None, *graph.leaves, *(out for node in graph.nodes for out in node.outputs)]
    slots = {name: i for i, name in enumerate(names) if name is not None}
    slots[""] = 0
    steps = []
    for i in graph.topological_order():
        node = graph.nodes[i]
        op = get_op(node.op)
        forward = partial(op.forward, **node.attrs) if node.attrs else op.forward
        ins = tuple(slots[t] for t in node.inputs)
        gather = itemgetter(*ins) if ins else (lambda _: ())
        steps.append(Step(forward, op.backward, ins, tuple(slots[t] for t in node.outputs), node_place(i, node),
                          gather, len(ins) == 1, node.name))
    leaf_slots = [slots[name] for name in graph.leaves]
    constants = {slots[leaf.name] for leaf in graph.leaves_of("constant")}
    return Plan(slots, names, steps, leaf_slots, constants)


def plan_of(graph) -> Plan:
    if graph._plan is None:
        graph._plan = compile_plan(graph)
    return graph._plan


def loss_name(graph) -> str:
    if graph.loss:
        return graph.loss
    if len(graph.outputs) == 1:
        return graph.outputs[0]
    raise CgError(f"backward needs one scalar to start from, but the graph has {len(graph.outputs)} outputs "
                  f"({', '.join(graph.outputs)}) and no \"loss\"; name one with \"loss\" or run forward only "
                  "(--no-backward)")


def run(graph, inputs=None, *, backward=True, seed=None, per_use=False) -> Run:
    with collector_paused():
        return _run(graph, inputs, backward, seed, per_use)


def _run(graph, inputs, backward, seed, per_use) -> Run:
    plan = plan_of(graph)
    vals = feed(graph, plan, inputs or {})
    ctxs = run_forward(plan, vals)
    values = SlotView(plan, vals)
    if not backward:
        return Run(graph, values, {}, None)
    loss = loss_name(graph)
    flow = flow_of(plan, vals)
    seeded = plan.slots[loss]
    grads = [None] * len(vals)
    grads[seeded] = seed_gradient(vals[seeded], loss, seed)
    use_grads = {}
    if per_use:
        uses = {}
        backpropagate(flow.backward_steps, ctxs, vals, grads, uses)
        use_grads = {(plan.steps[k].node, pos): g for (k, pos), g in uses.items()}
    else:
        run_backward(flow, ctxs, vals, grads, seeded)
    return Run(graph, values, SlotView(plan, grads, flow.requires, vals), loss, use_grads)


def run_forward(plan: Plan, vals: list) -> list:
    """Forward through the interpreter, or through compiled code once interpreting has cost about what
    compiling would."""
    if plan.compiled_forward is None and compiled.worth_compiling(plan.interpreted, len(plan.steps),
                                                                  compiled.FORWARD_SECONDS_PER_STEP):
        plan.compiled_forward = compile_or_fail(compiled.compile_forward, plan.steps)
    start = 0
    ctxs = [None] * len(plan.steps)
    if plan.compiled_forward:
        try:
            plan.compiled_forward(vals, ctxs)
            return ctxs
        except Exception:  # the interpreter takes over at the failing step (the last to store its context)
            start = max((k for k, ctx in enumerate(ctxs) if ctx is not None), default=0)
    began = perf_counter()
    ctxs[start:] = forward(plan.steps[start:], vals)
    plan.interpreted += perf_counter() - began
    return ctxs


def run_backward(flow: Flow, ctxs: list, vals: list, grads: list, seeded: int) -> None:
    if flow.compiled_backward is None and compiled.worth_compiling(flow.interpreted, len(flow.backward_steps),
                                                                   compiled.BACKWARD_SECONDS_PER_STEP):
        flow.compiled_backward = compile_or_fail(compiled.compile_backward, flow.backward_steps, seeded)
    if flow.compiled_backward:
        seed = grads[seeded]
        try:
            return flow.compiled_backward(vals, grads, ctxs)
        except Exception:  # start again in the interpreter, which names the failing node
            grads[:] = [None] * len(grads)
            grads[seeded] = seed
    began = perf_counter()
    backpropagate(flow.backward_steps, ctxs, vals, grads)
    flow.interpreted += perf_counter() - began


def compile_or_fail(compile_, *args):
    """Compiled code, or compiled.FAILED where compiling failed (out of memory, say): the plan stays interpreted."""
    try:
        return compile_(*args)
    except Exception:
        return compiled.FAILED


def feed(graph, plan, inputs: dict) -> list:
    for name in inputs:
        if name not in graph.leaves:
            raise CgError(f"cannot set {name!r}: not an input, param or constant of the graph"
                          f"{did_you_mean(name, graph.leaves)}")
    vals = [None] * len(plan.names)
    for slot, leaf in zip(plan.leaf_slots, graph.leaves.values()):
        value = leaf.value
        if type(value) is not np.ndarray or inputs and leaf.name in inputs:
            value = leaf_value(leaf, inputs)
        vals[slot] = value
    return vals


def leaf_value(leaf, inputs: dict) -> np.ndarray:
    """The value given for a leaf, else its own, checked against its declared dtype and shape."""
    name = leaf.name
    value = inputs.get(name, leaf.value)
    if value is None:
        raise CgError(f"input {name!r} has no value; give one (cgtools run --set {name}=… or --inputs "
                      f"FILE.npz, or Graph.run(inputs={{{name!r}: …}}))")
    try:
        return decode_value(value, dtype=leaf.dtype, shape=leaf.shape)
    except CgError as e:
        raise CgError(f"{leaf.kind} {name!r}: {e.detail}") from None


def forward(steps: list[Step], vals: list) -> list:
    """Fill `vals` step by step; returns each step's context for backward."""
    ctxs = []
    keep = ctxs.append
    for fwd, _, ins, outs, place, gather, unary, _ in steps:
        ctx = Context()
        try:
            out = fwd(ctx, gather(vals)) if unary else fwd(ctx, *gather(vals))
        except CgError as e:
            raise e.located(where=place) from None
        except Exception as e:  # numpy's own complaint, put in the graph's terms
            shapes = ", ".join("∅" if vals[i] is None else f"{vals[i].dtype}{list(vals[i].shape)}" for i in ins)
            raise CgError(f"forward failed on inputs {shapes}: {e}", where=place) from None
        if type(out) is np.ndarray:
            vals[outs[0]] = out
        else:
            for i, value in zip(outs, out if type(out) is tuple else (out,)):
                vals[i] = np.asarray(value)
        keep(ctx)
    return ctxs


def flow_of(plan: Plan, vals: list) -> Flow:
    """Gradients flow into float inputs and params and into float tensors computed from them. That depends
    only on dtypes, so it is worked out once per combination of leaf dtypes and kept on the plan."""
    key = tuple([vals[i].dtype for i in plan.leaf_slots])
    flow = plan.flows.get(key)
    if flow is None:
        requires = [False] * len(vals)
        for i in plan.leaf_slots:
            requires[i] = i not in plan.constant_slots and vals[i].dtype.kind == "f"
        steps = []
        for k, step in enumerate(plan.steps):
            needs = tuple(requires[i] for i in step.ins)
            if True in needs:
                wanted = tuple((pos, i) for pos, i in enumerate(step.ins) if requires[i])
                steps.append((k, step.backward, wanted, step.outs, needs, step.place))
                for i in step.outs:
                    requires[i] = vals[i] is not None and vals[i].dtype.kind == "f"
        flow = plan.flows[key] = Flow(requires, steps[::-1])
    return flow


def seed_gradient(value, loss, seed):
    if seed is None:
        if value.size != 1:
            raise LossNotScalar(f"the loss {loss!r} has shape {list(value.shape)}, not a scalar; sum it into one "
                          "(ReduceSum), give a seed gradient of that shape (Graph.run(seed=…)) or run forward only "
                          "(--no-backward)")
        return np.ones_like(value)
    try:
        return np.broadcast_to(np.asarray(seed, value.dtype), value.shape)
    except ValueError:
        raise CgError(f"seed gradient of shape {list(np.shape(seed))} does not fit the loss {loss!r} "
                      f"of shape {list(value.shape)}") from None


def backpropagate(backward_steps: list[tuple], ctxs: list, vals: list, grads: list, uses: dict | None = None) -> None:
    """Fill `grads` from the seeded loss back; `uses`, when given, keeps each (step, input position)'s share."""
    for k, bwd, wanted, outs, needs, place in backward_steps:
        ctx = ctxs[k]
        ctx.needs_grad = needs
        if len(outs) == 1:
            g = grads[outs[0]]
            if g is None:
                continue
            in_grads = bwd(ctx, g)
        else:
            gs = [grads[i] for i in outs]
            if all(g is None for g in gs):
                continue
            in_grads = bwd(ctx, *gs)
        if type(in_grads) is np.ndarray:
            in_grads = (in_grads,)
        if len(in_grads) < len(needs):
            raise CgError(f"backward returned {len(in_grads)} gradients for {len(needs)} inputs; return one per "
                          "input, None where an input has none", where=place)
        for pos, i in wanted:
            g = in_grads[pos]
            if g is None:
                continue
            x = vals[i]
            if type(g) is not np.ndarray or g.shape != x.shape or g.dtype is not x.dtype:
                g = fitted(g, x, place)
            if uses is not None:
                uses[k, pos] = g
            prev = grads[i]
            grads[i] = g if prev is None else prev + g


def fitted(grad, x: np.ndarray, place: str = "") -> np.ndarray:
    """A gradient made an array of its input's shape (summing what broadcasting stretched) and dtype."""
    grad = np.asarray(grad)
    if grad.shape != x.shape:
        grad = unbroadcast(grad, x.shape, place)
    return grad if grad.dtype == x.dtype else grad.astype(x.dtype)


def unbroadcast(grad: np.ndarray, shape: tuple, place: str = "") -> np.ndarray:
    """Sum a gradient over the axes broadcasting added or stretched, so it has the input's shape."""
    extra = grad.ndim - len(shape)
    try:
        if extra < 0:
            return np.broadcast_to(grad, shape)
        stretched = tuple(extra + a for a, n in enumerate(shape) if n == 1 and grad.shape[extra + a] != 1)
        return np.add.reduce(grad, axis=tuple(range(extra)) + stretched, keepdims=True).reshape(shape)
    except ValueError:
        raise CgError(f"backward gave a gradient of shape {list(grad.shape)} for an input of shape "
                      f"{list(shape)}", where=place) from None
