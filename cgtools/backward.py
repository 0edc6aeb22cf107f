"""Reverse mode, written once: a step's backward, and the rule that adds what each use of a tensor passes
back into its gradient (the multivariable chain rule). The interpreter runs it, compiled code is generated
from it, and traced tensors (`Tensor.backward`) use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from cgtools.errors import CgError, LossNotScalar
from cgtools.gradients import fitted


class BackwardStep(NamedTuple):
    """One op's backward in a pass: which context it reads, which gradients it takes and which it gives."""

    index: int  # the forward step whose context backward reads (and whose per-use shares it keys)
    backward: Callable  # the op's backward(ctx, *output grads)
    wanted: tuple[tuple[int, int], ...]  # (input position, slot) of each input that wants a gradient
    outs: tuple[int, ...]  # the slots of the step's outputs
    needs_grad: tuple[bool, ...]  # per input: does it want one (ctx.needs_grad)
    place: str  # "nodes[3] (Mul 'c')", for messages
    ins: tuple[int, ...] = ()  # the slots of all its inputs (0 for an omitted one), for messages


# The accumulation rule: the gradient `t` one use passes back is fitted to its tensor `x` (shape and dtype),
# then added to what the tensor's slot in `g` holds. `accumulate` below is this text made a function;
# compiled code inlines it with the slot written in.
ACCUMULATE = """\
if type(t) is not ndarray or t.shape != x.shape or t.dtype is not x.dtype: t = fitted(t, x, place)
p = g[{slot}]
g[{slot}] = t if p is None else p + t"""


def _accumulate_function() -> Callable:
    body = "\n".join("    " + line for line in ACCUMULATE.format(slot="slot").splitlines())
    namespace = {"ndarray": np.ndarray, "fitted": fitted}
    exec(f"def accumulate(g, slot, t, x, place=''):\n{body}\n    return t", namespace)
    return namespace["accumulate"]


accumulate = _accumulate_function()
accumulate.__doc__ = "Add the gradient `t` that one use of tensor `x` passed back into `g[slot]`; returns it fitted."


def pass_back(step: BackwardStep, ctx, grads: list) -> tuple | None:
    """The op's backward for one step: a gradient (or None) per input; None when no output has a gradient."""
    ctx.needs_grad = step.needs_grad
    outs = step.outs
    if len(outs) == 1:
        g = grads[outs[0]]
        if g is None:
            return None
        in_grads = step.backward(ctx, g)
    else:
        gs = [grads[i] for i in outs]
        if all(g is None for g in gs):
            return None
        in_grads = step.backward(ctx, *gs)
    if type(in_grads) is np.ndarray:
        in_grads = (in_grads,)
    if len(in_grads) < len(step.needs_grad):
        raise CgError(f"backward returned {len(in_grads)} gradients for {len(step.needs_grad)} inputs; return one "
                      "per input, None where an input has none", where=step.place)
    return in_grads


def backpropagate(steps: list[BackwardStep], ctxs: list, vals: list, grads: list, uses: dict | None = None) -> None:
    """Fill `grads` from the seeded slots back, `steps` in reverse order; `uses`, when given, keeps what each
    (step, input position) passed back. Any failure of a step becomes a CgError at the step's place."""
    for step in steps:
        try:
            in_grads = pass_back(step, ctxs[step.index], grads)
            if in_grads is None:
                continue
            for pos, slot in step.wanted:
                g = in_grads[pos]
                if g is not None:
                    g = accumulate(grads, slot, g, vals[slot], step.place)
                    if uses is not None:
                        uses[step.index, pos] = g
        except CgError as e:
            raise e.located(where=step.place) from None
        except Exception as e:  # numpy's own complaint (a MemoryError says how much it asked for), in the graph's terms
            ins = step.ins or tuple(slot for _, slot in step.wanted)
            raise CgError(f"backward failed on inputs {described(vals, ins)}, output gradients "
                          f"{described(grads, step.outs)}: {failure_words(e)}", where=step.place) from None


def described(arrays: list, slots) -> str:
    """The dtypes and shapes of the arrays in `slots`, for messages: "float32[2, 3], ∅" (∅: none)."""
    return ", ".join("∅" if arrays[i] is None else f"{np.asarray(arrays[i]).dtype}{list(np.shape(arrays[i]))}"
                     for i in slots)


def failure_words(e: Exception) -> str:
    """What an exception says, or its kind when it says nothing (a bare MemoryError)."""
    words = str(e)
    return words if words else "out of memory" if isinstance(e, MemoryError) else type(e).__name__


def seed_gradient(value: np.ndarray, loss: str, seed=None) -> np.ndarray:
    """The gradient backward starts from: ones for a scalar loss, else the given seed (or what a function of the
    loss's value gives), broadcast to it."""
    if callable(seed):
        seed = seed(value)
    if seed is None:
        if value.size != 1:
            raise LossNotScalar(f"the loss {loss!r} has shape {list(value.shape)}, not a scalar; sum it into one "
                                "(ReduceSum), give a seed gradient of that shape (Graph.run(seed=…)) or run forward "
                                "only (--no-backward)")
        return np.ones_like(value)
    try:
        return np.broadcast_to(np.asarray(seed, value.dtype), value.shape)
    except ValueError:
        raise CgError(f"seed gradient of shape {list(np.shape(seed))} does not fit the loss {loss!r} "
                      f"of shape {list(value.shape)}") from None
