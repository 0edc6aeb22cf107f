"""Straight-line Python for a plan that runs again and again (training, sweeps, benchmarks).

The interpreter walks its plan step by step, and on arrays of a few numbers that walk costs as much as the
arithmetic. A plan run often enough is written out once as straight-line Python, forward and backward: the
same calls in the same order as the interpreter's loops, with slot numbers and bound op functions in place
of the walk; backward inlines the one accumulation rule (backward.ACCUMULATE). Only numbers and names made
here enter the source; the graph's names and attributes stay out of it (the op functions come in through
the namespace, already bound to their attributes).

Compiled code does not locate errors: when it raises, the interpreter takes over and names the failing node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cgtools.backward import ACCUMULATE, BackwardStep
from cgtools.gradients import fitted
from cgtools.ops import Context
from cgtools.values import holds_tensor


@dataclass(frozen=True)
class CompilePolicy:
    """When a plan is compiled, and in what pieces.

    Compiling costs, about, `*_seconds_per_step` per step (Python's own compiler dominates); a plan is compiled
    once the time spent interpreting it reaches that, so a graph run a few times is never slowed down by
    compiling and a graph run often pays at most about twice what it would have had it known in advance.
    Python compiles one huge function in time and memory growing faster than its length, so the code comes
    in functions of `steps_per_function` steps: 100,000 steps compile in a bounded footprint."""

    forward_seconds_per_step: float = 3e-5
    backward_seconds_per_step: float = 1e-4
    steps_per_function: int = 200

    def worth_compiling(self, seconds_interpreted: float, steps: int, *, backward: bool) -> bool:
        per_step = self.backward_seconds_per_step if backward else self.forward_seconds_per_step
        return seconds_interpreted >= per_step * steps


COMPILE_WHEN_WORTH_IT = CompilePolicy()
COMPILE_AT_ONCE = CompilePolicy(0.0, 0.0)
NEVER_COMPILE = CompilePolicy(math.inf, math.inf)

FAILED = False  # stands for the compiled code of a plan that could not be compiled: it stays interpreted


def first_output(out):
    """A one-output step's value when the op returned something other than an array (a tuple, a scalar)."""
    out = out[0] if type(out) is tuple else out
    return np.asarray(out) if holds_tensor(out) else out  # a sequence or an optional as it is


def outputs_of(out, n: int) -> list:
    """The first n of a step's outputs; fewer fail, and the interpreter then names the node."""
    values = out if type(out) is tuple else (out,)
    if len(values) < n:
        raise ValueError(f"{len(values)} outputs for {n}")
    return [np.asarray(value) if holds_tensor(value) else value for value in values[:n]]


def chained(name: str, heading: str, bodies: list[list[str]], namespace: dict, steps_per_function: int):
    """One function running the step bodies in order, compiled as parts `heading` of `steps_per_function`
    steps each, every part in a namespace of its own; the parts are kept as its `parts`."""
    parts = []
    for start in range(0, len(bodies), steps_per_function):
        lines = [heading, *(line for body in bodies[start:start + steps_per_function] for line in body), "    pass"]
        names = {**namespace, "ndarray": np.ndarray}
        exec(compile("\n".join(lines), f"<cgtools {name}>", "exec"), names)
        parts.append(names["part"])

    def run(*slots):
        for part in parts:
            part(*slots)

    run.parts = parts
    return run


def compile_forward(steps: list, policy: CompilePolicy = COMPILE_WHEN_WORTH_IT):
    """`forward(vals, contexts)`: fills the value slots and the step contexts as interpreter.forward does.
    Each step stores its context before it runs, so after an error the last one stored is the failing step."""
    namespace = {"C": Context, "first_output": first_output, "outputs_of": outputs_of}
    bodies = []
    for k, step in enumerate(steps):
        namespace[f"f{k}"] = step.forward
        args = "".join(f", v[{i}]" for i in step.ins)
        outs = (f"    v[{step.outs[0]}] = o if type(o) is ndarray else first_output(o)" if len(step.outs) == 1 else
                f"    {', '.join(f'v[{i}]' for i in step.outs)}, = outputs_of(o, {len(step.outs)})")
        bodies.append([f"    K[{k}] = c = C(); o = f{k}(c{args})", outs])
    return chained("forward", "def part(v, K):", bodies, namespace, policy.steps_per_function)


def compile_backward(steps: list[BackwardStep], policy: CompilePolicy = COMPILE_WHEN_WORTH_IT):
    """`backward(vals, grads, contexts)`: fills the gradient slots as backward.backpropagate does, each step's
    gradients added by the accumulation rule written in for their slot."""
    namespace = {"fitted": fitted, "place": ""}
    bodies = []
    for n, step in enumerate(steps):
        namespace[f"b{n}"], namespace[f"n{n}"] = step.backward, step.needs_grad
        grads = ", ".join(f"g[{i}]" for i in step.outs)
        body = [f"    if {' or '.join(f'g[{i}] is not None' for i in step.outs)}:",
                f"        c = K[{step.index}]; c.needs_grad = n{n}; r = b{n}(c, {grads})",
                "        if type(r) is ndarray: r = (r,)"]
        if max(pos for pos, _ in step.wanted) < len(step.needs_grad) - 1:  # too few gradients fail, as interpreted
            body.append(f"        r[{len(step.needs_grad) - 1}]")
        for pos, slot in step.wanted:
            body += [f"        t = r[{pos}]", "        if t is not None:", f"            x = v[{slot}]",
                     *(f"            {line}" for line in ACCUMULATE.format(slot=slot).splitlines())]
        bodies.append(body)
    return chained("backward", "def part(v, g, K):", bodies, namespace, policy.steps_per_function)
