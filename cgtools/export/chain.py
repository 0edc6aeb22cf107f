"""The chain rule written on the edges, as the lecture's backward slides write it:

    ∂e/∂d = 2d · ∂e/∂e = 10
    ∂e/∂c = ∂e/∂d · ∂d/∂c = 10 · ∂(c + b)/∂c = 10
    ∂e/∂x = ∂e/∂c · ∂c/∂x = 10a = 30

Each op states its local derivative per input (Operation.local_gradients, beside its backward); here they are
filled in with a node's names and put together with the upstream gradient and the result. A line is a
ChainLine: steps of plain text and Partial fractions, so a TeX writer can typeset ∂e/∂c as a fraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from cgtools.export.labels import SUPERSCRIPT, format_number, format_shape, shorten
from cgtools.ops import get_op

NO_FORMULA = "local gradient"  # what stands in for the formula of an op that states none


class Partial(NamedTuple):
    """∂top/∂bottom; a top or bottom of several terms in parentheses, as ∂(c + b)/∂c."""

    top: str
    bottom: str

    def __str__(self):
        return f"∂{grouped(self.top)}/∂{grouped(self.bottom)}"


def grouped(text: str) -> str:
    return f"({text})" if " " in text or "," in text else text


@dataclass(frozen=True)
class ChainLine:
    """`∂L/∂x = step = step … [shape]`: `steps` are sequences of text and Partials; `share` makes it `+=`,
    one use's share of a shared tensor's gradient; `complete` when it ends in the gradient's value (a
    scalar's), so it can stand in for the plain gradient line."""

    lhs: Partial
    steps: tuple[tuple, ...]
    shape: str = ""
    share: bool = False
    complete: bool = False

    @property
    def text(self) -> str:
        steps = " = ".join("".join(map(str, step)) for step in self.steps)
        return f"{self.lhs} {'+=' if self.share else '='} {steps}" + (f" {self.shape}" if self.shape else "")


@dataclass(frozen=True)
class Use:
    """One node's use of a tensor: the node's output `out`, its local derivative `local` (filled in; None: the
    op states none; "{up}" in it stands for ∂L/∂out), the expression it differentiates (`c + b`, written for
    a local derivative of ±1), the upstream gradient `up` and what this use passes back (`value`)."""

    out: str
    local: str | None
    expression: str | None
    up: object
    value: object
    named: bool = False  # the local derivative starts with a one-letter name (`a`; not `2d`, `cos(x)`, `three`)


def chain_line(loss: str, tensor: str, uses: list[Use], result, precision: int = 4, share: bool = False) -> ChainLine:
    """The chain rule for ∂loss/∂tensor: from the loss's seed `LOCAL · ∂L/∂L = RESULT`; otherwise
    `∂L/∂out · ∂out/∂in = UPVALUE·LOCAL = RESULT`; over several uses the sum of their terms and of their
    numbers. A tensor (not a scalar) gets the formula and its shape, no numbers."""
    lhs, number = Partial(loss, tensor), (lambda v: format_number(np.asarray(v).item(), precision))
    scalar = np.ndim(result) == 0 and all(np.ndim(u.up) == 0 for u in uses)
    if len(uses) > 1:
        terms = [part for k, u in enumerate(uses) for part in ((" + ",) if k else ()) + product(loss, u.out, tensor)]
        steps = [tuple(terms)]
        if scalar and all(u.value is not None for u in uses):
            steps += [(" + ".join(number(u.value) for u in uses),), (number(result),)]
        return ChainLine(lhs, tuple(steps), "" if scalar else format_shape(np.shape(result)), share, scalar)
    (use,) = uses
    seed = use.out == loss
    if use.local is None:
        steps = [(NO_FORMULA, " · ", Partial(loss, loss)) if seed else (Partial(loss, use.out), " · ", NO_FORMULA)]
    else:
        if scalar:
            worked = times(Partial(loss, loss), use, tensor, after=True) if seed else times(number(use.up), use, tensor)
        else:
            worked = applied(Partial(loss, use.out), use, tensor, np.shape(use.up) != np.shape(result))
        steps = [worked] if seed else [product(loss, use.out, tensor), worked]
    if scalar or np.ndim(result) == 0:
        return ChainLine(lhs, (*steps, (number(result),)), "", share, True)
    return ChainLine(lhs, tuple(steps), format_shape(np.shape(result)), share)


def product(loss: str, out: str, tensor: str) -> tuple:
    """The chain rule's product: ∂L/∂out · ∂out/∂in."""
    return Partial(loss, out), " · ", Partial(out, tensor)


def times(up, use: Use, tensor: str, after: bool = False) -> tuple:
    """A scalar's upstream gradient times the local derivative: `10a` (juxtaposed with a formula that starts
    with a name), `10 · 2d`, `10 · ∂(c + b)/∂c`; `after` puts the upstream last, as the seed: `2d · ∂e/∂e`."""
    if use.expression is not None:
        local = Partial(use.expression, tensor)
    elif "{up}" in use.local:
        return with_upstream(use.local, up)
    elif not after and use.named and "×" not in str(up):
        return up, use.local
    else:
        local = wrapped(use.local)
    return (local, " · ", up) if after else (up, " · ", local)


def applied(up: Partial, use: Use, tensor: str, summed: bool) -> tuple:
    """A tensor's gradient from the upstream one: `∂L/∂Y ⊙ (1 − Y²)`, the transposes `Xᵀ·∂L/∂Y`; summed over
    the axes broadcasting added when the input is smaller than the output, `Σ(∂L/∂Y)`."""
    if "{up}" in use.local:
        return with_upstream(use.local, up)
    parts = (up,) if use.expression is not None or use.local == "1" else (up, " ⊙ ", wrapped(use.local))
    return ("Σ(", *parts, ")") if summed else parts


def with_upstream(formula: str, up) -> tuple:
    """A formula holding "{up}" with the upstream gradient put in its place."""
    parts = []
    for k, piece in enumerate(formula.split("{up}")):
        parts += [up] if k else []
        parts += [piece] if piece else []
    return tuple(parts)


def wrapped(formula: str) -> str:
    """In parentheses when a sum or a leading minus would otherwise bind wrongly: (1 − e²), (−1)."""
    depth = 0
    for k, char in enumerate(formula):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth == 0 and char in "+−" and (k == 0 or formula[k - 1:k + 2] == f" {char} "):
            return f"({formula})"
    return formula


class Chains:
    """The chain lines of a run's graph: per edge (a node's use of a tensor) and, for a tensor several nodes
    read, the sum of its uses. `folded` are the constants written in place of their names."""

    def __init__(self, graph, run, folded: dict[str, str], precision: int):
        self.graph, self.run, self.folded, self.precision = graph, run, folded, precision
        self.nodes = {node.name: node for node in graph.nodes}
        self.readers: dict[str, list[tuple[str, int]]] = {}
        for node in graph.nodes:
            for slot, t in enumerate(node.inputs):
                if t:
                    self.readers.setdefault(t, []).append((node.name, slot))

    def edge(self, tensor: str, reader: str, slot: int, share: bool) -> ChainLine | None:
        """The line on the edge into `reader`'s input `slot`: `∂L/∂x += …` for one use of a shared tensor."""
        grads, shares = self.run.grads, self.run.use_grads
        result = shares.get((reader, slot)) if share or tensor not in grads else grads.get(tensor)
        use = self.use(tensor, reader, slot)
        if use is None or result is None:
            return None
        return chain_line(self.run.loss, shorten(tensor), [use], result, self.precision, share)

    def total(self, tensor: str) -> ChainLine | None:
        """The multivariable chain rule on a shared tensor's node: its uses' terms, their shares and the sum."""
        uses = [self.use(tensor, reader, slot) for reader, slot in self.readers.get(tensor, ())]
        result = self.run.grads.get(tensor)
        if result is None or not uses or None in uses:
            return None
        return chain_line(self.run.loss, shorten(tensor), uses, result, self.precision)

    def use(self, tensor: str, reader: str, slot: int) -> Use | None:
        """`reader`'s use of the tensor at `slot`, None where its output has no gradient."""
        node, run = self.nodes[reader], self.run
        outs = [out for out in node.outputs if out and run.grads.get(out) is not None]
        if run.loss is None or not outs:
            return None
        cls = get_op(node.op)
        local = self.local_formula(node, slot) if len(outs) == 1 and outs[0] == node.outputs[0] else None
        names = [self.name(t) for t in node.inputs]
        expression = (f" {cls.symbol} ".join(names) if cls.infix and len(names) == 2 and local in ("1", "−1")
                      else None)
        up = run.grads[outs[0]] if len(outs) == 1 else None
        named = local is not None and re.match(r"[^\W\d](?!\w)", local) is not None
        return Use(shorten(", ".join(outs)), local, expression, up, run.use_grads.get((reader, slot)), named)

    def name(self, tensor: str) -> str:
        """A tensor as a formula writes it: its name, or a folded constant's value (negative in parentheses)."""
        text = self.folded.get(tensor, shorten(tensor)) if tensor else ""
        return f"({text})" if text.startswith("-") else text

    def local_formula(self, node, slot: int) -> str | None:
        """The op's local derivative of its output by input `slot`, with the node's names and attributes."""
        cls = get_op(node.op)
        spec, inputs = cls.spec, node.inputs
        terms = {name: self.name(t) for name, t in zip(spec.inputs, inputs)}
        terms.update((name, "") for name in spec.inputs[len(inputs):])  # absent optional inputs
        if spec.variadic:
            terms[spec.inputs[-1]] = self.name(inputs[slot])
        terms.update((name, self.name(out)) for name, out in zip(spec.outputs, node.outputs))
        attrs = {name: default for name, (_, default) in spec.attrs.items()} | dict(node.attrs)
        terms.update((name, self.written(v)) for name, v in attrs.items())
        terms.update(up="{up}", n=self.count(node, slot))
        constants = {name: float(leaf.value.item()) for name, t in zip(spec.inputs, inputs)
                     if (leaf := self.graph.leaves.get(t)) is not None and leaf.kind == "constant"
                     and leaf.value is not None and leaf.value.size == 1}
        formula = cls.local_gradient(slot, terms, constants)
        return None if formula is None else superscripts(formula)

    def count(self, node, slot: int) -> str:
        """n of a formula: how many inputs a variadic op has, or how many elements of the input make one of
        the output (a mean's divisor)."""
        if get_op(node.op).spec.variadic:
            return str(len(node.inputs))
        x, y = self.run.values.get(node.inputs[slot]), self.run.values.get(node.outputs[0])
        return str(x.size // y.size) if x is not None and y is not None and y.size else "n"

    def written(self, value) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return format_number(value, self.precision)
        return str(value)


def superscripts(formula: str) -> str:
    """x^2 -> x², x^−1 -> x⁻¹: whole powers raised, as a slide writes them."""
    return re.sub(r"\^(−?\d+)(?![\d.])", lambda m: m[1].replace("−", "-").translate(SUPERSCRIPT), formula)
