"""The two-layer MLP of examples/mlp_xent.json, traced from its own weights: same loss, same gradients."""

import json
from pathlib import Path

import numpy as np

from cgtools.tensor import Tensor

GRAPH = Path(__file__).resolve().parent.parent / "mlp_xent.json"


def build():
    doc = json.loads(GRAPH.read_text())
    value = {t["name"]: np.array(t["value"]) for t in doc["inputs"] + doc["params"]}
    X, labels = Tensor(value["X"], name="X"), Tensor(value["labels"].astype(np.int64), name="labels")
    W1, b1, W2, b2 = (Tensor(value[n], name=n, param=True) for n in ("W1", "b1", "W2", "b2"))
    h = ((X @ W1).named("XW1") + b1).named("z1").relu().named("h")
    logits = ((h @ W2).named("hW2") + b2).named("logits")
    return Tensor.apply("SoftmaxCrossEntropyLoss", logits, labels).named("L")


if __name__ == "__main__":
    L = build()
    L.backward()
    print(f"L = {L.value:.4f}")
