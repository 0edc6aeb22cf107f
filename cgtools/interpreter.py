"""The numpy interpreter: compile a graph once into a flat plan, then run it forward and backward.

Tensors live in a list indexed by slot; slot 0 is always None and stands for an omitted optional input.
Backward walks the plan in reverse, reduces broadcast gradients to their input's shape and adds up the
gradients a tensor receives from each of its consumers (the multivariable chain rule).
The loops run a graph's first runs (and every run that keeps per-use gradients); a plan run often enough,
as its CompilePolicy says, goes through the same calls as straight-line Python (compiled.py), and back to
the loops on an error. Backward itself is backward.py's, shared with compiled code and traced tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from time import perf_counter
from typing import NamedTuple

import numpy as np

from cgtools import compiled, numerics
from cgtools.backward import BackwardStep, accumulate, backpropagate, described, failure_words, seed_gradient
from cgtools.compiled import COMPILE_WHEN_WORTH_IT, CompilePolicy
from cgtools.errors import CgError, did_you_mean, node_place
from cgtools.memory import collector_paused, keep_freed_memory
from cgtools.ops import Context, get_op
from cgtools.ops.base import bound_forward
from cgtools.runs import Run, SlotView
from cgtools.threads import blas_threads
from cgtools.values import CONTAINERS, carries_gradient, differentiable, holds_tensor
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
    policy: CompilePolicy = COMPILE_WHEN_WORTH_IT
    flows: dict = field(default_factory=dict)  # leaf dtypes -> Flow
    interpreted: float = 0.0  # seconds spent interpreting forward
    compiled_forward: object = None


@dataclass
class Flow:
    """Which tensors get a gradient, and which steps pass one back: fixed by the leaves' dtypes."""

    requires: list[bool]  # per slot
    backward_steps: list[BackwardStep]  # in reverse order
    interpreted: float = 0.0  # seconds spent interpreting backward
    compiled_backward: object = None


def compile_plan(graph) -> Plan:
    """The graph's topological order, flattened into slot indices."""
    with collector_paused():  # a step's tuples and bound functions hold no cycle; a 100,000-node plan makes a million
        return _compile_plan(graph)


def _compile_plan(graph) -> Plan:
    names = [None, *graph.leaves, *(out for node in graph.nodes for out in node.outputs)]
    slots = {name: i for i, name in enumerate(names) if name is not None}
    slots[""] = 0
    steps, plain = [], {}  # plain: op type -> its forward without attributes, bound once for all such nodes
    for i in graph.topological_order():
        node = graph.nodes[i]
        op = get_op(node.op)
        if node.attrs:
            forward = bound_forward(op, node.attrs)
        else:
            forward = plain.get(node.op) or plain.setdefault(node.op, bound_forward(op, node.attrs))
        ins = tuple(map(slots.__getitem__, node.inputs))
        gather = itemgetter(*ins) if ins else (lambda _: ())
        steps.append(Step(forward, op.backward, ins, tuple(map(slots.__getitem__, node.outputs)),
                          node_place(i, node), gather, len(ins) == 1, node.name))
    leaf_slots = [slots[name] for name in graph.leaves]
    constants = {slots[leaf.name] for leaf in graph.leaves_of("constant")}
    return Plan(slots, names, steps, leaf_slots, constants)


def plan_of(graph, policy: CompilePolicy | None = None) -> Plan:
    """The graph's plan, made on its first run and kept on the graph; `policy`, when given, is from now on
    when the plan is compiled."""
    if graph.plan is None:
        graph.plan = compile_plan(graph)
    if policy is not None:
        graph.plan.policy = policy
    return graph.plan


def loss_name(graph) -> str:
    if graph.loss:
        return graph.loss
    if len(graph.outputs) == 1:
        return graph.outputs[0]
    raise CgError(f"backward needs one scalar to start from, but the graph has {len(graph.outputs)} outputs "
                  f"({', '.join(graph.outputs)}) and no \"loss\"; name one with \"loss\" or run forward only "
                  "(--no-backward)")


def run(graph, inputs=None, *, backward=True, seed=None, per_use=False, compiling: CompilePolicy | None = None,
        loss: str | None = None, check_numerics: bool = False, seeds: dict | None = None) -> Run:
    """With `check_numerics`, a NaN or an infinity no mask made on purpose raises numerics.NumericsError naming
    the node that made it, forward or backward. With `seeds` ({tensor name: upstream gradient}, None for none),
    backward starts from all those tensors at once instead of from the loss (a subgraph's outputs)."""
    keep_freed_memory()
    with collector_paused(), blas_threads():
        return _run(graph, inputs, backward, seed, per_use, plan_of(graph, compiling), loss, check_numerics, seeds)


def _run(graph, inputs, backward, seed, per_use, plan, loss=None, check=False, seeds=None) -> Run:
    vals = feed(graph, plan, inputs or {})
    ctxs = checked_forward(graph, plan, vals) if check else run_forward(plan, vals)
    values = SlotView(plan.slots, plan.names, vals)
    if not backward:
        return Run(graph, values, {}, None)
    if seeds is None:
        loss = loss or loss_name(graph)
        value = vals[seeded_slot(plan, loss)]
        tensor = holds_tensor(value) and differentiable(value.dtype)  # an int, bool or float8 loss: none
        seeds = {loss: seed_gradient(value, loss, seed)} if tensor else {}
    flow = flow_of(plan, vals)
    grads = [None] * len(vals)
    for name, grad in seeds.items():
        slot = seeded_slot(plan, name)
        if grad is not None and flow.requires[slot]:
            accumulate(grads, slot, grad, vals[slot], f"the upstream gradient of {name!r}")
    uses = {} if per_use else None
    if per_use:
        backpropagate(flow.backward_steps, ctxs, vals, grads, uses)
    else:
        run_backward(plan.policy, flow, ctxs, vals, grads)
    if check and loss:
        numerics.check_backward(graph, plan, flow, ctxs, vals, grads, plan.slots[loss], uses)
    use_grads = {(plan.steps[k].node, pos): g for (k, pos), g in uses.items()} if per_use else {}
    return Run(graph, values, SlotView(plan.slots, plan.names, grads, flow.requires, vals), loss, use_grads)


def run_forward(plan: Plan, vals: list) -> list:
    """Forward through the interpreter, or through compiled code once interpreting has cost about what
    compiling would."""
    if plan.compiled_forward is None and plan.policy.worth_compiling(plan.interpreted, len(plan.steps),
                                                                     backward=False):
        plan.compiled_forward = compile_or_fail(compiled.compile_forward, plan.steps, plan.policy)
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


def checked_forward(graph, plan: Plan, vals: list) -> list:
    """run_forward, then numerics.check_forward; a forward that fails after a NaN or an infinity appeared is
    reported as that NaN or infinity, most likely the cause."""
    try:
        ctxs = run_forward(plan, vals)
    except CgError:
        numerics.check_forward(graph, plan, vals)
        raise
    numerics.check_forward(graph, plan, vals)
    return ctxs


def seeded_slot(plan: Plan, name: str) -> int:
    """The slot of a tensor backward starts from."""
    if not plan.slots.get(name):
        raise CgError(f"cannot start backward from {name!r}: no tensor of the graph has that name"
                      f"{did_you_mean(name, plan.names[1:])}")
    return plan.slots[name]


def run_backward(policy: CompilePolicy, flow: Flow, ctxs: list, vals: list, grads: list) -> None:
    if flow.compiled_backward is None and policy.worth_compiling(flow.interpreted, len(flow.backward_steps),
                                                                 backward=True):
        flow.compiled_backward = compile_or_fail(compiled.compile_backward, flow.backward_steps, policy)
    if flow.compiled_backward:
        seeded = grads.copy()
        try:
            return flow.compiled_backward(vals, grads, ctxs)
        except Exception:  # start again in the interpreter, which names the failing node
            grads[:] = seeded
    began = perf_counter()
    backpropagate(flow.backward_steps, ctxs, vals, grads)
    flow.interpreted += perf_counter() - began


def compile_or_fail(compile_, *args):
    """Compiled code, or compiled.FAILED where compiling failed (out of memory, say): the plan stays interpreted."""
    try:
        return compile_(*args)
    except Exception:
        return compiled.FAILED


def refuse_unknown_leaves(graph, names) -> None:
    """A CgError naming the first of `names` (values given by name) that is no leaf of the graph."""
    for name in names:
        if name not in graph.leaves:
            raise CgError(f"cannot set {name!r}: not an input, param or constant of the graph"
                          f"{did_you_mean(name, graph.leaves)}")


def feed(graph, plan, inputs: dict) -> list:
    refuse_unknown_leaves(graph, inputs)
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
    if leaf.dtype in CONTAINERS or type(value) is list and value and all(type(v) is np.ndarray for v in value):
        return value  # a sequence or an optional, passed as it is
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
            if type(out) is np.ndarray and len(outs) == 1:
                vals[outs[0]] = out
            else:
                store_outputs(out, outs, vals)
        except CgError as e:
            raise e.located(where=place) from None
        except Exception as e:  # numpy's own complaint (a MemoryError says how much it asked for), in graph terms
            raise CgError(f"forward failed on inputs {described(vals, ins)}: {failure_words(e)}", where=place) from None
        keep(ctx)
    return ctxs


def store_outputs(out, outs: tuple, vals: list) -> None:
    """The values of a step that made several outputs (or one that is not an array) into their slots; an optional
    output made lazily (ops.base.Lazy) is computed here, only when the node lists it."""
    made = out if type(out) is tuple else (out,)
    if len(made) < len(outs):
        raise CgError(f"the op made {len(made)} output{'s' * (len(made) != 1)} here, but the node lists {len(outs)}; "
                      "list only the outputs it makes (with these attributes and inputs)")
    for i, value in zip(outs, made):
        vals[i] = np.asarray(value) if holds_tensor(value) else value  # sequences and optionals as they are


def flow_of(plan: Plan, vals: list) -> Flow:
    """Gradients flow into float inputs and params and into float tensors computed from them (float16, bfloat16,
    float32 and float64: values.differentiable; float8 and narrower are storage formats). That depends
    only on dtypes, so it is worked out once per combination of leaf dtypes and kept on the plan."""
    key = tuple([vals[i].dtype if holds_tensor(vals[i]) else carries_gradient(vals[i]) for i in plan.leaf_slots])
    flow = plan.flows.get(key)
    if flow is None:
        requires = [False] * len(vals)
        for i in plan.leaf_slots:
            requires[i] = i not in plan.constant_slots and carries_gradient(vals[i])
        steps, unary_needs = [], (True,)
        for k, step in enumerate(plan.steps):
            ins = step.ins
            if step.unary:
                if not requires[ins[0]]:
                    continue
                needs, wanted = unary_needs, ((0, ins[0]),)
            else:
                needs = tuple([requires[i] for i in ins])
                if True not in needs:
                    continue
                wanted = tuple([(pos, i) for pos, i in enumerate(ins) if requires[i]])
            steps.append(BackwardStep(k, step.backward, wanted, step.outs, needs, step.place, ins))
            for i in step.outs:
                value = vals[i]  # carries_gradient, without its call for the common case: an array
                requires[i] = differentiable(value.dtype) if type(value) is np.ndarray else carries_gradient(value)
        flow = plan.flows[key] = Flow(requires, steps[::-1])
    return flow
