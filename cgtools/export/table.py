"""A run as text: every tensor's value and gradient as a table, or as JSON that every parser reads."""

from __future__ import annotations

import json
import math

import numpy as np

from cgtools.errors import terminal_safe
from cgtools.export.labels import format_number, format_shape, format_tensor

STATS = ("min", "max", "mean", "std", "zeros", "nan", "inf")
TABLE_ROWS = 1_000  # tensors; past this a table shows the ends of the graph (shown_tensors), not its every row


def shown_tensors(run, everything: bool = False) -> list[str]:
    """The tensors a table shows, in the order the run computed them: every one up to TABLE_ROWS (or when
    `everything` is asked); past that, what an engineer reads first on a huge graph: its inputs, outputs and
    loss, and its params unless they are that many too."""
    names = list(run.values)
    if everything or len(names) <= TABLE_ROWS:
        return names
    graph = run.graph
    ends = {*graph.outputs, run.loss}
    kinds = {"input", "param"} if len(graph.leaves_of("param")) <= TABLE_ROWS else {"input"}
    return [name for name in names if name in ends or (name in graph.leaves and graph.leaves[name].kind in kinds)]


def run_table(run, precision: int = 4, names: list[str] | None = None) -> str:
    """One row per tensor in `names` (by default all) in the order the run computed them: its name, where it
    comes from (input, param, constant or the op that made it), its shape, its value and its gradient (blank for
    a tensor without one)."""
    graph = run.graph
    names = list(run.values) if names is None else names
    wanted = set(names)  # a huge graph's table shows a few of its tensors: look up only theirs
    kinds = {name: leaf.kind for name, leaf in graph.leaves.items() if name in wanted}
    kinds.update((out, n.op) for n in graph.nodes for out in n.outputs if out in wanted)
    grad_head = f"∂{run.loss}/∂·" if run.loss else "gradient"
    rows = [("tensor", "from", "shape", "value", grad_head)]
    for name in names:
        value, grad = run.values[name], run.grads.get(name)
        rows.append((name, kinds[name], format_shape(value.shape), format_tensor(value, precision),
                     "" if grad is None else format_tensor(grad, precision)))
    return text_table(rows)


def tensor_stats(array) -> dict:
    """What an engineer asks of a tensor: min, max, mean and std of its finite elements, the fraction that are
    zero (dead ReLUs), and how many are NaN or infinite."""
    a = np.asarray(array)
    finite = a[np.isfinite(a)] if a.dtype.kind in "fc" else a.astype(np.float64)
    numbers = finite.astype(np.float64) if finite.size else np.zeros(1)
    return {"min": float(numbers.min()), "max": float(numbers.max()), "mean": float(numbers.mean()),
            "std": float(numbers.std()), "zeros": float(np.mean(a == 0)) if a.size else 0.0,
            "nan": int(np.isnan(a).sum()) if a.dtype.kind in "fc" else 0,
            "inf": int(np.isinf(a).sum()) if a.dtype.kind in "fc" else 0}


def stats_table(run, precision: int = 4, names: list[str] | None = None) -> str:
    """One row per tensor's value, and one per gradient (`∂L/∂name`), of the tensors in `names` (by default
    all) in the order the run computed them: dtype, shape and tensor_stats."""
    rows = [("tensor", "dtype", "shape", *STATS)]
    for kind, arrays in (("", run.values), (f"∂{run.loss}/∂", run.grads)):
        for name in arrays if names is None else [n for n in names if n in arrays]:
            array = arrays[name]
            s = tensor_stats(array)
            cells = [format_number(s[k], precision) for k in ("min", "max", "mean", "std")]
            rows.append((kind + name, str(array.dtype), format_shape(array.shape), *cells,
                         f"{s['zeros']:.0%}", str(s["nan"]), str(s["inf"])))
    return text_table(rows)


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells as aligned text, the first row a header ruled off below (the last column unpadded); control
    characters in the cells (tensor names are the user's) written as escapes."""
    rows = [tuple(terminal_safe(cell) for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    lines.insert(1, "  ".join("─" * w for w in widths) + "  " + "─" * len(rows[0][-1]))
    return "\n".join(line.rstrip() for line in lines)


def run_json(run) -> str:
    """`{"values": {...}, "grads": {...}}`, arrays as nested lists, NaN and infinities as strings."""
    doc = {"values": {k: v.tolist() for k, v in run.values.items()},
           "grads": {k: v.tolist() for k, v in run.grads.items()}}
    return json.dumps(strict_json(doc), indent=2)


def strict_json(doc):
    """JSON that every parser reads: NaN and infinities written as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(doc, dict):
        return {k: strict_json(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [strict_json(v) for v in doc]
    if isinstance(doc, float) and not math.isfinite(doc):
        return "NaN" if math.isnan(doc) else "Infinity" if doc > 0 else "-Infinity"
    return doc
