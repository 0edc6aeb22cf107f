"""A perceptron: ŷ = σ(w·x + b)."""

import numpy as np

from cgtools.tensor import Tensor


def build():
    x = Tensor(np.array([1.0, 2.0]), name="x")
    w, b = Tensor(np.array([0.5, -0.25]), name="w", param=True), Tensor(0.1, name="b", param=True)
    u = (w @ x).named("u")
    z = (u + b).named("z")
    return z.sigmoid().named("ŷ")


if __name__ == "__main__":
    y = build()
    y.backward()
    print(f"ŷ = {y.value:.4f}")
