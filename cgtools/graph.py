"""The graph model: leaves and nodes (parts.py) in topological order, and its networkx form.

A Graph runs through the engine below it (`run`, `validate`) and reads and writes its own JSON format
(json_format.py, below it too). Drawing belongs to the layers above: a notebook reaches it through
notebook.py.
"""

from __future__ import annotations

import heapq
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

from cgtools import checks, interpreter, json_format, notebook
from cgtools.compiled import CompilePolicy
from cgtools.errors import CgError, did_you_mean
from cgtools.limits import MAX_TOTAL_ELEMENTS, checked_size

if TYPE_CHECKING:  # networkx takes a fifth of a second to import: only what draws or converts a graph needs it
    import networkx as nx
from cgtools.memory import collector_paused
from cgtools.ops import REGISTRY
from cgtools.parts import LEAF_KINDS, Leaf, Node

UNSIZED_DIM = 1  # the size random inputs give a symbolic dimension no --dim names


class Graph:
    """A computation graph. Treat it as immutable: it keeps its order and its engine's plan."""

    def __init__(self, leaves: list[Leaf], nodes: list[Node], outputs: list[str], *, loss: str | None = None,
                 name: str = "", doc: str = "", opset: int | None = None, path: str | None = None, outer=()):
        self.leaves = {leaf.name: leaf for leaf in leaves}
        self.outer = tuple(outer)  # of a subgraph: the inputs that are the enclosing graph's tensors
        for node in nodes:  # a subgraph attribute given as a document (JSON) becomes a Graph
            op = REGISTRY.get(node.op)
            for key, value in node.attrs.items():
                if isinstance(value, dict) and op and op.spec.attrs.get(key, ("",))[0] == "graph":
                    node.attrs[key] = Graph.from_dict(value)
        self.nodes, self.outputs, self.loss = nodes, list(outputs), loss
        self.name, self.doc, self.opset, self.path = name, doc, opset, path
        self.plan = None  # the engine's flat plan of this graph, made on its first run (interpreter.plan_of)
        self._order = None

    def __repr__(self):
        return f"<Graph {self.name or '(unnamed)'}: {len(self.leaves)} leaves, {len(self.nodes)} nodes>"

    def _repr_svg_(self):
        """Jupyter shows a graph as its diagram (run it to see values and gradients)."""
        return notebook.svg(self)

    def leaves_of(self, kind: str) -> list[Leaf]:
        return [leaf for leaf in self.leaves.values() if leaf.kind == kind]

    @property
    def producers(self) -> dict[str, Node]:
        """Tensor name -> the node that makes it."""
        return {out: node for node in self.nodes for out in node.outputs}

    def topological_order(self) -> list[int]:
        """Node indices, each after the nodes it reads from (file order among independent ones).

        Raises CgError naming the cycle if there is one."""
        if self._order is None:
            self._order = in_file_order(self.nodes)
        if self._order is None:
            import networkx as nx

            G = self.to_networkx()
            cycle = [G.edges[u, v, k]["tensor"] for u, v, k, *_ in nx.find_cycle(G)]
            loop = " → ".join(cycle + cycle[:1])
            raise CgError(f"the graph has a cycle: {loop} (each tensor is computed from the one before it)",
                          where="nodes")
        return self._order

    # ---- running -------------------------------------------------------------------------------
    def run(self, inputs: dict | None = None, backward: bool = True, seed=None, per_use: bool = False,
            compiling: CompilePolicy | None = None, loss: str | None = None, check_numerics: bool = False,
            seeds: dict | None = None):
        """Forward (and backward) pass; `inputs` overrides leaf values by name. Returns a Run.

        `loss` is the tensor backward starts from (by default the graph's loss, or its one output); `seed` is its
        upstream gradient (needed when it is not a scalar): an array, a number, or a function of the loss's value;
        `per_use` also keeps what each use of a tensor contributed to its gradient (Run.use_grads); `compiling`,
        when given, is from now on when this graph's plan is compiled (compiled.COMPILE_AT_ONCE, NEVER_COMPILE, …);
        `check_numerics` raises numerics.NumericsError at the node making the first NaN or infinity that no mask
        made on purpose, forward or backward; `seeds` ({tensor name: upstream gradient}) starts backward from
        several tensors at once instead of the loss (how If, Loop and Scan replay their bodies)."""
        try:
            return interpreter.run(self, inputs, backward=backward, seed=seed, per_use=per_use, compiling=compiling,
                                   loss=loss, check_numerics=check_numerics, seeds=seeds)
        except CgError as e:
            raise e.located(file=self.path) from None

    def random_inputs(self, seed: int = 0, dims: dict | None = None, given=()) -> dict:
        """A value for every input that has none and is not in `given`, drawn from its declared shape and dtype:
        standard normal floats, booleans, integers in 0..n-1 when they index a table of n (Gather), else 0 and 1;
        reproducible by `seed`. `dims` sizes symbolic dimensions by name; others are 1, with a warning."""
        dims = dict(dims or {})
        named = {d for leaf in self.leaves_of("input") for d in leaf.dims or () if isinstance(d, str)}
        for name in dims:
            if name not in named:
                raise CgError(f"no input has a dimension named {name!r}{did_you_mean(name, named)}"
                              + ("" if named else "; the graph's inputs have no symbolic dimensions"), where="--dim")
        shapes = {leaf.name: leaf.shape if leaf.shape is not None else self._sized(leaf, dims)
                  for leaf in self.leaves_of("input") if leaf.value is None and leaf.name not in given}
        total = 0
        for name, shape in shapes.items():  # sizes from --dim are checked here, declared ones at load
            try:
                total += checked_size(shape)
            except CgError as e:
                raise e.located(where=f"input {name!r}") from None
        if total > MAX_TOTAL_ELEMENTS:
            raise CgError(f"expected random values of at most {MAX_TOTAL_ELEMENTS:,} elements in all, found inputs "
                          f"of {total:,}")
        rng, feed = np.random.default_rng(seed), {}
        for name, shape in shapes.items():
            dtype = np.dtype(self.leaves[name].dtype or "float32")
            feed[name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else
                          rng.integers(0, self._index_bound(name), shape).astype(dtype))
        return feed

    def _sized(self, leaf: Leaf, dims: dict) -> tuple[int, ...]:
        """The shape of an input with symbolic dimensions: named ones from `dims`, the others 1 (with a warning)."""
        if leaf.dims is None:
            raise CgError(f"input {leaf.name!r} declares no fixed shape; give it a value (--set or --inputs)")
        shape = []
        for axis, dim in enumerate(leaf.dims):
            if isinstance(dim, int):
                shape.append(dim)
            elif dim in dims:
                shape.append(dims[dim])
            else:
                what = f"dimension {dim!r}" if dim else f"unnamed dimension {axis}"
                warnings.warn(f"input {leaf.name!r}: {what} drawn with size {UNSIZED_DIM}"
                              + (f" (size it with --dim {dim}=N)" if dim else ""), stacklevel=3)
                shape.append(UNSIZED_DIM)
        return tuple(shape)

    def _index_bound(self, name: str) -> int:
        """Integers an input may hold: below the size of the table a Gather indexes with it, else 0 and 1."""
        for node in self.nodes:
            data = self.leaves.get(node.inputs[0]) if node.inputs else None
            if node.op == "Gather" and node.inputs[1:2] == [name] and data is not None and data.value is not None:
                return max(int(np.shape(data.value)[node.attrs.get("axis", 0)]), 1)
        return 2

    def validate(self) -> None:
        """Every check `load` makes, plus shapes: a forward pass wherever every leaf's shape is known."""
        try:
            checks.check_shapes(self)
        except CgError as e:
            raise e.located(file=self.path) from None

    # ---- networkx ------------------------------------------------------------------------------
    def to_networkx(self, run=None) -> nx.MultiDiGraph:
        """A node per leaf and per op, an edge per tensor use keyed by the consumer's input slot.

        Leaves are keyed by tensor name, ops by node name. With a `run`, edges carry the tensor's `value`
        and `grad` (and `use_grad`, this use's share, when the run kept them), leaves their own, and op nodes
        `values`/`grads` of their outputs.
        """
        import networkx as nx

        G = nx.MultiDiGraph(name=self.name, doc=self.doc, outputs=list(self.outputs), loss=self.loss,
                            opset=self.opset)
        for leaf in self.leaves.values():
            G.add_node(leaf.name, kind=leaf.kind, value=leaf.value, dtype=leaf.dtype, shape=leaf.shape,
                       doc=leaf.doc)
        producer = {}
        for order, node in enumerate(self.nodes):
            G.add_node(node.name, kind="op", op=node.op, outputs=list(node.outputs), attrs=dict(node.attrs),
                       doc=node.doc, scope=node.scope, order=order, n_inputs=len(node.inputs))
            producer.update((out, node.name) for out in node.outputs)
        for node in self.nodes:
            for slot, tensor in enumerate(node.inputs):
                if tensor:
                    G.add_edge(producer.get(tensor, tensor), node.name, key=slot, tensor=tensor)
        if run is not None:
            annotate(G, run)
        return G

    @classmethod
    def from_networkx(cls, G: nx.MultiDiGraph) -> Graph:
        """The graph a MultiDiGraph of `to_networkx`'s shape describes (node inputs come from its edges)."""
        leaves, nodes = [], []
        for key, data in G.nodes(data=True):
            if data.get("kind") in LEAF_KINDS:
                leaves.append(Leaf(key, data["kind"], data.get("value"), data.get("dtype"), data.get("shape"),
                                   data.get("doc", "")))
        ops = sorted((data.get("order", 0), key) for key, data in G.nodes(data=True) if data.get("kind") == "op")
        for _, key in ops:
            data = G.nodes[key]
            inputs = [""] * data.get("n_inputs", 0)
            for _, _, slot, edge in G.in_edges(key, keys=True, data=True):
                inputs.extend([""] * (slot + 1 - len(inputs)))
                inputs[slot] = edge["tensor"]
            nodes.append(Node(data["op"], inputs, list(data["outputs"]), dict(data.get("attrs", {})), key,
                              data.get("doc", ""), tuple(data.get("scope", ()))))
        g = G.graph
        graph = cls(leaves, nodes, g.get("outputs", []), loss=g.get("loss"), name=g.get("name", ""),
                    doc=g.get("doc", ""), opset=g.get("opset"))
        checks.check(graph)
        return graph

    # ---- saving --------------------------------------------------------------------------------
    def to_dict(self, sidecar: dict | None = None, sidecar_file: str = "") -> dict:
        """The graph in the JSON format; large arrays go into `sidecar` when one is given."""
        return json_format.to_dict(self, sidecar, sidecar_file)

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph as JSON (arrays over 1,000 elements into `<name>.npz` beside it), atomically."""
        json_format.save(self, path)

    @classmethod
    def from_dict(cls, doc, *, file: str | None = None, _within_limits: bool = False) -> Graph:
        """The checked graph a document of the JSON format describes (`file`: where it was read from)."""
        with collector_paused():  # a 100,000-node graph makes millions of small objects and no cycle
            parts = json_format.parts_of(doc, file, checked=_within_limits)
            try:
                graph = cls(**parts)
                checks.check(graph)
            except CgError as e:
                raise e.located(file=file) from None
        return graph

    @classmethod
    def read(cls, path: str | os.PathLike) -> Graph:
        """The checked graph of a .json file."""
        with collector_paused():  # and so does the reading of its file
            return cls.from_dict(json_format.read_document(path), file=str(path), _within_limits=True)


def annotate(G: nx.MultiDiGraph, run) -> None:
    """Put a run's values and gradients on the networkx graph's leaves, op nodes and edges."""
    values, grads = run.values, run.grads
    for key, data in G.nodes(data=True):
        if data["kind"] == "op":
            data["values"] = {t: values.get(t) for t in data["outputs"]}
            data["grads"] = {t: grads.get(t) for t in data["outputs"]}
        else:
            data["value"], data["grad"] = values.get(key), grads.get(key)
    for _, consumer, slot, data in G.edges(keys=True, data=True):
        data["value"], data["grad"] = values.get(data["tensor"]), grads.get(data["tensor"])
        data["use_grad"] = run.use_grads.get((consumer, slot))


def in_file_order(nodes: list[Node]) -> list[int] | None:
    """Node indices in a topological order, the earliest in the file first among those ready (Kahn's algorithm
    with a heap: linear in the edges, on indices rather than a networkx graph); None when there is a cycle."""
    producer = {out: i for i, node in enumerate(nodes) for out in node.outputs}
    if all(producer.get(t, -1) < i for i, node in enumerate(nodes) for t in node.inputs):
        return list(range(len(nodes)))  # each node reads only earlier ones: the heap would give the file's order
    readers: list[list[int]] = [[] for _ in nodes]
    waiting = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for tensor in node.inputs:
            j = producer.get(tensor)
            if j is not None:
                readers[j].append(i)
                waiting[i] += 1
    ready = [i for i, count in enumerate(waiting) if count == 0]
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for k in readers[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, k)
    return order if len(order) == len(nodes) else None
