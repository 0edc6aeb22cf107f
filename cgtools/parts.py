"""The parts a graph is made of: leaves (inputs, params, constants) and nodes (an op on named tensors)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

LEAF_KINDS = ("input", "param", "constant")
MAX_NAME_LENGTH = 1024  # characters of a tensor or node name: exporters' longest paths of module names are a few
# hundred; a name is drawn in every label that shows it and is an .npz member's name (at most 65,535 bytes)
MAX_TEXT_LENGTH = 100_000  # characters of any other text (docs, attributes): a tooltip, not a book
# What no text may hold: lone surrogates (a JSON "\ud800" escape with no pair: no encoding can write them, so
# saving or drawing would fail) and NUL (files, zip members, Graphviz and ONNX names end at it)
_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")


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


def text_problem(text: str, limit: int = MAX_TEXT_LENGTH, what: str = "text") -> str | None:
    """Why `text` cannot be kept (and written back out), or None: too long, a lone surrogate or a NUL."""
    if len(text) > limit:
        return f"expected {what} of at most {limit:,} characters, found {len(text):,}"
    bad = _UNWRITABLE.search(text)
    if bad is None:
        return None
    if bad.group() == "\0":
        return f"found a NUL character in {what}; names and text may not hold NUL (files cannot store it)"
    return (f"found a lone surrogate \\u{ord(bad.group()):04x} in {what}; names and text must be valid Unicode "
            "(a JSON \\ud800-\\udfff escape needs its pair)")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a tensor or a node, or None."""
    return text_problem(name, MAX_NAME_LENGTH, "a name")
