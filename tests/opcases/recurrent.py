"""The cases of the recurrent layers: RNN, GRU and LSTM, against torch.nn.RNN/GRU/LSTM with the ONNX weights
copied in (gate blocks reordered: ONNX LSTM iofc is torch's ifgo, GRU zrh is torch's rzn), and, for what torch's
modules lack (peepholes, clip, input_forget, sequence_lens, GRU's reset before the linear map, other
activations), against the ONNX formulas written in torch.

Node inputs: X, W, R, B, sequence_lens, initial_h (, initial_c, P); outputs Y, Y_h (, Y_c).
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from opcheck import SKIP, Case, randn

T, N, I, H = 3, 2, 2, 3  # steps, batch, input size, hidden size
TORCH_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}  # torch's gate blocks, by ONNX's index
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def reordered(w, op):
    blocks = w.chunk(GATES[op])
    return torch.cat([blocks[k] for k in TORCH_ORDER[op]])


def torch_module(op, W, R, B, layout, **kw):
    """The torch module of the same sizes, and the ONNX weights as its parameters."""
    directions, hidden = W.shape[0], R.shape[-1]
    module = getattr(torch.nn, op)(W.shape[-1], hidden, bidirectional=directions == 2, batch_first=bool(layout),
                                   bias=True, **kw).double()
    B = torch.zeros(directions, 2 * GATES[op] * hidden, dtype=W.dtype) if B is None else B
    params = {}
    for d in range(directions):
        suffix = "_l0" + ("_reverse" if d else "")
        bw, br = B[d].chunk(2)
        params |= {"weight_ih" + suffix: reordered(W[d], op), "weight_hh" + suffix: reordered(R[d], op),
                   "bias_ih" + suffix: reordered(bw, op), "bias_hh" + suffix: reordered(br, op)}
    return module, params


def via_torch(op, output, layout=0, **kw):
    """torch_fn running torch.nn.<op> on a case's arguments, returning ONNX's output number `output`."""

    def fn(X, W, R, B=None, lens=None, h0=None, c0=None):
        module, params = torch_module(op, W, R, B, layout, **kw)
        states = [s if s is None or not layout else s.transpose(0, 1) for s in (h0, c0)]  # torch: [D, N, H]
        hx = (states[0], states[1]) if op == "LSTM" and states[0] is not None else states[0]
        y, finals = functional_call(module, params, (X, hx))
        finals = finals if op == "LSTM" else (finals,)
        if output == 0:  # torch's [T, N, D·H] (batch first: [N, T, D·H]) as ONNX's [T, D, N, H] ([N, T, D, H])
            y = y.unflatten(-1, (W.shape[0], R.shape[-1]))
            return y if layout else y.permute(0, 2, 1, 3)
        return finals[output - 1].transpose(0, 1) if layout else finals[output - 1]

    return fn


def rcase(id, args, fn, output=0, **attrs):
    op = id.split("-")[0]
    return Case(id, op, args, fn, attrs, output=output, n_outputs=3 if op == "LSTM" else 2)


def weights(op, directions=1, inputs=I, hidden=H):
    g = GATES[op]
    return [0.6 * randn(directions, g * hidden, inputs), 0.6 * randn(directions, g * hidden, hidden),
            0.3 * randn(directions, 2 * g * hidden)]


CASES: list[Case] = [
    rcase("LSTM-defaults-Y", [randn(T, N, I), *weights("LSTM")[:2]], via_torch("LSTM", 0)),
    rcase("LSTM-bias-initial-states-Y_h", [randn(T, N, I), *weights("LSTM"), SKIP, randn(1, N, H), randn(1, N, H)],
          via_torch("LSTM", 1), output=1),
    rcase("LSTM-bidirectional-Y", [randn(T, N, I), *weights("LSTM", 2), SKIP, randn(2, N, H), randn(2, N, H)],
          via_torch("LSTM", 0), direction="bidirectional"),
    rcase("LSTM-bidirectional-Y_c", [randn(T, N, I), *weights("LSTM", 2), SKIP, randn(2, N, H), randn(2, N, H)],
          via_torch("LSTM", 2), output=2, direction="bidirectional"),
    rcase("LSTM-batchwise-bidirectional-Y", [randn(N, T, I), *weights("LSTM", 2), SKIP, randn(N, 2, H),
                                             randn(N, 2, H)], via_torch("LSTM", 0, layout=1), layout=1,
          direction="bidirectional"),
    rcase("GRU-defaults-Y", [randn(T, N, I), *weights("GRU")[:2]], via_torch("GRU", 0), linear_before_reset=1),
    rcase("GRU-bias-initial-Y_h", [randn(T, N, I), *weights("GRU"), SKIP, randn(1, N, H)], via_torch("GRU", 1),
          output=1, linear_before_reset=1),
    rcase("GRU-bidirectional-Y", [randn(T, N, I), *weights("GRU", 2), SKIP, randn(2, N, H)], via_torch("GRU", 0),
          direction="bidirectional", linear_before_reset=1),
    rcase("GRU-batchwise-Y_h", [randn(N, T, I), *weights("GRU", 2), SKIP, randn(N, 2, H)],
          via_torch("GRU", 1, layout=1), output=1, layout=1, direction="bidirectional", linear_before_reset=1),
    rcase("RNN-defaults-Y", [randn(T, N, I), *weights("RNN")[:2]], via_torch("RNN", 0)),
    rcase("RNN-bidirectional-Y_h", [randn(T, N, I), *weights("RNN", 2), SKIP, randn(2, N, H)],
          via_torch("RNN", 1), output=1, direction="bidirectional"),
    rcase("RNN-relu-batchwise-Y", [randn(N, T, I), *weights("RNN"), SKIP, randn(N, 1, H)],
          via_torch("RNN", 0, layout=1, nonlinearity="relu"), layout=1, activations=["Relu"]),
]

NON_FLOAT_OPS: set[str] = set()
FLOAT32_CASES = ["LSTM-bidirectional-Y", "GRU-bidirectional-Y", "RNN-defaults-Y"]
TORCH_ONLY_CASES: list[Case] = []
