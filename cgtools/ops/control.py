"""Control flow: If, Loop and Scan, whose bodies are subgraphs held as graph attributes (ops.base.Subgraph).

A body is run by its own Graph's interpreter. The tensors of the enclosing graph a body reads (its `outer`
inputs) are listed by the node after its own inputs, so they reach the op as values like any other input."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, Subgraph, register_op


def input_names(body) -> list[str]:
    return [leaf.name for leaf in body.leaves_of("input")]


def run_body(body, values: dict) -> list:
    """The body's outputs, in order, run forward on `values` (its inputs by name)."""
    wanted = set(input_names(body))
    run = body.run({k: v for k, v in values.items() if v is not None and k in wanted}, backward=False)
    return [run.values[name] for name in body.outputs]


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
        return tuple(run_body(taken, outer_values((then_branch, else_branch), outer)))


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
        scans, i = [[] for _ in body.outputs[1 + len(state):]], 0
        while going and (limit is None or i < limit):
            feeds = dict(zip(names, [np.array(i, np.int64), np.asarray(going), *state]), **outer)
            out = run_body(body, feeds)
            going = bool(np.asarray(out[0]).reshape(-1)[0]) if cond is not None else True  # else ignored
            state = out[1:1 + len(state)]
            for kept, value in zip(scans, out[1 + len(state):]):
                kept.append(value)
            i += 1
        return (*state, *(stacked(kept) for kept in scans))


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
        if len(given) == len(names):
            return tuple(scan(given))
        if first is not None:  # opset 8's sequence_lens: every sequence its full length only
            lengths = {int(v) for v in np.ravel(first)}
            if lengths - {np.shape(given[-1])[1]}:
                raise CgError(f"Scan's sequence_lens {sorted(lengths)}: only full-length sequences are supported")
        per_item = [scan([v[b] for v in given[1:]]) for b in range(np.shape(given[1])[0])]
        return tuple(np.stack(outs) for outs in zip(*per_item))


class Scanner:
    """One Scan over its states and scan inputs (opset 9 on, without a batch axis)."""

    def __init__(self, body, names, outer, n, in_back, out_back, in_axes, out_axes):
        self.body, self.names, self.outer, self.n = body, names, outer, n
        self.in_back, self.out_back, self.in_axes, self.out_axes = in_back, out_back, in_axes, out_axes

    def __call__(self, given: list) -> list:
        n = self.n
        state, scanned = list(given[:n]), [np.asarray(v) for v in given[n:]]
        axes = [a % v.ndim for a, v in zip(self.in_axes or [0] * len(scanned), scanned)]
        backwards = self.in_back or [0] * len(scanned)
        steps = {v.shape[a] for v, a in zip(scanned, axes)}
        if len(steps) != 1:
            raise CgError(f"expected scan inputs of one length along their axes, found lengths {sorted(steps)}")
        count = steps.pop()
        outs = [[] for _ in self.body.outputs[n:]]
        for t in range(count):
            slices = [np.take(v, count - 1 - t if back else t, axis=a) for v, a, back in zip(scanned, axes, backwards)]
            out = run_body(self.body, dict(zip(self.names, [*state, *slices]), **self.outer))
            state = out[:n]
            for kept, value in zip(outs, out[n:]):
                kept.append(value)
        out_axes = self.out_axes or [0] * len(outs)
        out_back = self.out_back or [0] * len(outs)
        made = [np.stack(kept[::-1] if back else kept, axis=a % (np.ndim(kept[0]) + 1))
                for kept, a, back in zip(outs, out_axes, out_back)]
        return [*state, *made]
