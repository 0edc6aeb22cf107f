"""A standard loss attached to a model's output: cross-entropy against integer class labels over the class axis
(axis 1, as PyTorch's F.cross_entropy), or mean squared error against a float target of the output's shape.

    >>> graph = with_loss(cgtools.load("resnet18.onnx"), read_labels("labels.npy"), "xent", inputs={"x": x})
    >>> graph.run({"x": x}).grads["x"]          # ∂ cross-entropy / ∂x
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgtools.errors import CgError
from cgtools.files import read_npz
from cgtools.graph import Graph
from cgtools.onnx.mapping import fresh_name
from cgtools.parts import Leaf, Node

LOSS_FNS = {"xent": ("SoftmaxCrossEntropyLoss", "cross-entropy"), "mse": ("MSELoss", "mean squared error")}


@dataclass
class AttachedLoss:
    graph: Graph  # the model with the loss node added; its loss is the new tensor
    sentence: str  # what was attached, as the commands say it

    @property
    def loss(self) -> str:
        return self.graph.loss


def read_labels(path) -> np.ndarray:
    """The one array of an .npy or .npz file."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path)
        if len(arrays) != 1:
            raise CgError(f"expected an .npz holding one array, found {len(arrays)}: {', '.join(arrays) or 'none'}",
                          file=str(path))
        return next(iter(arrays.values()))
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CgError(f"cannot read an array (.npy or .npz): {e}", file=str(path)) from None


def with_loss(graph: Graph, labels: np.ndarray, fn: str | None = None, output: str | None = None,
              inputs: dict | None = None, source: str = "labels") -> AttachedLoss:
    """`graph` with `fn` ("xent" or "mse"; by default xent for integer labels, mse for float ones) of `output`
    (by default its one output) against `labels` as its loss. A forward pass on `inputs` checks the labels
    against the output; `source` is how the sentence names the labels."""
    labels = np.asarray(labels)
    fn = fn or ("xent" if labels.dtype.kind in "iu" else "mse")
    if fn not in LOSS_FNS:
        raise CgError(f"expected the loss function xent or mse, found {fn!r}")
    output = output or _one_output(graph)
    value = graph.run(inputs, backward=False).values.get(output)
    if value is None:
        raise CgError(f"the graph has no tensor named {output!r} to attach a loss to")
    labels = (_class_labels if fn == "xent" else _target)(labels, np.asarray(value), output)
    taken = set(graph.leaves) | {t for node in graph.nodes for t in node.outputs} | {n.name for n in graph.nodes}
    label_name, loss_name = fresh_name("labels" if fn == "xent" else "target", taken), fresh_name("loss", taken)
    op, words = LOSS_FNS[fn]
    outputs = [loss_name, fresh_name(f"{loss_name}.log_prob", taken)] if fn == "xent" else [loss_name]
    node = Node(op, [output, label_name], outputs, name=loss_name)
    leaf = Leaf(label_name, "constant", labels, labels.dtype.name, None, f"the {words}'s {label_name}, from {source}")
    attached = Graph([*graph.leaves.values(), leaf], [*graph.nodes, node], [*graph.outputs, loss_name],
                     loss=loss_name, name=graph.name, doc=graph.doc, opset=graph.opset, path=graph.path)
    unit = "label" if fn == "xent" else "element"
    over = f"{labels.size} {unit}{'s' * (labels.size != 1)}"
    return AttachedLoss(attached, f"loss = {words} of {output!r} against {source} (mean over {over})")


def _one_output(graph: Graph) -> str:
    if len(graph.outputs) != 1:
        raise CgError(f"the graph has {len(graph.outputs)} outputs ({', '.join(graph.outputs)}); name the one to "
                      "attach the loss to (--loss TENSOR)")
    return graph.outputs[0]


def _class_labels(labels: np.ndarray, logits: np.ndarray, output: str) -> np.ndarray:
    """Integer class indices, one per example (and position): the logits' shape without the class axis 1."""
    if logits.ndim < 2:
        raise CgError(f"cross-entropy needs logits with a batch and a class axis (N×C…); {output!r} has shape "
                      f"{list(logits.shape)}")
    expected = logits.shape[:1] + logits.shape[2:]
    if labels.dtype.kind not in "iu":
        raise CgError(f"cross-entropy needs integer class labels; found {labels.dtype.name} (use --loss-fn mse for "
                      "a float target)")
    if labels.shape != expected:
        raise CgError(f"labels of shape {list(labels.shape)} do not fit the logits {output!r} of shape "
                      f"{list(logits.shape)}: expected {list(expected)}, one class index per example")
    classes = logits.shape[1]
    wrong = np.flatnonzero((labels < 0) | (labels >= classes))
    if wrong.size:
        at = np.unravel_index(wrong[0], labels.shape)
        raise CgError(f"class index {labels[at]} at {list(map(int, at))} is out of range: {output!r} has {classes} "
                      f"classes (0 to {classes - 1})")
    return labels.astype(np.int64)


def _target(target: np.ndarray, value: np.ndarray, output: str) -> np.ndarray:
    """A float target of the output's shape, in the output's dtype."""
    if target.dtype.kind != "f":
        raise CgError(f"mean squared error needs a float target; found {target.dtype.name} (use --loss-fn xent for "
                      "class labels)")
    if target.shape != value.shape:
        raise CgError(f"the target's shape {list(target.shape)} differs from {output!r}'s {list(value.shape)}")
    return target.astype(value.dtype)
