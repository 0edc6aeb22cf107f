"""Training a graph's params on data: the lecture's loop (zero_grad, forward, backward, step) over batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cgtools.errors import CgError, did_you_mean
from cgtools.files import read_npz


def load_data(path, graph) -> dict[str, np.ndarray]:
    """The arrays of an .npz, one per graph input, all with the same number of examples (first axis)."""
    if not Path(path).is_file():
        raise CgError("no such file", file=str(path))
    try:
        data = read_npz(Path(path))
    except CgError as e:
        raise CgError(e.detail, file=str(path)) from None
    inputs = [leaf.name for leaf in graph.leaves_of("input")]
    for key in data:
        if key not in inputs:
            raise CgError(f"array {key!r} is not an input of the graph{did_you_mean(key, inputs)}; its inputs: "
                          f"{', '.join(inputs)}", file=str(path))
    sizes = {key: len(a) for key, a in data.items()}
    if len(set(sizes.values())) != 1:
        raise CgError(f"expected the same number of examples in every array, found {sizes}", file=str(path))
    return data


def batches(data: dict, size: int, rng) -> Iterator[dict]:
    n = len(next(iter(data.values())))
    order = rng.permutation(n)
    for start in range(0, n, size):
        pick = order[start:start + size]
        yield {key: a[pick] for key, a in data.items()}


def train(graph, data: dict, optimizer, *, epochs: int, batch_size: int, seed: int = 0,
          on_batch: Callable[[int, float], None] | None = None) -> list[float]:
    """Train in place (the graph's param values change); returns each epoch's mean loss."""
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        losses = []
        for batch in batches(data, batch_size, rng):
            optimizer.zero_grad()
            run = graph.run(batch)  # forward, then backward from the loss
            optimizer.step(run)
            losses.append(float(run.values[run.loss]))
            if on_batch:
                on_batch(epoch, losses[-1])
        history.append(float(np.mean(losses)))
    return history


def accuracy(graph, data: dict) -> float | None:
    """The share of examples classified right, when the graph's loss says how: the argmax of a
    SoftmaxCrossEntropyLoss's scores, or a sigmoid output thresholded at ½ under MSELoss."""
    run = graph.run(data, backward=False)
    for node in graph.nodes:
        if node.op == "SoftmaxCrossEntropyLoss":
            scores, labels = run.values[node.inputs[0]], run.values[node.inputs[1]]
            return float(np.mean(scores.argmax(axis=1) == labels))
        if node.op == "MSELoss" and graph.producers.get(node.inputs[0], None) is not None \
                and graph.producers[node.inputs[0]].op == "Sigmoid":
            guess, target = run.values[node.inputs[0]], run.values[node.inputs[1]]
            return float(np.mean((guess > 0.5) == (target > 0.5)))
    return None
