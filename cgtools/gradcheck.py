"""Gradient checking: every float input's and param's analytic gradient against central finite differences.

The check runs on a float64 copy of the graph (every float leaf cast to float64, whatever the graph
declares), so the differences measure the backward code, not the rounding of float32:

    >>> report = gradcheck(cgtools.load("examples/affine_square.json"))
    >>> report.ok, report.tensors[0].name
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from cgtools.errors import CgError, LossNotScalar, did_you_mean
from cgtools.export.labels import format_shape
from cgtools.export.table import strict_json, text_table
from cgtools.graph import Graph
from cgtools.interpreter import leaf_value, loss_name, refuse_unknown_leaves
from cgtools.values import differentiable

TINY = np.finfo(np.float64).tiny  # the floor of the relative error's denominator


@dataclass
class TensorCheck:
    """One tensor's check. The worst element is the one furthest past its tolerance (or nearest to it):
    its index, analytic and numeric gradient. `max_abs_error` and `max_rel_error` are over the checked
    elements, the relative error being |a−n| / max(|a|, |n|, tiny)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    analytic: float
    numeric: float
    passed: bool
    excess: float  # the worst element's |a−n| / (atol + rtol·|n|): over 1 fails

    def place(self) -> str:
        return "" if not self.worst_index else f"[{', '.join(map(str, self.worst_index))}]"


@dataclass
class GradcheckReport:
    """What `gradcheck` found: one row per float input and param, worst first."""

    loss: str
    tensors: list[TensorCheck]
    eps: float
    rtol: float
    atol: float
    readers: dict  # tensor name -> the nodes that read it, as "Op 'name'"

    @property
    def ok(self) -> bool:
        return all(t.passed for t in self.tensors)

    def table(self) -> str:
        """The report as aligned text: a row per tensor, worst first."""
        rows = [("tensor", "kind", "shape", "checked", "max |a−n|", "max rel", "worst at", "result")]
        rows += [(t.name, t.kind, format_shape(t.shape), str(t.checked), f"{t.max_abs_error:.2e}",
                  f"{t.max_rel_error:.2e}", t.place() or "—", "ok" if t.passed else "FAIL") for t in self.tensors]
        return text_table(rows)

    def summary(self) -> str:
        """One sentence: how many tensors pass, or which fail and the worst element of the worst."""
        failed = [t for t in self.tensors if not t.passed]
        if not failed:
            count = f"{len(self.tensors)} tensor" + ("" if len(self.tensors) == 1 else "s")
            verb = "passes" if len(self.tensors) == 1 else "pass"
            return f"{count} {verb} (eps {self.eps:g}, rtol {self.rtol:g}, atol {self.atol:g})"
        worst = failed[0]
        read_by = ", ".join(self.readers.get(worst.name, [])) or "no node"
        return (f"{len(failed)} of {len(self.tensors)} tensors fail; worst {worst.kind} {worst.name!r} "
                f"(read by {read_by}) at {worst.place() or 'its only element'}: analytic {worst.analytic:.6g}, "
                f"numeric {worst.numeric:.6g} (max relative error {worst.max_rel_error:.2g})")

    def to_dict(self) -> dict:
        """The report as plain data for JSON (NaN and infinities as strings)."""
        rows = [{**asdict(t), "shape": list(t.shape), "worst_index": None if t.worst_index is None
                 else list(t.worst_index)} for t in self.tensors]
        return strict_json({"ok": self.ok, "loss": self.loss, "eps": self.eps, "rtol": self.rtol,
                            "atol": self.atol, "tensors": rows})


def gradcheck(graph: Graph, inputs: dict | None = None, *, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8, max_elements: int = 64, seed: int = 0,
              tensors: list[str] | None = None) -> GradcheckReport:
    """Compare the gradient `graph.run` computes for every float input and param (or only `tensors`) with
    central finite differences (L(x + eps·eᵢ) − L(x − eps·eᵢ)) / 2eps, in float64. A tensor of more than
    `max_elements` elements is checked on a random sample of that many (drawn with a numpy Generator seeded by
    `seed`). An element fails when |a − n| > atol + rtol·|n|."""
    if not eps > 0 or max_elements < 1:
        raise CgError(f"gradcheck needs eps > 0 and max_elements ≥ 1, found eps {eps}, max_elements {max_elements}")
    wide = float64_copy(graph, inputs or {})
    checkable = [leaf.name for leaf in wide.leaves.values()
                 if leaf.kind in ("input", "param") and differentiable(leaf.value.dtype)]
    for name in tensors or ():
        if name not in checkable:
            listed = ", ".join(checkable[:12]) + (", …" if len(checkable) > 12 else "")
            raise CgError(f"no float input or param {name!r} to check{did_you_mean(name, checkable)}; "
                          f"expected one of {listed}")
    loss = loss_name(wide)
    try:
        run = wide.run()
    except LossNotScalar:
        shape = list(wide.run(backward=False).values[loss].shape)
        raise CgError(f"gradcheck needs a scalar loss, but {loss!r} has shape {shape}; pick a scalar tensor as "
                      "the graph's \"loss\" or reduce this one to a scalar (ReduceSum, ReduceMean)") from None
    rng = np.random.default_rng(seed)
    checks = []
    for name in checkable:
        leaf = wide.leaves[name]
        if tensors is None or name in tensors:
            indices = sampled(leaf.value.size, max_elements, rng)
            numeric = finite_differences(wide, loss, leaf.name, leaf.value, indices, eps)
            analytic = np.asarray(run.grads.get(leaf.name, np.zeros_like(leaf.value)), np.float64)
            checks.append(tensor_check(leaf, analytic.reshape(-1)[indices], numeric, indices, rtol, atol))
    checks.sort(key=lambda t: (t.passed, -t.excess))
    readers = {}
    for node in graph.nodes:
        for name in dict.fromkeys(node.inputs):
            readers.setdefault(name, []).append(f"{node.op} {node.name!r}")
    return GradcheckReport(loss, checks, eps, rtol, atol, readers)


def float64_copy(graph: Graph, inputs: dict) -> Graph:
    """The graph with the given values in its leaves and every float leaf cast to float64."""
    refuse_unknown_leaves(graph, inputs)
    leaves = []
    for leaf in graph.leaves.values():
        value = leaf_value(leaf, inputs)  # an input with no value is refused here, by name
        if differentiable(value.dtype):
            leaves.append(replace(leaf, value=value.astype(np.float64), dtype="float64"))
        else:
            leaves.append(replace(leaf, value=value))
    return Graph(leaves, graph.nodes, graph.outputs, loss=graph.loss, name=graph.name, doc=graph.doc,
                 opset=graph.opset, path=graph.path)


def sampled(size: int, max_elements: int, rng: np.random.Generator) -> np.ndarray:
    """Every flat index up to `max_elements` elements, else that many drawn without replacement, in order."""
    if size <= max_elements:
        return np.arange(size)
    return np.sort(rng.choice(size, max_elements, replace=False))


def finite_differences(graph: Graph, loss: str, name: str, value: np.ndarray, indices, eps: float) -> np.ndarray:
    """(L(x + eps·eᵢ) − L(x − eps·eᵢ)) / 2eps for each flat index i of the leaf `name`, forward runs only."""
    flat = value.reshape(-1)
    numeric = np.empty(len(indices))
    with np.errstate(all="ignore"):  # a NaN shows in the report as a failure, not as numpy's warning
        for k, i in enumerate(indices):
            losses = []
            for step in (eps, -eps):
                moved = flat.copy()
                moved[i] += step
                run = graph.run({name: moved.reshape(value.shape)}, backward=False)
                losses.append(float(np.asarray(run.values[loss], np.float64).reshape(-1)[0]))
            numeric[k] = (losses[0] - losses[1]) / (2 * eps)
    return numeric


def tensor_check(leaf, analytic: np.ndarray, numeric: np.ndarray, indices, rtol: float, atol: float) -> TensorCheck:
    """One tensor's row: its errors, its worst element, and whether every element is within tolerance."""
    shape = tuple(leaf.value.shape)
    if not len(indices):
        return TensorCheck(leaf.name, leaf.kind, shape, 0, 0.0, 0.0, None, 0.0, 0.0, True, 0.0)
    with np.errstate(all="ignore"):
        error = np.abs(analytic - numeric)
        relative = error / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), TINY)
        excess = error / (atol + rtol * np.abs(numeric))
    excess = np.where(np.isnan(excess), np.inf, excess)  # a NaN on either side fails
    k = int(np.argmax(excess))
    worst = tuple(int(i) for i in np.unravel_index(indices[k], shape))
    return TensorCheck(leaf.name, leaf.kind, shape, len(indices), float(np.max(error)), float(np.max(relative)),
                       worst, float(analytic[k]), float(numeric[k]), bool(np.all(excess <= 1)), float(excess[k]))
