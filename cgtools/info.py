"""A graph at a glance: its ops, its parameters and their bytes, its inputs and outputs, what never reaches an
output, which params the loss does not depend on, and the multiply-accumulates of its Conv, Gemm and MatMul."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from cgtools.graph import Graph

MAC_OPS = ("Conv", "Gemm", "MatMul")


@dataclass
class GraphInfo:
    name: str
    opset: int | None
    ops: Counter
    params: int  # how many param tensors
    param_elements: int
    param_bytes: int
    inputs: list  # [name, dtype, shape]
    outputs: list  # [name, dtype, shape], from a forward run where one could be made
    unused: list[str]  # nodes none of whose outputs reach an output or the loss
    without_gradient: list[str]  # params the loss does not depend on
    macs: int | None  # multiply-accumulates of Conv, Gemm and MatMul, from a forward run

    def report(self) -> str:
        """As `cgtools info` prints it."""
        lines = [f"graph {self.name or '(unnamed)'}" + (f", opset {self.opset}" if self.opset else ""),
                 f"{sum(self.ops.values())} nodes: " + ", ".join(f"{op} {n}" for op, n in self.ops.most_common()),
                 f"{self.params} params: {self.param_elements:,} elements, {_bytes(self.param_bytes)}"]
        lines += [f"input {name}: {dtype} {shape}" for name, dtype, shape in self.inputs]
        lines += [f"output {name}: {dtype} {shape}" for name, dtype, shape in self.outputs]
        if self.macs is not None:
            lines.append(f"multiply-accumulates (Conv, Gemm, MatMul): {self.macs:,}")
        if self.unused:
            lines.append(f"nodes reaching no output: {', '.join(self.unused)}")
        if self.without_gradient:
            lines.append(f"params the loss does not depend on: {', '.join(self.without_gradient)}")
        return "\n".join(lines) + "\n"


def _bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def info(graph: Graph, run=None) -> GraphInfo:
    """What `graph` is made of; with a forward `run`, its outputs' shapes and its multiply-accumulates."""
    params = [leaf for leaf in graph.leaves_of("param") if leaf.value is not None]
    outputs = [[name, *_described(graph, run, name)] for name in graph.outputs]
    return GraphInfo(graph.name, graph.opset, Counter(node.op for node in graph.nodes), len(params),
                     sum(int(p.value.size) for p in params), sum(int(p.value.nbytes) for p in params),
                     [[leaf.name, *_described(graph, run, leaf.name)] for leaf in graph.leaves_of("input")], outputs,
                     unused_nodes(graph), params_without_gradient(graph),
                     None if run is None else multiply_accumulates(graph, run.values))


def _described(graph: Graph, run, name: str) -> list:
    if run is not None and name in run.values:
        return [str(run.values[name].dtype), list(run.values[name].shape)]
    leaf = graph.leaves.get(name)
    if leaf is not None:
        return [leaf.dtype or (str(leaf.value.dtype) if leaf.value is not None else "?"),
                list(leaf.shape if leaf.shape is not None else leaf.dims or np.shape(leaf.value))]
    return ["?", "?"]


def upstream(graph: Graph, tensors) -> set[str]:
    """Every tensor the given ones are computed from, themselves included (without recursion)."""
    producers, seen, stack = graph.producers, set(), list(tensors)
    while stack:
        tensor = stack.pop()
        if tensor and tensor not in seen:
            seen.add(tensor)
            if tensor in producers:
                stack.extend(producers[tensor].inputs)
    return seen


def unused_nodes(graph: Graph) -> list[str]:
    needed = upstream(graph, [*graph.outputs, *([graph.loss] if graph.loss else [])])
    return [node.name for node in graph.nodes if not needed & set(node.outputs)]


def params_without_gradient(graph: Graph) -> list[str]:
    loss = graph.loss or (graph.outputs[0] if len(graph.outputs) == 1 else None)
    if loss is None:
        return []
    reached = upstream(graph, [loss])
    return [leaf.name for leaf in graph.leaves_of("param") if leaf.name not in reached]


def multiply_accumulates(graph: Graph, values) -> int:
    """Conv: each output element takes (input channels / group) × kernel elements; Gemm and MatMul: each output
    element takes the shared dimension K."""
    total = 0
    for node in graph.nodes:
        if node.op not in MAC_OPS or node.outputs[0] not in values:
            continue
        out = values[node.outputs[0]]
        if node.op == "Conv":
            weight = values[node.inputs[1]]
            total += out.size * int(np.prod(weight.shape[1:]))
        else:
            a = values[node.inputs[0]]
            k = (a.shape[0] if node.attrs.get("transA") else a.shape[-1]) if a.ndim else 1
            total += out.size * int(k)
    return total
