"""Control flow: If, Loop and Scan, whose bodies are subgraphs held as graph attributes (ops.base.Subgraph).

A body is run by its own Graph's interpreter. The tensors of the enclosing graph a body reads (its `outer`
inputs) are listed by the node after its own inputs, so they reach the op as values like any other input.

Backward replays the body's runs last to first, each from the inputs forward kept for it: the body's forward is
recomputed (the simplest correct choice: no body keeps its contexts alive between passes), then its backward
starts from the gradients of all its outputs at once (Graph.run's `seeds`). What an iteration passes back to
its loop-carried inputs is the next one back's upstream gradient; the enclosing graph's tensors add up theirs."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.gradients import ElementGrads
from cgtools.ops.base import Operation, Subgraph, register_op


def input_names(body) -> list[str]:
    return [leaf.name for leaf in body.leaves_of("input")]


def body_feeds(body, values: dict) -> dict:
    """Of `values`, the body's inputs that are given."""
    wanted = set(input_names(body))
    return {k: v for k, v in values.items() if v is not None and k in wanted}


def run_body(body, feeds: dict) -> list:
    """The body's outputs, in order, run forward on `feeds` (from body_feeds)."""
    run = body.run(feeds, backward=False)
    return [run.values[name] for name in body.outputs]


def replay(body, feeds: dict, out_grads) -> dict:
    """The gradients of the body's inputs by name (absent: none), its run on `feeds` recomputed and backward
    started from its outputs' gradients `out_grads` (None: none)."""
    seeds = {}
    for name, grad in zip(body.outputs, out_grads):
        if grad is not None:  # one tensor listed twice as an output gets both gradients
            seeds[name] = grad if seeds.get(name) is None else seeds[name] + grad
    return dict(body.run(feeds, seeds=seeds).grads) if seeds else {}


def gathered(got: dict, names) -> ElementGrads:
    """The gradients of `names` in one replay, added up over replays as ElementGrads add."""
    return ElementGrads(got.get(name) for name in names)


def outer_values(bodies, values) -> dict:
    """The enclosing graph's tensors the bodies read, by name: the node lists them last, in this order."""
    names = list(dict.fromkeys(name for body in bodies for name in body.outer))
    return dict(zip(names, values[len(values) - len(names):])) if names else {}


def own_inputs(body) -> list[str]:
    """The body's own inputs (iteration number, condition, states …), without its outer ones."""
    return [name for name in input_names(body) if name not in body.outer]


@register_op("If")
class If(Operation):
    """then_branch's outputs when cond is true, else_branch's; a branch reads the enclosing graph's tensors"""

    symbol = "if"
    outputs = ("outputs…",)
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, cond, *outer, then_branch: Subgraph, else_branch: Subgraph):
        taken = then_branch if bool(np.asarray(cond).reshape(-1)[0]) else else_branch
        values = outer_values((then_branch, else_branch), outer)
        feeds = body_feeds(taken, values)
        ctx.save(taken, feeds, list(values))
        return tuple(run_body(taken, feeds))

    @staticmethod
    def backward(ctx, *grads):
        taken, feeds, names = ctx
        return (None, *gathered(replay(taken, feeds, grads), names))


@register_op("Loop")
class Loop(Operation):
    """body run while the trip count M and the condition allow: final loop-carried values, then each scan output
    stacked over the iterations"""

    symbol = "loop"
    outputs = ("outputs…",)
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, M=None, cond=None, *values, body: Subgraph):
        outer = outer_values((body,), values)
        names = own_inputs(body)  # iteration number, condition, loop-carried values
        state = list(values[:len(names) - 2])
        limit = None if M is None else int(np.asarray(M).reshape(-1)[0])
        going = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
        scans, i, kept_feeds = [[] for _ in body.outputs[1 + len(state):]], 0, []
        while going and (limit is None or i < limit):
            feeds = body_feeds(body, dict(zip(names, [np.array(i, np.int64), np.asarray(going), *state]), **outer))
            kept_feeds.append(feeds)
            out = run_body(body, feeds)
            going = bool(np.asarray(out[0]).reshape(-1)[0]) if cond is not None else True  # else ignored
            state = out[1:1 + len(state)]
            for kept, value in zip(scans, out[1 + len(state):]):
                kept.append(value)
            i += 1
        ctx.save(body, kept_feeds, names[2:], list(outer))
        return (*state, *(stacked(kept) for kept in scans))

    @staticmethod
    def backward(ctx, *grads):
        body, kept_feeds, state_names, outer_names = ctx
        carried, scans = list(grads[:len(state_names)]), grads[len(state_names):]
        outer = ElementGrads([None] * len(outer_names))
        for i in reversed(range(len(kept_feeds))):
            got = replay(body, kept_feeds[i], [None, *carried, *(None if g is None else g[i] for g in scans)])
            carried = [got.get(name) for name in state_names]
            outer = outer + gathered(got, outer_names)
        return (None, None, *carried, *outer)


def stacked(values: list):
    return np.stack(values) if values else np.zeros((0,), np.float32)


@register_op("Scan")
class Scan(Operation):
    """body run on each slice of the scan inputs along their axes, carrying states: final states, then the
    scan outputs stacked along their axes (opset 8: sequence_lens first, and a batch axis before all)"""

    symbol = "scan"
    outputs = ("outputs…",)
    keeps_dtypes = True

    @staticmethod
    def forward(ctx, first=None, *values, body: Subgraph, num_scan_inputs: int, directions: list[int] = (),
                scan_input_directions: list[int] = (), scan_output_directions: list[int] = (),
                scan_input_axes: list[int] = (), scan_output_axes: list[int] = ()):
        outer = outer_values((body,), (first, *values))
        names = own_inputs(body)
        given = [first, *values][:len((first, *values)) - len(outer)]
        scan = Scanner(body, names, outer, len(names) - num_scan_inputs, list(directions or scan_input_directions),
                       list(scan_output_directions), list(scan_input_axes), list(scan_output_axes))
        ctx.save(scan, len(given) != len(names))
        if len(given) == len(names):
            return tuple(scan(given))
        if first is not None:  # opset 8's sequence_lens: every sequence its full length only
            lengths = {int(v) for v in np.ravel(first)}
            if lengths - {np.shape(given[-1])[1]}:
                raise CgError(f"Scan's sequence_lens {sorted(lengths)}: only full-length sequences are supported")
        per_item = [scan([v[b] for v in given[1:]]) for b in range(np.shape(given[1])[0])]
        return tuple(np.stack(outs) for outs in zip(*per_item))

    @staticmethod
    def backward(ctx, *grads):
        scan, batched = ctx
        if not batched:
            ins, outer = scan.backward(scan.records[0], grads)
            return (*ins, *outer)
        per_item = [scan.backward(record, [None if g is None else g[b] for g in grads])
                    for b, record in enumerate(scan.records)]
        outer = ElementGrads([None] * len(scan.outer))
        for _, item_outer in per_item:
            outer = outer + item_outer
        by_input = zip(*(ins for ins, _ in per_item))
        ins = [None if any(g is None for g in parts) else np.stack(parts) for parts in by_input]
        return (None, *ins, *outer)


class Scanner:
    """One Scan over its states and scan inputs (opset 9 on, without a batch axis)."""

    def __init__(self, body, names, outer, n, in_back, out_back, in_axes, out_axes):
        self.body, self.names, self.outer, self.n = body, names, outer, n
        self.in_back, self.out_back, self.in_axes, self.out_axes = in_back, out_back, in_axes, out_axes
        self.records = []  # per call: each step's feeds, the scan inputs, their axes and directions

    def __call__(self, given: list) -> list:
        n = self.n
        state, scanned = list(given[:n]), [np.asarray(v) for v in given[n:]]
        axes = [a % v.ndim for a, v in zip(self.in_axes or [0] * len(scanned), scanned)]
        backwards = self.in_back or [0] * len(scanned)
        steps = {v.shape[a] for v, a in zip(scanned, axes)}
        if len(steps) != 1:
            raise CgError(f"expected scan inputs of one length along their axes, found lengths {sorted(steps)}")
        count = steps.pop()
        outs, feeds = [[] for _ in self.body.outputs[n:]], []
        for t in range(count):
            slices = [np.take(v, count - 1 - t if back else t, axis=a) for v, a, back in zip(scanned, axes, backwards)]
            feeds.append(body_feeds(self.body, dict(zip(self.names, [*state, *slices]), **self.outer)))
            out = run_body(self.body, feeds[-1])
            state = out[:n]
            for kept, value in zip(outs, out[n:]):
                kept.append(value)
        self.records.append((feeds, scanned, axes, backwards))
        made = [np.stack(kept[::-1] if back else kept, axis=a % (np.ndim(kept[0]) + 1))
                for kept, (a, back) in zip(outs, self.output_axes(len(outs)))]
        return [*state, *made]

    def output_axes(self, count: int) -> list[tuple[int, int]]:
        """Each scan output's (axis, reversed)."""
        return list(zip(self.out_axes or [0] * count, self.out_back or [0] * count))

    def backward(self, record, grads) -> tuple[list, ElementGrads]:
        """The gradients of one call's states and scan inputs, and of the enclosing graph's tensors, from its
        outputs' `grads`: the body replayed from the last step to the first."""
        feeds, scanned, axes, backwards = record
        n, count = self.n, len(feeds)
        carried, scan_grads = list(grads[:n]), grads[n:]
        ins = [np.zeros_like(v) for v in scanned]
        outer = ElementGrads([None] * len(self.outer))
        for t in reversed(range(count)):
            outs = [None if g is None else np.take(g, count - 1 - t if back else t, axis=a % g.ndim)
                    for g, (a, back) in zip(scan_grads, self.output_axes(len(scan_grads)))]
            got = replay(self.body, feeds[t], [*carried, *outs])
            carried = [got.get(name) for name in self.names[:n]]
            for total, name, a, back in zip(ins, self.names[n:], axes, backwards):
                if got.get(name) is not None:
                    where = [slice(None)] * total.ndim
                    where[a] = count - 1 - t if back else t
                    total[tuple(where)] += got[name]
            outer = outer + gathered(got, self.outer)
        return [*carried, *ins], outer
