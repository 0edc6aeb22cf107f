"""The lecture's f(x; a, b) = (ax + b)², traced: e = 25, ∂e/∂a = 10, ∂e/∂b = 10, ∂e/∂x = 30."""

from cgtools.tensor import Tensor


def build():
    a, x, b = Tensor(3.0, name="a", param=True), Tensor(1.0, name="x"), Tensor(2.0, name="b", param=True)
    c = (a * x).named("c")
    d = (c + b).named("d")
    return (d**2).named("e")


if __name__ == "__main__":
    e = build()
    e.backward()
    for t in e.upstream():
        print(f"{t.name or '·':>3} = {t.value}   ∂e/∂{t.name or '·'} = {t.grad}")
    e.graph(name="affine_square", doc="f(x; a, b) = (ax + b)^2").save("affine_square_traced.json")
