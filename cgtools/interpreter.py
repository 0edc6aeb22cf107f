"""The numpy interpreter: compile a graph once into a flat plan, then run it forward and backward.

Tensors live in a list indexed by slot; slot 0 is always None and stands for an omitted optional input.
Backward walks the plan in reverse, reduces broadcast gradients to their input's shape and adds up the
gradients a tensor receives from each of its consumers (the multivariable chain rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from cgtools.errors import CgError, did_you_mean
from cgtools.ops import Context, get_op
from cgtools.schema import node_place


@dataclass(frozen=True)
class Step:
    forward: object
    backward: object
    ins: tuple[int, ...]
    outs: tuple[int, ...]
    attrs: dict
    place: str


@dataclass(frozen=True)
class Plan:
    slots: dict[str, int]
    names: list
    steps: list[Step]


@dataclass
class Run:
    """What a run computed: `values` and `grads` map tensor names to arrays (no entry: no gradient)."""

    graph: object
    values: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    loss: str | None

    def to_networkx(self):
        return self.graph.to_networkx(self)


def compile_plan(graph) -> Plan:
    """Topological order from networkx (file order among independent nodes), flattened into slot indices."""
    names = [None, *graph.leaves, *(out for node in graph.nodes for out in node.outputs)]
    slots = {name: i for i, name in enumerate(names) if name is not None}
    slots[""] = 0
    G = graph.to_networkx()
    position = {node.name: i for i, node in enumerate(graph.nodes)}
    order = [position[key] for key in nx.lexicographical_topological_sort(G, key=lambda k: position.get(k, -1))
             if key in position]
    steps = []
    for i in order:
        node = graph.nodes[i]
        op = get_op(node.op)
        steps.append(Step(op.forward, op.backward, tuple(slots[t] for t in node.inputs),
                          tuple(slots[t] for t in node.outputs), node.attrs, node_place(i, node)))
    return Plan(slots, names, steps)


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
                  f"({', '.join(graph.outputs)}) and no \"loss\"; name one with \"loss\" or run forward only")


def run(graph, inputs=None, *, backward=True, seed=None) -> Run:
    plan = plan_of(graph)
    vals = feed(graph, plan, inputs or {})
    requires = [False] * len(vals)  # does this tensor get a gradient? Constants and integers do not.
    for name, leaf in graph.leaves.items():
        slot = plan.slots[name]
        requires[slot] = leaf.kind != "constant" and vals[slot].dtype.kind == "f"
    ctxs = forward(plan, vals, requires)
    grads = [None] * len(vals)
    loss = None
    if backward:
        loss = loss_name(graph)
        seed_gradient(vals, grads, plan.slots[loss], loss, seed)
        backpropagate(plan, ctxs, vals, grads)
    names = plan.names
    values = {names[i]: v for i, v in enumerate(vals) if i}
    out_grads = {}
    if backward:
        for i, need in enumerate(requires):
            if need:
                g = grads[i]
                out_grads[names[i]] = np.zeros_like(vals[i]) if g is None else g
    return Run(graph, values, out_grads, loss)


def feed(graph, plan, inputs: dict) -> list:
    for name in inputs:
        if name not in graph.leaves:
            raise CgError(f"cannot set {name!r}: not an input, param or constant of the graph"
                          f"{did_you_mean(name, graph.leaves)}")
    vals = [None] * len(plan.names)
    for name, leaf in graph.leaves.items():
        value = inputs.get(name, leaf.value)
        if value is None:
            raise CgError(f"input {name!r} has no value; give one (cgtools run --set {name}=…, "
                          f"or Graph.run(inputs={{{name!r}: …}}))")
        if not isinstance(value, np.ndarray):
            value = np.asarray(value, dtype=leaf.dtype or (None if isinstance(value, np.generic) else np.float64))
        vals[plan.slots[name]] = value
    return vals


def forward(plan: Plan, vals: list, requires: list) -> list:
    ctxs = []
    for step in plan.steps:
        ctx = Context()
        ctx.needs_grad = needs = tuple([requires[i] for i in step.ins])
        args = [vals[i] for i in step.ins]
        try:
            out = step.forward(ctx, *args, **step.attrs)
        except CgError as e:
            raise e.located(where=step.place) from None
        except Exception as e:  # numpy's own complaint, put in the graph's terms
            shapes = ", ".join("∅" if a is None else f"{a.dtype}{list(a.shape)}" for a in args)
            raise CgError(f"forward failed on inputs {shapes}: {e}", where=step.place) from None
        outs = out if type(out) is tuple else (out,)
        grad_flows = any(needs)
        for i, value in zip(step.outs, outs):
            if type(value) is not np.ndarray:
                value = np.asarray(value)
            vals[i] = value
            requires[i] = grad_flows and value.dtype.kind == "f"
        ctxs.append(ctx)
    return ctxs


def seed_gradient(vals, grads, slot, loss, seed):
    value = vals[slot]
    if seed is None:
        if value.size != 1:
            raise CgError(f"the loss {loss!r} has shape {list(value.shape)}, not a scalar; sum it into one "
                          "or give a seed gradient of that shape")
        grads[slot] = np.ones_like(value)
    else:
        try:
            grads[slot] = np.broadcast_to(np.asarray(seed, value.dtype), value.shape)
        except ValueError:
            raise CgError(f"seed gradient of shape {list(np.shape(seed))} does not fit the loss {loss!r} "
                          f"of shape {list(value.shape)}") from None


def backpropagate(plan: Plan, ctxs: list, vals: list, grads: list) -> None:
    for step, ctx in zip(reversed(plan.steps), reversed(ctxs)):
        needs = ctx.needs_grad
        if not any(needs):
            continue
        outs = step.outs
        if len(outs) == 1:
            g = grads[outs[0]]
            if g is None:
                continue
            in_grads = step.backward(ctx, g)
        else:
            gs = [grads[i] for i in outs]
            if all(g is None for g in gs):
                continue
            in_grads = step.backward(ctx, *gs)
        if type(in_grads) is np.ndarray:
            in_grads = (in_grads,)
        if len(in_grads) < len(needs):
            raise CgError(f"backward returned {len(in_grads)} gradients for {len(needs)} inputs", where=step.place)
        for i, g, need in zip(step.ins, in_grads, needs):
            if not need or g is None:
                continue
            x = vals[i]
            if type(g) is not np.ndarray:
                g = np.asarray(g)
            if g.shape != x.shape:
                g = unbroadcast(g, x.shape, step.place)
            if g.dtype != x.dtype:
                g = g.astype(x.dtype)
            prev = grads[i]
            grads[i] = g if prev is None else prev + g


def unbroadcast(grad: np.ndarray, shape: tuple, place: str = "") -> np.ndarray:
    """Sum a gradient over the axes broadcasting added or stretched, so it has the input's shape."""
    extra = grad.ndim - len(shape)
    try:
        if extra < 0:
            return np.broadcast_to(grad, shape)
        stretched = tuple(extra + a for a, n in enumerate(shape) if n == 1 and grad.shape[extra + a] != 1)
        return grad.sum(axis=tuple(range(extra)) + stretched, keepdims=True).reshape(shape)
    except ValueError:
        raise CgError(f"backward gave a gradient of shape {list(grad.shape)} for an input of shape "
                      f"{list(shape)}", where=place) from None
