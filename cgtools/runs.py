"""What a run computed: values and gradients by tensor name, read straight from the interpreter's slots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from cgtools import notebook
from cgtools.errors import node_place
from cgtools.numerics import deliberate_infinities, non_finite

SMALL = 4_096  # elements; arrays up to this size are checked for NaN and infinity together, BATCH at a time
BATCH = (1 << 20) // SMALL  # small arrays checked at once: at most a million elements


def surely_finite(arrays) -> bool:
    """Whether no array holds a NaN or an infinity (False: look closer). The small float arrays are checked
    together, BATCH at a time: a 100,000-node graph's 200,000 tensors in a tenth of a second rather than two."""
    small = []
    for a in arrays:
        if a is None:
            continue
        if not isinstance(a, np.ndarray):  # a sequence's list of arrays: look closer
            return False
        if a.size <= SMALL and a.dtype.kind == "f":
            small.append(a)
        elif non_finite(a):
            return False
    return all(np.isfinite(np.concatenate(small[k:k + BATCH], axis=None)).all() for k in range(0, len(small), BATCH))


def arrays_of(values: Mapping) -> list:
    """The arrays of a run's values or gradients, without looking each up by name (None: a slot never reached,
    which reads as zeros)."""
    if isinstance(values, SlotView):
        return [a for a, here in zip(values._arrays, values._present) if here]
    return list(values.values())


class SlotView(Mapping):
    """A read-only name -> array mapping over the interpreter's slot list, built without copying.

    With `zeros_like`, slots marked in `present` but never reached read as zeros of that value's shape."""

    def __init__(self, slots: dict[str, int], names: list, arrays: list, present=None, zeros_like=None):
        self._slots, self._names, self._arrays, self._zeros_like = slots, names, arrays, zeros_like
        self._present = present if present is not None else [a is not None for a in arrays]

    def __getitem__(self, name):
        slot = self._slots.get(name, 0)
        if not slot or not self._present[slot]:
            raise KeyError(name)
        array = self._arrays[slot]
        if array is None:
            array = self._arrays[slot] = np.zeros_like(self._zeros_like[slot])
        return array

    def __iter__(self):
        names = self._names
        return (names[i] for i, here in enumerate(self._present) if i and here)

    def __len__(self):
        return sum(self._present[1:])

    def __repr__(self):
        return repr(dict(self))


@dataclass
class Run:
    """What a run computed: `values` and `grads` map tensor names to arrays. A tensor has a gradient when it
    is a float input, param or intermediate (zero where the loss does not depend on it).

    With `per_use`, `use_grads[(node name, input slot)]` is what that one use passed back: a tensor read
    twice gets two contributions, and its gradient is their sum (the multivariable chain rule)."""

    graph: object
    values: Mapping[str, np.ndarray]
    grads: Mapping[str, np.ndarray]
    loss: str | None
    use_grads: dict = field(default_factory=dict)

    def to_networkx(self):
        return self.graph.to_networkx(self)

    def non_finite(self) -> tuple[list[str], list[str]]:
        """Tensors holding a NaN or an infinity: values in forward order (the first is where it started) and
        gradients in backward order (the first is nearest the loss). Values whose infinities a mask made on
        purpose (numerics.deliberate_infinities) are left out."""
        if surely_finite(arrays_of(self.values)) and surely_finite(arrays_of(self.grads)):
            return [], []
        graph = self.graph
        order = [*graph.leaves, *(t for i in graph.topological_order() for t in graph.nodes[i].outputs)]
        values = [t for t in order if non_finite(self.values.get(t))]
        masked = deliberate_infinities(graph, self.values) if values else frozenset()
        return ([t for t in values if t not in masked],
                [t for t in reversed(order) if non_finite(self.grads.get(t))])

    def first_non_finite(self) -> list[str]:
        """Where the first NaN or infinity appeared, as sentences (none when every tensor is finite): the first
        such value of the forward pass, the node that made it and how many tensors follow it; and the first such
        gradient of the backward pass, when its value was finite (else the forward sentence already says it)."""
        values, grads = self.non_finite()
        nodes = self.graph.nodes
        notes = []
        if values:
            first = values[0]
            made = next((f", made by {node_place(i, node)}" for i, node in enumerate(nodes) if first in node.outputs),
                        "")
            more = len(values) - 1
            more = f"; {more} more tensor{'s follow' if more > 1 else ' follows'} it" if more else ""
            notes.append(f"the first NaN or infinity in the forward pass is {first!r}{made}{more}")
        if grads and grads[0] not in values:
            notes.append(f"the first NaN or infinity in the backward pass is ∂{self.loss}/∂{grads[0]}")
        return notes

    def _repr_svg_(self):
        """Jupyter shows a run as its diagram, values and gradients on the edges."""
        return notebook.svg(self.graph, self)
