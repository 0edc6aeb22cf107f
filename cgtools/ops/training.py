"""The optimiser steps of ONNX's training domain (ai.onnx.preview.training): Momentum, Adagrad and Adam.

Each takes a learning rate R and a step count T, then its tensors in groups — every X, then every gradient G,
then every state (V for Momentum, H for Adagrad, V then H for Adam) — and gives the updated X's then the
updated states, each in its input's dtype. A step is not differentiated: these ops have no gradient.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import NoGradient, register_op

DOMAIN = "ai.onnx.preview.training."


def groups(op: str, inputs, per_tensor: int) -> list[tuple]:
    """The inputs (X…, G…, state…) regrouped as one (x, g, state…) tuple per optimised tensor."""
    if not inputs or len(inputs) % per_tensor:
        raise CgError(f"{op} expected its tensors in {per_tensor} groups of the same length (X…, G…, and the "
                      f"states), found {len(inputs)} inputs after R and T")
    n = len(inputs) // per_tensor
    return [tuple(inputs[k * n + i] for k in range(per_tensor)) for i in range(n)]


def in_dtypes(results: list[tuple], tensors: list[tuple]) -> tuple:
    """All new X's, then all of each state, each in the dtype of the tensor it replaces."""
    return tuple(np.asarray(new, old.dtype) for k in range(len(results[0]))
                 for new, old in ((r[k], t[0 if k == 0 else k + 1]) for r, t in zip(results, tensors)))


@register_op(DOMAIN + "Momentum")
class Momentum(NoGradient):
    """stochastic gradient descent with momentum (standard or Nesterov) on X… given G… and velocities V…; no gradient"""

    symbol = "momentum"
    outputs = ("outputs…",)

    @staticmethod
    def forward(ctx, R, T, *inputs, alpha: float, beta: float, mode: Literal["standard", "nesterov"],
                norm_coefficient: float):
        r, t, tensors = float(np.ravel(R)[0]), int(np.ravel(T)[0]), groups("Momentum", inputs, 3)
        results = []
        for x, g, v in tensors:
            g = norm_coefficient * x + g
            v = alpha * v + (beta if t > 0 else 1.0) * g  # the first step takes the whole gradient
            results.append((x - r * (g + alpha * v if mode == "nesterov" else v), v))
        return in_dtypes(results, tensors)


@register_op(DOMAIN + "Adagrad")
class Adagrad(NoGradient):
    """Adagrad on X… given G… and summed squared gradients H…, the rate R / (1 + T·decay_factor); no gradient"""

    symbol = "Adagrad"
    outputs = ("outputs…",)

    @staticmethod
    def forward(ctx, R, T, *inputs, decay_factor: float = 0.0, epsilon: float = 1e-6, norm_coefficient: float = 0.0):
        r, t, tensors = float(np.ravel(R)[0]), int(np.ravel(T)[0]), groups("Adagrad", inputs, 3)
        rate = r / (1 + t * decay_factor)
        results = []
        for x, g, h in tensors:
            g = norm_coefficient * x + g
            h = h + g * g
            results.append((x - rate * g / (np.sqrt(h) + epsilon), h))
        return in_dtypes(results, tensors)


@register_op(DOMAIN + "Adam")
class Adam(NoGradient):
    """Adam on X… given G…, first moments V… and second moments H…, with L2 and decoupled weight decay; no gradient"""

    symbol = "Adam"
    outputs = ("outputs…",)

    @staticmethod
    def forward(ctx, R, T, *inputs, alpha: float = 0.9, beta: float = 0.999, epsilon: float = 1e-6,
                norm_coefficient: float = 0.0, norm_coefficient_post: float = 0.0):
        r, t, tensors = float(np.ravel(R)[0]), int(np.ravel(T)[0]), groups("Adam", inputs, 4)
        rate = r * np.sqrt(1 - beta ** t) / (1 - alpha ** t) if t > 0 else r  # bias correction
        results = []
        for x, g, v, h in tensors:
            g = norm_coefficient * x + g
            v = alpha * v + (1 - alpha) * g
            h = beta * h + (1 - beta) * g * g
            results.append(((1 - norm_coefficient_post) * (x - rate * v / (np.sqrt(h) + epsilon)), v, h))
        return in_dtypes(results, tensors)
