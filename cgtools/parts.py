"""The parts a graph is made of: leaves (inputs, params, constants) and nodes (an op on named tensors)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEAF_KINDS = ("input", "param", "constant")


@dataclass
class Leaf:
    """A tensor nobody computes: an input (fed at run time), a param (trainable) or a constant. `dims` is the
    declared shape of an input when some of its dimensions are symbolic: sizes, names ("batch") and None for an
    unnamed one; `shape` is then None."""

    name: str
    kind: str
    value: np.ndarray | None = None
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    doc: str = ""
    dims: tuple[int | str | None, ...] | None = None


@dataclass
class Node:
    """One op applied to named tensors. `name` defaults to the first output's name. `scope` is the path of
    modules the node belongs to, outermost first (("layer1", "layer1.0", "conv1")), for drawing by hierarchy."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    name: str = ""
    doc: str = ""
    scope: tuple[str, ...] = ()

    def __post_init__(self):
        self.name = self.name or self.outputs[0]
