"""The secret number game: L(ŷ, y) = (x + θ − y)², and a few steps of gradient descent on θ."""

from cgtools.optim import SGD
from cgtools.tensor import Tensor


def build(theta=None):
    x, y = Tensor(3.0, name="x"), Tensor(7.0, name="y")
    theta = theta or Tensor(1.0, name="θ", param=True)
    guess = (x + theta).named("ŷ")
    return ((guess - y).named("r") ** 2).named("L"), theta


if __name__ == "__main__":
    theta = Tensor(1.0, name="θ", param=True)
    optimizer = SGD([theta], lr=0.1)
    for step in range(10):
        optimizer.zero_grad()
        loss, _ = build(theta)
        loss.backward()
        optimizer.step()
        print(f"step {step}: L = {loss.value:.4f}, θ = {theta.value:.4f}")  # θ → 4, the secret number
