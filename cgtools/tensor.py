"""The lecture's API in Python: tensors that remember how they were made, `.backward()`, `.grad`.

    >>> a, x, b = Tensor(3.0, name="a", param=True), Tensor(1.0, name="x"), Tensor(2.0, name="b", param=True)
    >>> e = ((a * x).named("c") + b).named("d") ** 2
    >>> e.backward(); a.grad, x.grad                       # 10, 30
    >>> e.graph().save("affine.json")                      # the same graph, to run, render or convert

Ops come from the registry the interpreter uses, so one definition serves traced tensors and JSON graphs;
`tensor_op` turns an Operation written the lecture's way into a function on tensors.
"""

from __future__ import annotations

import itertools

import numpy as np

from cgtools.backward import BackwardStep, backpropagate, described, failure_words, seed_gradient
from cgtools.errors import CgError
from cgtools.graph import Graph
from cgtools.ops import Context, get_op, register_op
from cgtools.ops.base import bound_forward, check_attrs
from cgtools.values import differentiable, encode


class Tensor:
    """A value, its gradient after `backward()`, and the op and inputs that made it (none for a leaf)."""

    _names = itertools.count(1)

    def __init__(self, value, name: str | None = None, *, param: bool = False):
        array = np.asarray(value)
        if array.dtype.kind in "iu" and not isinstance(value, np.ndarray):
            array = array.astype(np.float64)  # plain numbers are real-valued, as in the graph format
        self.value = array
        self.name, self.param = name, param
        self.grad: np.ndarray | None = None
        self.op, self.inputs, self.attrs, self.ctx = None, (), {}, None
        self.constant = False

    def __repr__(self):
        made = f", made by {self.op.op_type}" if self.op else ""
        return f"Tensor({self.value!r}{', name=' + repr(self.name) if self.name else ''}{made})"

    def named(self, name: str) -> Tensor:
        """Give this tensor a name, as the diagram and the saved graph will call it."""
        self.name = name
        return self

    # ---- building: every operation runs at once and remembers itself -------------------------------------
    @classmethod
    def apply(cls, op_type: str, *inputs, **attrs) -> Tensor:
        op = get_op(op_type)
        attrs = check_attrs(op, attrs)  # as a graph's are at load: an unknown or mistyped attribute is refused
        args = [x if isinstance(x, Tensor) else constant(x) for x in inputs]
        ctx = Context()
        ctx.needs_grad = tuple(differentiable(x.value.dtype) and not x.constant for x in args)
        values = [x.value for x in args]
        try:
            value = bound_forward(op, attrs)(ctx, *values)
        except CgError as e:
            raise e.located(where=op_type) from None
        except Exception as e:  # numpy's own complaint, in the op's terms, as a graph's forward says it
            raise CgError(f"forward failed on inputs {described(values, range(len(values)))}: {failure_words(e)}",
                          where=op_type) from None
        out = cls(value[0] if isinstance(value, tuple) else value)  # of several outputs, a tensor keeps the first
        out.op, out.inputs, out.attrs, out.ctx = op, tuple(args), attrs, ctx
        return out

    def __add__(self, other): return Tensor.apply("Add", self, other)
    def __radd__(self, other): return Tensor.apply("Add", other, self)
    def __sub__(self, other): return Tensor.apply("Sub", self, other)
    def __rsub__(self, other): return Tensor.apply("Sub", other, self)
    def __mul__(self, other): return Tensor.apply("Mul", self, other)
    def __rmul__(self, other): return Tensor.apply("Mul", other, self)
    def __truediv__(self, other): return Tensor.apply("Div", self, other)
    def __rtruediv__(self, other): return Tensor.apply("Div", other, self)
    def __pow__(self, other): return Tensor.apply("Pow", self, other)
    def __rpow__(self, other): return Tensor.apply("Pow", other, self)
    def __matmul__(self, other): return Tensor.apply("MatMul", self, other)
    def __rmatmul__(self, other): return Tensor.apply("MatMul", other, self)
    def __neg__(self): return Tensor.apply("Neg", self)

    def relu(self): return Tensor.apply("Relu", self)
    def sigmoid(self): return Tensor.apply("Sigmoid", self)
    def tanh(self): return Tensor.apply("Tanh", self)
    def exp(self): return Tensor.apply("Exp", self)
    def log(self): return Tensor.apply("Log", self)
    def softmax(self, axis: int = -1): return Tensor.apply("Softmax", self, axis=axis)
    def sum(self): return Tensor.apply("ReduceSum", self, keepdims=0)
    def mean(self): return Tensor.apply("ReduceMean", self, keepdims=0)

    # ---- backward -------------------------------------------------------------------------------------------
    def backward(self, grad=None, *, accumulate: bool = False) -> None:
        """Backpropagate from this tensor (a scalar, or give `grad`) to every tensor above it.

        Gradients start from zero each time, so calling it twice gives the same `.grad`, not double;
        `accumulate=True` adds to the gradients already there instead, as PyTorch does. The pass is the
        interpreter's own (backward.backpropagate), over the tensors' slots in reverse topological order."""
        if grad is None and self.value.size != 1:
            raise CgError(f"backward() starts from a scalar; this tensor has shape {list(self.value.shape)}: "
                          "sum it, or give backward(grad=…) of that shape")
        order = self.upstream()  # this tensor last
        if not accumulate:
            for t in order:
                t.grad = None
        slot = {id(t): k for k, t in enumerate(order)}
        steps = [BackwardStep(k, t.op.backward, tuple((pos, slot[id(x)]) for pos, x in enumerate(t.inputs)
                                                      if t.ctx.needs_grad[pos]),
                              (k,), t.ctx.needs_grad, f"{t.op.op_type} making {t.name or 'a tensor'}")
                 for k, t in reversed(list(enumerate(order))) if t.op is not None and any(t.ctx.needs_grad)]
        grads = [None] * len(order)  # this pass's gradients
        grads[-1] = np.ones_like(self.value) if grad is None else seed_gradient(self.value, self.name or "", grad)
        backpropagate(steps, [t.ctx for t in order], [t.value for t in order], grads)
        for t, g in zip(order, grads):
            if g is not None and not t.constant:
                t.grad = g if t.grad is None else t.grad + g

    def zero_grad(self) -> None:
        """Forget the gradients of this tensor and of every tensor above it."""
        for t in self.upstream():
            t.grad = None

    def upstream(self) -> list[Tensor]:
        """This tensor and everything it was made from, each after its inputs (found without recursion)."""
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            t, expanded = stack.pop()
            if expanded:
                order.append(t)
            elif id(t) not in seen:
                seen.add(id(t))
                stack.append((t, True))
                stack.extend((x, False) for x in reversed(t.inputs) if id(x) not in seen)
        return order

    # ---- to a graph -----------------------------------------------------------------------------------------
    def graph(self, name: str = "traced", doc: str = ""):
        """The cgtools Graph that computes this tensor: leaves become inputs, params or constants."""
        order = self.upstream()
        names: dict[int, str] = {}
        taken = {t.name for t in order if t.name}
        counters = {"leaf": itertools.count(1), "op": itertools.count(1)}
        used: set[str] = set()
        for t in order:
            label = t.name
            if label is None and t.constant and t.value.size == 1:
                label = repr(float(t.value)).removesuffix(".0")  # the 2 of `d ** 2` is called "2"
            while label is None or label in used:
                label = f"{'x' if t.op is None else 't'}{next(counters['leaf' if t.op is None else 'op'])}"
                label = None if label in taken else label
            names[id(t)] = label
            used.add(label)
        leaves = {"inputs": [], "params": [], "constants": []}
        nodes = []
        for t in order:
            if t.op is None:
                kind = "constants" if t.constant else "params" if t.param else "inputs"
                leaves[kind].append({"name": names[id(t)], "value": encode(t.value, name=names[id(t)])})
            else:
                node = {"op": t.op.op_type, "inputs": [names[id(x)] for x in t.inputs], "outputs": [names[id(t)]]}
                if t.attrs:
                    node["attrs"] = dict(t.attrs)
                nodes.append(node)
        return Graph.from_dict({"cgtools": "1.0", "name": name, **({"doc": doc} if doc else {}),
                                **{k: v for k, v in leaves.items() if v}, "nodes": nodes, "outputs": [names[id(self)]]})


def constant(value) -> Tensor:
    """A plain number used in an operation (the 2 of `2 + t`): a constant, which gets no gradient."""
    t = Tensor(value, name=None)
    t.constant = True
    return t


def tensor_op(cls):
    """The lecture's decorator: register an Operation (op type = class name) and return a function applying
    it to tensors. The op is then usable in JSON graphs by that name, too."""
    register_op(cls.__name__)(cls)

    def apply(*inputs, **attrs) -> Tensor:
        return Tensor.apply(cls.__name__, *inputs, **attrs)

    apply.__name__, apply.__doc__, apply.op = cls.__name__, cls.__doc__, cls
    return apply
