"""Straight-line Python for a plan that runs again and again (training, sweeps, benchmarks).

The interpreter walks its plan step by step, and on arrays of a few numbers that walk costs as much as the
arithmetic. A plan run often enough is written out once as two Python functions, forward and backward: the
same calls in the same order as the interpreter's loops, with slot numbers and bound op functions in place
of the walk. Only numbers and names made here enter the source; the graph's names and attributes stay out
of it (the op functions come in through the namespace, already bound to their attributes).

Compiled code does not locate errors: when it raises, the interpreter runs the same values step by step,
and that run either names the failing node or, if it does not fail, is the result.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cgtools.ops import Context

# What compiling costs, about, per step (Python's own compiler dominates). A plan is compiled once the time
# spent interpreting it reaches that: then a graph run a few times is never slowed down by compiling, and a
# graph run often pays at most twice what it would have had it known in advance.
COMPILE_SECONDS_PER_STEP = 1e-4


def worth_compiling(seconds_interpreted: float, steps: int) -> bool:
    return seconds_interpreted >= COMPILE_SECONDS_PER_STEP * steps


def first_output(out):
    """A one-output step's value when the op returned something other than an array (a tuple, a scalar)."""
    return np.asarray(out[0] if type(out) is tuple else out)


def outputs_of(out, n: int) -> list:
    values = out if type(out) is tuple else (out,)
    return [np.asarray(value) for value in values[:n]] + [None] * (n - len(values))


def build(name: str, lines: list[str], namespace: dict):
    namespace["ndarray"] = np.ndarray
    exec(compile("\n".join(lines), f"<cgtools {name}>", "exec"), namespace)
    return namespace[name]


def compile_forward(steps: list):
    """`forward(vals) -> contexts`: fills the value slots as interpreter.forward does."""
    namespace = {"Context": Context, "first_output": first_output, "outputs_of": outputs_of}
    lines = ["def forward(v):", f"    K = [None] * {len(steps)}", "    C = Context"]
    for k, step in enumerate(steps):
        namespace[f"f{k}"] = step.forward
        args = "".join(f", v[{i}]" for i in step.ins)
        lines.append(f"    K[{k}] = c = C(); o = f{k}(c{args})")
        if len(step.outs) == 1:
            lines.append(f"    v[{step.outs[0]}] = o if type(o) is ndarray else first_output(o)")
        else:
            lines.append(f"    {', '.join(f'v[{i}]' for i in step.outs)}, = outputs_of(o, {len(step.outs)})")
    lines.append("    return K")
    return build("forward", lines, namespace)


# a gradient not yet an array of its input's shape and dtype is made one (x is the input's value)
FIT = "(type(t) is not ndarray or t.shape != x.shape or t.dtype is not x.dtype): t = fitted(t, x)"


def compile_backward(backward_steps: list, seeded: int):
    """`backward(vals, grads, contexts)`: fills the gradient slots as interpreter.backpropagate does (seeded at
    slot `seeded`); a slot only one step passes a gradient to is assigned instead of added to."""
    from cgtools.interpreter import fitted

    senders = Counter(i for _, _, wanted, *_ in backward_steps for _, i in wanted)
    namespace = {"fitted": fitted}
    lines = ["def backward(v, g, K):"]
    for k, bwd, wanted, outs, needs, _ in backward_steps:
        namespace[f"b{k}"], namespace[f"n{k}"] = bwd, needs
        lines += [f"    if {' or '.join(f'g[{i}] is not None' for i in outs)}:",
                  f"        c = K[{k}]; c.needs_grad = n{k}; r = b{k}(c, {', '.join(f'g[{i}]' for i in outs)})",
                  "        if type(r) is ndarray: r = (r,)"]
        for pos, i in wanted:
            if senders[i] == 1 and i != seeded:  # the slot is still None: a None gradient may be stored as is
                lines += [f"        t = r[{pos}]; x = v[{i}]", f"        if t is not None and {FIT}",
                          f"        g[{i}] = t"]
            else:
                lines += [f"        t = r[{pos}]", "        if t is not None:", f"            x = v[{i}]",
                          f"            if {FIT}", f"            p = g[{i}]; g[{i}] = t if p is None else p + t"]
        if max(pos for pos, _ in wanted) < len(needs) - 1:  # too few gradients fails as in the interpreter
            lines.append(f"        r[{len(needs) - 1}]")
    lines.append("    pass")  # a flow with no steps
    return build("backward", lines, namespace)
