"""The cases of the control-flow ops (If, Loop, Scan, SequenceMap), whose backward replays their bodies. Each is
a short chain from tensors to a tensor, beside the same computation in torch (a Python branch or for-loop);
tests/test_control_flow.py checks them against finite differences and torch autograd."""

from __future__ import annotations

import numpy as np
import torch

from opcases.sequence import Chain

rng = np.random.default_rng(20240614)

NON_FLOAT_OPS: set = set()


def randn(*shape):
    return rng.standard_normal(shape)


def body(inputs, nodes, outputs, outer=()):
    """A body's graph document: its own inputs, then the enclosing graph's tensors it reads (`outer`)."""
    return {"cgtools": "1.0", "inputs": [{"name": name} for name in [*inputs, *outer]], "outer": list(outer),
            "nodes": [{"op": op, "inputs": ins, "outputs": outs, "attrs": attrs} for op, ins, outs, attrs in nodes],
            "outputs": outputs}


# h ← tanh(W·h + U·x[i]) for each row of x, every h kept: an RNN written as a Loop reading W, U and x outside
RNN_BODY = body(["i", "c", "h"], [
    ("Gather", ["x", "i"], ["xi"], {}), ("MatMul", ["W", "h"], ["Wh"], {}), ("MatMul", ["U", "xi"], ["Ux"], {}),
    ("Add", ["Wh", "Ux"], ["a"], {}), ("Tanh", ["a"], ["h_out"], {}), ("Identity", ["c"], ["c_out"], {}),
    ("Identity", ["h_out"], ["h_scan"], {})], ["c_out", "h_out", "h_scan"], outer=["W", "U", "x"])


def torch_rnn(h, W, U, x, steps):
    hs = []
    for i in range(steps):
        h = torch.tanh(W @ h + U @ x[i])
        hs.append(h)
    return h, hs


def loop_rnn(h, W, U, x):
    h, hs = torch_rnn(h, W, U, x, 3)
    return torch.stack(hs) * h


# s ← s·w + x_t along the scan axis, each sin(s) kept
SCAN_BODY = body(["s", "xt"], [
    ("Mul", ["s", "w"], ["sw"], {}), ("Add", ["sw", "xt"], ["s_out"], {}), ("Sin", ["s_out"], ["ys"], {})],
    ["s_out", "ys"], outer=["w"])


def torch_scan(s, w, xs, reverse_out=False):
    ys = []
    for xt in xs:
        s = s * w + xt
        ys.append(torch.sin(s))
    return torch.stack(ys[::-1] if reverse_out else ys) * s


def scan_chain(id, attrs, x, torch_x, reverse_out=False):
    return Chain(id, {"s": randn(2), "w": randn(2), "x": x},
                 [("Scan", ["s", "x", "w"], ["s_end", "ys"], {"body": SCAN_BODY, "num_scan_inputs": 1, **attrs}),
                  ("Mul", ["ys", "s_end"], ["y"], {})],
                 lambda s, w, x: torch_scan(s, w, torch_x(x), reverse_out))


IF_THEN = body([], [("Mul", ["a", "b"], ["t"], {})], ["t"], outer=["a", "b"])
IF_ELSE = body([], [("Sin", ["a"], ["e"], {})], ["e"], outer=["a"])


def if_chain(id, taken: int, torch_fn):
    return Chain(id, {"a": randn(2, 3), "b": randn(2, 3)},
                 [("If", ["cond", "a", "b"], ["r"], {"then_branch": IF_THEN, "else_branch": IF_ELSE}),
                  ("Mul", ["r", "a"], ["y"], {})],
                 torch_fn, {"cond": np.array(taken)})


MAP_BODY = body(["e", "w"], [("Mul", ["e", "w"], ["ew"], {}), ("Add", ["ew", "v"], ["o"], {})], ["o"], outer=["v"])

CHAINS = [
    Chain("loop-rnn", {"h": randn(2), "W": randn(2, 2), "U": randn(2, 2), "x": randn(3, 2)},
          [("Loop", ["M", "", "h", "W", "U", "x"], ["h_end", "hs"], {"body": RNN_BODY}),
           ("Mul", ["hs", "h_end"], ["y"], {})],
          loop_rnn, {"M": np.array(3)}),
    Chain("loop-no-iterations", {"h": randn(2), "W": randn(2, 2), "U": randn(2, 2), "x": randn(3, 2)},
          [("Loop", ["M", "", "h", "W", "U", "x"], ["h_end", "hs"], {"body": RNN_BODY}),
           ("Mul", ["h_end", "h_end"], ["y"], {})],
          lambda h, W, U, x: h * h, {"M": np.array(0)}),
    scan_chain("scan-forward", {}, randn(3, 2), lambda x: x),
    scan_chain("scan-reverse-axis1", {"scan_input_directions": [1], "scan_input_axes": [1],
                                      "scan_output_directions": [1]},
               randn(2, 4), lambda x: x.T.flip(0), reverse_out=True),
    if_chain("if-then", 1, lambda a, b: a * b * a),
    if_chain("if-else", 0, lambda a, b: torch.sin(a) * a),
    Chain("scan-opset8-batch", {"s": randn(2, 2), "w": randn(2), "x": randn(2, 3, 2)},  # sequence_lens omitted
          [("Scan", ["", "s", "x", "w"], ["s_end", "ys"], {"body": SCAN_BODY, "num_scan_inputs": 1}),
           ("Unsqueeze", ["s_end", "one"], ["s_end3"], {}), ("Mul", ["ys", "s_end3"], ["y"], {})],
          lambda s, w, x: torch.stack([torch_scan(s[b], w, x[b]) for b in range(2)]), {"one": np.array([1])}),
    Chain("sequence-map", {"x": randn(3, 2), "w": randn(2), "v": randn(2)},
          [("SplitToSequence", ["x"], ["s"], {"keepdims": 0}),
           ("SequenceMap", ["s", "w", "v"], ["m"], {"body": MAP_BODY}),
           ("ConcatFromSequence", ["m"], ["y"], {"axis": 0, "new_axis": 1})],
          lambda x, w, v: torch.stack([e * w + v for e in x])),
]
CHAIN_OPS = {"If", "Loop", "Scan", "SequenceMap"}  # the ops these cases differentiate through
CASES: list = []  # the one-node tables of the other families; these ops' cases are CHAINS
TORCH_ONLY_CASES: list = []
