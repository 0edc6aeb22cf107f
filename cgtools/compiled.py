"""Straight-line Python for a plan that runs again and again (training, sweeps, benchmarks).

The interpreter walks its plan step by step, and on arrays of a few numbers that walk costs as much as the
arithmetic. A plan run often enough is written out once as straight-line Python, forward and backward: the
same calls in the same order as the interpreter's loops, with slot numbers and bound op functions in place
of the walk. Only numbers and names made here enter the source; the graph's names and attributes stay out
of it (the op functions come in through the namespace, already bound to their attributes).

Compiled code does not locate errors: when it raises, the interpreter takes over and names the failing node.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cgtools.ops import Context

# What compiling costs, about, per step (Python's own compiler dominates). A plan is compiled once the time
# spent interpreting it reaches that: a graph run a few times is never slowed down by compiling, and a graph
# run often pays at most about twice what it would have had it known in advance.
FORWARD_SECONDS_PER_STEP = 3e-5
BACKWARD_SECONDS_PER_STEP = 1e-4
# Steps per generated function: Python compiles one huge function in time and memory growing faster than
# its length; a chain of functions this size compiles 100,000 steps in a bounded footprint.
STEPS_PER_FUNCTION = 200

FAILED = False  # stands for the compiled code of a plan that could not be compiled: it stays interpreted


def worth_compiling(seconds_interpreted: float, steps: int, seconds_per_step: float) -> bool:
    return seconds_interpreted >= seconds_per_step * steps


def first_output(out):
    """A one-output step's value when the op returned something other than an array (a tuple, a scalar)."""
    return np.asarray(out[0] if type(out) is tuple else out)


def outputs_of(out, n: int) -> list:
    values = out if type(out) is tuple else (out,)
    return [np.asarray(value) for value in values[:n]] + [None] * (n - len(values))


def chained(name: str, heading: str, bodies: list[list[str]], namespace: dict):
    """One function running the step bodies in order, compiled as parts `heading` of STEPS_PER_FUNCTION steps
    each, every part in a namespace of its own; the parts are kept as its `parts`."""
    parts = []
    for start in range(0, len(bodies), STEPS_PER_FUNCTION):
        lines = [heading, *(line for body in bodies[start:start + STEPS_PER_FUNCTION] for line in body), "    pass"]
        names = {**namespace, "ndarray": np.ndarray}
        exec(compile("\n".join(lines), f"<cgtools {name}>", "exec"), names)
        parts.append(names["part"])

    def run(*slots):
        for part in parts:
            part(*slots)

    run.parts = parts
    return run


def compile_forward(steps: list):
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
    return chained("forward", "def part(v, K):", bodies, namespace)


# a gradient not yet an array of its input's shape and dtype is made one (x is the input's value)
FIT = "(type(t) is not ndarray or t.shape != x.shape or t.dtype is not x.dtype): t = fitted(t, x)"


def compile_backward(backward_steps: list, seeded: int):
    """`backward(vals, grads, contexts)`: fills the gradient slots as interpreter.backpropagate does (seeded at
    slot `seeded`); a slot only one step passes a gradient to is assigned instead of added to."""
    from cgtools.interpreter import fitted

    senders = Counter(i for _, _, wanted, *_ in backward_steps for _, i in wanted)
    namespace = {"fitted": fitted}
    bodies = []
    for k, bwd, wanted, outs, needs, _ in backward_steps:
        namespace[f"b{k}"], namespace[f"n{k}"] = bwd, needs
        body = [f"    if {' or '.join(f'g[{i}] is not None' for i in outs)}:",
                f"        c = K[{k}]; c.needs_grad = n{k}; r = b{k}(c, {', '.join(f'g[{i}]' for i in outs)})",
                "        if type(r) is ndarray: r = (r,)"]
        if max(pos for pos, _ in wanted) < len(needs) - 1:  # fewer gradients than inputs fails, as interpreted
            body.append(f"        r[{len(needs) - 1}]")
        for pos, i in wanted:
            if senders[i] == 1 and i != seeded:  # the slot is still None: a None gradient may be stored as is
                body += [f"        t = r[{pos}]; x = v[{i}]", f"        if t is not None and {FIT}",
                         f"        g[{i}] = t"]
            else:
                body += [f"        t = r[{pos}]", "        if t is not None:", f"            x = v[{i}]",
                         f"            if {FIT}", f"            p = g[{i}]; g[{i}] = t if p is None else p + t"]
        bodies.append(body)
    return chained("backward", "def part(v, g, K):", bodies, namespace)
