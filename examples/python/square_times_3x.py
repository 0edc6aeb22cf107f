"""L(x) = x² · 3x at x = 2: x feeds two nodes, and its gradient adds up over both (24 + 12 = 36)."""

from cgtools.tensor import Tensor


def build():
    x = Tensor(2.0, name="x")
    f = (x**2).named("f")
    g = (3 * x).named("g")
    return (f * g).named("L")


if __name__ == "__main__":
    L = build()
    L.backward()
    print(f"L = {L.value}, ∂L/∂x = {L.inputs[0].inputs[0].grad}")
