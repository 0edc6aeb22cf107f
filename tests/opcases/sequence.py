"""The cases of the sequence and optional ops. A sequence cannot be a graph's input or output in these tables'
one-node form, so each case is a short chain of nodes from tensors to a tensor (SplitToSequence, …, SequenceAt),
beside the same computation in torch; tests/test_sequences.py checks them against finite differences and torch
autograd. SequenceEmpty, SequenceLength and OptionalHasElement have nothing to differentiate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

rng = np.random.default_rng(20240613)

NON_FLOAT_OPS = {"SequenceEmpty", "SequenceLength", "OptionalHasElement"}


@dataclass
class Chain:
    id: str
    inputs: dict  # name -> float64 array, differentiated
    nodes: list  # (op, inputs, outputs, attrs)
    torch_fn: object  # the inputs, in order, as torch tensors -> the output
    constants: dict = field(default_factory=dict)  # name -> array (positions, split sizes)


def randn(*shape):
    return rng.standard_normal(shape)


CHAINS = [
    Chain("split-sizes-at", {"x": randn(3, 4)},
          [("SplitToSequence", ["x", "sizes"], ["s"], {"axis": 1}), ("SequenceAt", ["s", "one"], ["y"], {})],
          lambda x: x[:, 1:4], {"sizes": np.array([1, 3]), "one": np.array(1)}),
    Chain("split-scalar-concat", {"x": randn(5, 3)},
          [("SplitToSequence", ["x", "two"], ["s"], {}), ("SequenceErase", ["s", "one"], ["t"], {}),
           ("ConcatFromSequence", ["t"], ["y"], {"axis": 0})],
          lambda x: torch.cat([x[:2], x[4:]]), {"two": np.array(2), "one": np.array(1)}),
    Chain("split-each-stack", {"x": randn(3, 4)},
          [("SplitToSequence", ["x"], ["s"], {"keepdims": 0}),
           ("ConcatFromSequence", ["s"], ["y"], {"axis": 1, "new_axis": 1})],
          lambda x: x.T),
    Chain("construct-insert-erase-concat", {"a": randn(2, 3), "b": randn(1, 3), "c": randn(2, 3)},
          [("SequenceConstruct", ["a", "b"], ["s"], {}), ("SequenceInsert", ["s", "c", "one"], ["t"], {}),
           ("SequenceErase", ["t", "zero"], ["u"], {}), ("ConcatFromSequence", ["u"], ["y"], {"axis": -2})],
          lambda a, b, c: torch.cat([c, b]), {"one": np.array(1), "zero": np.array(0)}),
    Chain("at-twice-adds-up", {"a": randn(2, 2), "b": randn(2, 2)},
          [("SequenceConstruct", ["a", "b"], ["s"], {}), ("SequenceAt", ["s", "zero"], ["p"], {}),
           ("SequenceAt", ["s", "minus2"], ["q"], {}), ("Mul", ["p", "q"], ["y"], {})],
          lambda a, b: a * a, {"zero": np.array(0), "minus2": np.array(-2)}),
    Chain("insert-appends", {"a": randn(3), "b": randn(3)},
          [("SequenceConstruct", ["a"], ["s"], {}), ("SequenceInsert", ["s", "b"], ["t"], {}),
           ("ConcatFromSequence", ["t"], ["y"], {"axis": 0, "new_axis": 1})],
          lambda a, b: torch.stack([a, b])),
    Chain("optional-get", {"x": randn(2, 3)},
          [("Optional", ["x"], ["o"], {}), ("OptionalGetElement", ["o"], ["g"], {}), ("Mul", ["g", "g"], ["y"], {})],
          lambda x: x * x),
]
CHAIN_OPS = {op for chain in CHAINS for op, *_ in chain.nodes}  # the ops these cases differentiate through
CASES: list = []  # the one-node tables of the other families; these ops' cases are CHAINS
TORCH_ONLY_CASES: list = []
