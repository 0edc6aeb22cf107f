"""NaN and infinities: which ones a mask makes on purpose, and which node made the first unwanted one.

A causal mask writes −inf where attention must not look (`scores.masked_fill(~mask, -inf)`) and Softmax turns
it into exact zeros: those infinities are the model working, not failing. The rule, written once here
(deliberate_infinities) and used by the run's note, `--check-numerics` and the drawings' alerts: a tensor's
infinities are deliberate when they are all −inf (no NaN, no +inf) and every reader of the tensor absorbs them
(MASK_READERS), or carries them (MASK_CARRIERS) into tensors that are finite (Where or Gather left the −inf out)
or deliberate in their turn; never when they reach a graph output or the loss.

`--check-numerics` (interpreter.run(check_numerics=True)) scans what a run computed, whichever path computed
it: forward, the first node whose output holds an unwanted NaN or infinity (its inputs, computed before it,
were then finite or deliberate); backward, the first step in backward order passing back such a gradient to
one of its inputs while the gradient it received was finite."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cgtools.backward import backpropagate
from cgtools.errors import CgError
from cgtools.values import is_float

# ops that turn −inf into something finite (or into a −inf of their own, judged in its turn)
MASK_READERS = frozenset({"Softmax", "LogSoftmax", "ReduceMax", "Max", "ReduceLogSumExp"})
# ops that pass a −inf on to their outputs unchanged (or make a NaN or +inf of it, which is reported)
MASK_CARRIERS = frozenset({"Where", "Add", "Sub", "Mul", "Div", "Identity", "Cast", "Reshape", "Transpose",
                           "Expand", "Unsqueeze", "Squeeze", "Flatten", "Slice", "Concat", "Gather", "Tile"})


def non_finite(array) -> bool:
    return array is not None and (array.dtype.kind == "c" or is_float(array.dtype)) and not np.isfinite(array).all()


def only_minus_inf(array) -> bool:
    """Whether the non-finite elements of a (float) array are all −inf."""
    return array.dtype.kind == "f" and not np.isnan(array).any() and not np.isposinf(array).any()


def deliberate_infinities(graph, values) -> frozenset:
    """The tensors of a run (`values`: name -> array) whose infinities a mask made on purpose: all −inf, read
    at least once, every reader a MASK_READER or a MASK_CARRIER whose outputs are finite (the −inf was selected
    away) or deliberate themselves; never an output or the loss."""
    infinite = {name for name, array in values.items() if non_finite(array)}
    if not infinite:
        return frozenset()
    readers: dict[str, list] = {}
    for node in graph.nodes:
        for name in dict.fromkeys(node.inputs):
            readers.setdefault(name, []).append(node)
    ends, deliberate = {*graph.outputs, graph.loss}, set()

    def harmless(name: str) -> bool:
        return name not in infinite or name in deliberate

    def masked(name: str) -> bool:
        return name in infinite and name not in ends and bool(readers.get(name)) and only_minus_inf(values[name]) \
            and all(r.op in MASK_READERS or r.op in MASK_CARRIERS and all(harmless(out) for out in r.outputs if out)
                    for r in readers[name])

    for i in reversed(graph.topological_order()):  # a tensor's readers are decided before it
        deliberate.update(out for out in graph.nodes[i].outputs if masked(out))
    deliberate.update(name for name in graph.leaves if masked(name))
    return frozenset(deliberate)


@dataclass
class Finding:
    """Where the first unwanted NaN or infinity appeared: the node (None for a leaf or the seed gradient),
    the direction, the tensor that went bad (an output, or the input whose gradient did) and its array,
    what the node received (its inputs' values) and, backward, the gradients of its outputs it started from."""

    direction: str  # "forward" or "backward"
    place: str  # "nodes[3] (Log 'lx')", "input 'x'", "the upstream gradient of 'y'"
    tensor: str
    array: np.ndarray
    op: str | None = None
    attrs: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # (name, value)
    upstream: list = field(default_factory=list)  # (output name, its gradient)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in (("NaN", np.isnan(self.array).sum()),
                                                          ("+inf", np.isposinf(self.array).sum()),
                                                          ("-inf", np.isneginf(self.array).sum())) if n)
        counts = f"({counts} of {self.array.size})"
        if not self.op:  # a leaf or the seed gradient
            return f"{self.direction}: {self.place} holds it {counts}, before any node ran"
        if self.direction == "forward":
            return f"forward: {self.place} made output {self.tensor!r} non-finite {counts} from finite inputs"
        return (f"backward: {self.place} made the gradient of input {self.tensor!r} non-finite {counts} from a "
                "finite upstream gradient")


class NumericsError(CgError):
    """A run checked for NaN and infinities found one; `finding` says where (a Finding)."""

    def __init__(self, message: str, finding: Finding | None = None, *, file=None, where=None):
        super().__init__(message, file=file, where=where)
        self.finding = finding

    def located(self, *, file=None, where=None) -> NumericsError:
        return NumericsError(self.detail, self.finding, file=self.file or file, where=self.where or where)


def refuse(finding: Finding | None) -> None:
    if finding is not None:
        raise NumericsError(f"the first NaN or infinity: {finding.summary()}", finding)


def check_forward(graph, plan, vals: list) -> None:
    """Raise NumericsError at the first leaf or node (in plan order) whose value holds an unwanted NaN or
    infinity; the steps after a step that never ran (forward failed there) are not looked at."""
    names = plan.names
    masks = deliberate_infinities(graph, {names[i]: a for i, a in enumerate(vals) if i and a is not None})

    def unwanted(slot: int) -> bool:
        return non_finite(vals[slot]) and names[slot] not in masks

    for slot, leaf in zip(plan.leaf_slots, graph.leaves.values()):
        if unwanted(slot):
            refuse(Finding("forward", f"{leaf.kind} {leaf.name!r}", leaf.name, vals[slot]))
    order = graph.topological_order()
    for k, step in enumerate(plan.steps):
        if any(vals[slot] is None for slot in step.outs[:1]):
            return
        bad = next((slot for slot in step.outs if unwanted(slot)), None)
        if bad is not None:
            node = graph.nodes[order[k]]
            refuse(Finding("forward", step.place, names[bad], vals[bad], node.op, dict(node.attrs),
                           [(names[i], vals[i]) for i in step.ins if i]))


def check_backward(graph, plan, flow, ctxs: list, vals: list, grads: list, seeded: int, uses=None) -> None:
    """Raise NumericsError at the first backward step passing back an unwanted NaN or infinity from a finite
    upstream gradient. What each step passed back is in `uses` ((step, input position) -> gradient) when the
    run kept it; else, only when some gradient is not finite, backward runs again keeping it."""
    names = plan.names
    if non_finite(grads[seeded]):
        refuse(Finding("backward", f"the upstream gradient of {names[seeded]!r}", f"∂{names[seeded]}",
                       grads[seeded]))
    if uses is None:
        if not any(non_finite(g) for g in grads):
            return
        uses, fresh = {}, [None] * len(grads)
        fresh[seeded] = grads[seeded]
        backpropagate(flow.backward_steps, ctxs, vals, fresh, uses)
    order = graph.topological_order()
    for step in flow.backward_steps:
        bad = next((pos for pos, _ in step.wanted if non_finite(uses.get((step.index, pos)))), None)
        if bad is not None:
            node, ins = graph.nodes[order[step.index]], plan.steps[step.index].ins
            refuse(Finding("backward", step.place, names[ins[bad]], uses[step.index, bad], node.op,
                           dict(node.attrs), [(names[i], vals[i]) for i in ins if i],
                           [(names[o], grads[o]) for o in step.outs if grads[o] is not None]))
