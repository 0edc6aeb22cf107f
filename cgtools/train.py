"""Training a graph's params on data: the lecture's loop (zero_grad, forward, backward, step) over batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


@dataclass
class Step:
    """One step of training: its number (from 0), its epoch (from 1), the batch's loss, the run that made it
    (the params' values before the step and their gradients) and whether it ends its epoch."""

    number: int
    epoch: int
    loss: float
    run: object
    ends_epoch: bool


def train(graph, data: dict, optimizer, *, epochs: int, batch_size: int, seed: int = 0,
          on_step: Callable[[Step], None] | None = None) -> list[float]:
    """Train in place (the graph's param values change); returns each epoch's mean loss. A loss of one value
    per example is averaged over the batch."""
    rng = np.random.default_rng(seed)
    per_epoch = -(-len(next(iter(data.values()))) // batch_size)
    history = []
    for epoch in range(epochs):
        losses = []
        for k, batch in enumerate(batches(data, batch_size, rng)):
            optimizer.zero_grad()
            run = graph.run(batch, seed=batch_mean)  # forward, then backward from the loss
            optimizer.step(run)
            losses.append(float(np.mean(run.values[run.loss])))
            if on_step:
                on_step(Step(epoch * per_epoch + k, epoch + 1, losses[-1], run, k == per_epoch - 1))
        history.append(float(np.mean(losses)))
    return history


def batch_mean(loss: np.ndarray) -> np.ndarray:
    """The seed gradient of a batch's mean loss: 1/n for each of its n values (1 for a scalar loss)."""
    return np.full(loss.shape, 1 / loss.size, loss.dtype)


@dataclass
class History:
    """What training said, step by step: each step's loss and epoch and, after each epoch, the accuracy where
    the graph's loss tells it. The numbers `cgtools train --plot` draws and `--print-steps` prints."""

    losses: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)

    def record(self, step: Step, accuracy: float | None = None) -> None:
        self.losses.append(step.loss)
        self.epochs.append(step.epoch)
        if accuracy is not None:
            self.accuracy.append(accuracy)

    def epoch_means(self) -> list[float]:
        """Each epoch's mean loss, as train() returns them."""
        return [float(np.mean([loss for loss, e in zip(self.losses, self.epochs) if e == epoch]))
                for epoch in sorted(set(self.epochs))]

    def epoch_ends(self) -> list[int]:
        """The number of the step ending each epoch."""
        return [k for k, e in enumerate(self.epochs) if k + 1 == len(self.epochs) or self.epochs[k + 1] != e]


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
