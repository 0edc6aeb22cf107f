"""Optimisers over a graph's params or traced tensors: SGD (with momentum) and Adam, step for step as
torch.optim computes them, so a lecture's training loop reads the same:

    optimizer.zero_grad(); loss = net(batch); loss.backward(); optimizer.step()

With a loaded graph, `run = graph.run(batch)` plays forward and backward, and `optimizer.step(run)` takes the
gradients from that run.
"""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.graph import Graph


class Optimizer:
    def __init__(self, params, lr: float):
        if isinstance(params, Graph):
            params = params.leaves_of("param")
        self.params = list(params)
        if not self.params:
            raise CgError("nothing to optimise: the graph has no params (or no tensors were given)")
        self.lr = float(lr)
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            if hasattr(p, "grad"):
                p.grad = None

    def step(self, run=None) -> None:
        """Update every param from its gradient: `run.grads` for a graph's params, else each tensor's `.grad`."""
        for p, state in zip(self.params, self.state):
            grad = run.grads.get(p.name) if run is not None else p.grad
            if grad is None:
                continue
            p.value = self.update(p.value, np.asarray(grad, p.value.dtype), state)


class SGD(Optimizer):
    """p ← p − lr·g, or with momentum μ: b ← μ·b + g, p ← p − lr·b (torch.optim.SGD without dampening)."""

    def __init__(self, params, lr: float, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = float(momentum)

    def update(self, value, grad, state):
        if self.momentum:
            buf = state.get("momentum")
            state["momentum"] = grad.copy() if buf is None else self.momentum * buf + grad
            grad = state["momentum"]
        return value - self.lr * grad


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam: m, v running moments of g and g²."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        self.betas, self.eps = betas, float(eps)

    def update(self, value, grad, state):
        b1, b2 = self.betas
        t = state["t"] = state.get("t", 0) + 1
        m = state["m"] = b1 * state.get("m", 0) + (1 - b1) * grad
        v = state["v"] = b2 * state.get("v", 0) + (1 - b2) * grad * grad
        denominator = np.sqrt(v) / np.sqrt(1 - b2**t) + self.eps
        return value - (self.lr / (1 - b1**t)) * m / denominator


