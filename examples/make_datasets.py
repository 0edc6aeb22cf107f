"""Make the small datasets and the untrained graphs the training examples use (deterministic; run from the
project root: `python examples/make_datasets.py`). Nothing is downloaded."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def blobs(rng, n=200):
    """Two Gaussian blobs: linearly separable, for logistic regression."""
    labels = rng.integers(0, 2, n)
    centres = np.array([[-1.0, -0.5], [1.0, 0.8]])
    return centres[labels] + rng.normal(0, 0.6, (n, 2)), labels


def moons(rng, n=300):
    """Two interleaving half circles: not linearly separable, for an MLP."""
    labels = rng.integers(0, 2, n)
    angle = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(angle), np.sin(angle)], 1)
    lower = np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], 1)
    return np.where(labels[:, None] == 0, upper, lower) + rng.normal(0, 0.12, (n, 2)), labels


def secret_rounds(n=8, secret=4.0):
    """The secret-number game's rounds: the number x said and the answer y = x + secret; training the guess
    ŷ = x + θ walks θ to the secret."""
    x = np.arange(n, dtype=float)
    return x, x + secret


def dense(rng, fan_in, fan_out):
    return np.round(rng.normal(0, 1 / np.sqrt(fan_in), (fan_in, fan_out)), 3).tolist()


def graph(name, doc, X, labels, params, nodes):
    return {"cgtools": "1.0", "name": name, "doc": doc,
            "inputs": [{"name": "X", "value": X[:4].round(3).tolist()},
                       {"name": "labels", "dtype": "int64", "value": labels[:4].tolist()}],
            "params": [{"name": k, "value": v} for k, v in params.items()], "nodes": nodes, "outputs": ["L"]}


def main():
    rng = np.random.default_rng(282)
    X, labels = blobs(rng)
    np.savez(HERE / "data" / "blobs.npz", X=X, labels=labels)
    logistic = graph("logistic_regression", "softmax regression on two blobs: L = xent(X W + b, labels)", X, labels,
                     {"W": dense(rng, 2, 2), "b": [0.0, 0.0]},
                     [{"op": "MatMul", "inputs": ["X", "W"], "outputs": ["XW"]},
                      {"op": "Add", "inputs": ["XW", "b"], "outputs": ["logits"]},
                      {"op": "SoftmaxCrossEntropyLoss", "inputs": ["logits", "labels"], "outputs": ["L"]}])
    X, labels = moons(rng)
    np.savez(HERE / "data" / "moons.npz", X=X, labels=labels)
    mlp = graph("mlp_moons", "MLP 2-16-2 on two moons: L = xent(tanh(X W1 + b1) W2 + b2, labels)", X, labels,
                {"W1": dense(rng, 2, 16), "b1": [0.0] * 16, "W2": dense(rng, 16, 2), "b2": [0.0, 0.0]},
                [{"op": "MatMul", "inputs": ["X", "W1"], "outputs": ["XW1"]},
                 {"op": "Add", "inputs": ["XW1", "b1"], "outputs": ["z1"]},
                 {"op": "Tanh", "inputs": ["z1"], "outputs": ["h"]},
                 {"op": "MatMul", "inputs": ["h", "W2"], "outputs": ["hW2"]},
                 {"op": "Add", "inputs": ["hW2", "b2"], "outputs": ["logits"]},
                 {"op": "SoftmaxCrossEntropyLoss", "inputs": ["logits", "labels"], "outputs": ["L"]}])
    x, y = secret_rounds()
    np.savez(HERE / "data" / "secret_number.npz", x=x, y=y)
    for doc in (logistic, mlp):
        (HERE / f"{doc['name']}.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
