"""Which of an ONNX model's float initializers are the model's weights (params) and which are constants the
exporter made: judged by how the graph reads them, not by their names (PyTorch's exporters rename weights they
transpose, `onnx::MatMul_123`, `val_0`).

An initializer is a weight when some node reads it, directly or through a copy (Identity, Transpose, Reshape …)
or a piece (Slice, Concat: PyTorch's exporter unfolded, cuts torch's LSTM and GRU weights into ONNX's gate order),
in a weight slot of a layer op (Conv's W and B, Gemm, MatMul, a normalization's scale and bias, Gather's table),
or as a non-scalar operand of Add, Sub, Mul or Div (a Linear's bias after MatMul, a layer scale, a position
embedding). Everything else is a constant: scalars (`0.5`, the square root of a head size), BatchNormalization's
running mean and variance, shape-like and exponent operands, and any tensor holding an infinity or NaN (masks).
A layer op's weight memory-mapped from external data is not read to look for those: it stays on disk until used.
"""

from __future__ import annotations

import numpy as np

WEIGHT_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1), "Einsum": None,
                "BatchNormalization": (1, 2), "LayerNormalization": (1, 2), "InstanceNormalization": (1, 2),
                "GroupNormalization": (1, 2), "RMSNormalization": (1,), "SkipLayerNormalization": (2, 3),
                "PRelu": (1,), "Gather": (0,), "LSTM": (1, 2, 3), "GRU": (1, 2, 3), "RNN": (1, 2, 3)}
ARITHMETIC = ("Add", "Sub", "Mul", "Div")
COPIES = ("Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast", "Slice")


def is_weight(name: str, value: np.ndarray, readers: dict) -> bool:
    """Whether the initializer `name` holding `value` is read as a weight; `readers` maps a tensor's name to its
    (op type, input slot, node outputs) uses."""
    if value.dtype.kind != "f":
        return False
    seen, stack, added = set(), [name], False
    while stack:
        tensor = stack.pop()
        for op, slot, outputs in readers.get(tensor, ()):
            if (op in COPIES and slot == 0 or op == "Concat") and outputs and outputs[0] not in seen:
                seen.add(outputs[0])
                stack.append(outputs[0])
            elif op in WEIGHT_SLOTS and (WEIGHT_SLOTS[op] is None or slot in WEIGHT_SLOTS[op]):
                # a layer's weight memory-mapped from external data stays unread: masks are added, not multiplied
                return isinstance(value, np.memmap) or bool(np.isfinite(value).all())
            elif op in ARITHMETIC and value.size > 1:
                added = True
    return added and bool(np.isfinite(value).all())


def readers_of(graph) -> dict:
    """Tensor name -> [(op type, input slot, outputs)] for every node of a GraphProto reading it."""
    readers: dict = {}
    for node in graph.node:
        for slot, tensor in enumerate(node.input):
            if tensor:
                readers.setdefault(tensor, []).append((node.op_type, slot, list(node.output)))
    return readers
