"""Reading an ONNX model into a Graph (see cgtools.onnx_io for how the formats map)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from cgtools.errors import CgError
from cgtools.graph import Graph, Leaf, Node
from cgtools.onnx_types import (
    LOADER_OPS,
    LOSS_KEY,
    NEUTRAL_ATTRS,
    OLD_AXIS_DEFAULT,
    SUPPORTED_WORDS,
    _array,
    _fresh,
    _onnx,
    _shape_of,
    onnx_dtype_name,
    type_problem,
)
from cgtools.values import DTYPES

# ---- reading --------------------------------------------------------------------------------------------

def _read_model(path: Path):
    """The ModelProto at `path`, with its external data loaded (from inside its folder only), checked."""
    onnx = _onnx()
    file = str(path)
    if not path.exists():
        raise CgError("no such file", file=file)
    if path.is_dir():
        raise CgError("expected an ONNX model file, found a folder", file=file)
    try:
        model = onnx.load_model(file, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CgError(f"cannot read as an ONNX model (is the file complete?): {first}", file=file) from None
    if not model.HasField("graph") or not model.opset_import:
        raise CgError("expected an ONNX model (a ModelProto with a graph and opset imports), found none; "
                      "the file is corrupt or of another kind", file=file)
    folder = path.parent.resolve()
    external = [t for t in _all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or not target.is_relative_to(folder):
            raise CgError(f"external data at {location!r} is outside the model's folder {str(folder)!r}; "
                          "cgtools reads external data from inside that folder only", file=file,
                          where=f"initializer {tensor.name!r}")
        if not target.is_file():
            raise CgError(f"external data file {location!r} is missing from {str(folder)!r}", file=file,
                          where=f"initializer {tensor.name!r}")
    if external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(folder))
        except Exception as e:  # noqa: BLE001
            raise CgError(f"cannot read external data: {e}", file=file) from None
    try:
        if model.ByteSize() < 2**31 - 1:
            onnx.checker.check_model(model)
        else:
            onnx.checker.check_model(file)
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and protobuf's size errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CgError(f"not a valid ONNX model: {first}", file=file) from None
    return model


def _all_tensors(graph):
    """Every TensorProto a graph holds: initializers and tensor attributes, subgraphs included."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)


def _default_opset(model) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def op_label(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def unsupported_ops(model) -> Counter:
    """Op types of the model's nodes (subgraphs included) that cgtools cannot run, with their counts."""
    from cgtools.ops import REGISTRY

    counts: Counter = Counter()
    stack = [model.graph]
    while stack:
        g = stack.pop()
        for node in g.node:
            label = op_label(node)
            if label not in REGISTRY and label not in LOADER_OPS:
                counts[label] += 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)
    return counts


def _unsupported_message(counts: Counter) -> str:
    listed = ", ".join(f"{op} ×{n}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"unsupported ops: {listed} (`cgtools ops` lists the ops cgtools runs)"


def _node_where(index: int, node) -> str:
    return f"node {index} ({op_label(node)} {node.name or (node.output[0] if node.output else '')!r})"


def load_onnx(path) -> Graph:
    """Read an ONNX model into a Graph (see the module's docstring for how the formats map)."""
    onnx = _onnx()
    path = Path(path)
    file = str(path)
    model = _read_model(path)
    g = model.graph
    initializer_names = {t.name for t in g.initializer}
    for what, entries in (("graph input", g.input), ("graph output", g.output)):
        for entry in entries:
            problem = type_problem(entry.type)
            weight = model.ir_version < 4 and what == "graph input" and entry.name in initializer_names
            if problem and not (weight and problem.startswith("has dtype")):  # weights are widened below
                raise CgError(problem, file=file, where=f"{what} {entry.name!r}")
    counts = unsupported_ops(model)
    if counts:
        raise CgError(_unsupported_message(counts), file=file)
    opset = _default_opset(model)

    # leaves
    initializers = {t.name: t for t in g.initializer}
    defaults = model.ir_version >= 4  # an initializer listed as an input is then that input's default value
    leaves: list[Leaf] = []
    for entry in g.input:
        if entry.name in initializers and not defaults:
            continue
        value = None
        if entry.name in initializers:
            value, _ = _array(initializers.pop(entry.name), f"graph input {entry.name!r}", file)
        leaves.append(Leaf(entry.name, "input", value, onnx_dtype_name(entry.type.tensor_type.elem_type),
                           _shape_of(entry.type), entry.doc_string))
    for name, tensor in initializers.items():
        value, widened = _array(tensor, f"initializer {name!r}", file)
        kind = "param" if value.dtype.kind == "f" else "constant"
        doc = "; ".join(part for part in (widened, tensor.doc_string) if part)
        leaves.append(Leaf(name, kind, value, value.dtype.name, None, doc))

    # nodes; Constant nodes become constants
    onnx_nodes = []  # (index in the model, NodeProto)
    for i, node in enumerate(g.node):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value, widened = _constant_value(onnx, node, _node_where(i, node), file)
            leaves.append(Leaf(node.output[0], "constant", value, value.dtype.name, None,
                               "; ".join(part for part in (widened, node.doc_string) if part)))
        else:
            onnx_nodes.append((i, node))
    leaf_names = {leaf.name for leaf in leaves}
    tensor_names = leaf_names | {out for _, node in onnx_nodes for out in node.output if out}
    names = _node_names([node for _, node in onnx_nodes], leaf_names, tensor_names)
    nodes, where_of = [], []
    for (i, node), name in zip(onnx_nodes, names):
        where = _node_where(i, node)
        attrs = {}
        for attr in node.attribute:
            value = _attribute(onnx, attr, f"{where}.attrs.{attr.name}", file)
            neutral = NEUTRAL_ATTRS.get((node.op_type, attr.name), NEUTRAL_ATTRS.get(attr.name, ()))
            if neutral is None or (isinstance(value, int) and neutral == value):
                continue
            attrs[attr.name] = value
        if node.op_type in OLD_AXIS_DEFAULT and opset is not None and opset < 13:
            attrs.setdefault("axis", 1)
        if (node.op_type == "Split" and "split" not in attrs and "num_outputs" not in attrs
                and (len(node.input) < 2 or not node.input[1])):
            attrs["num_outputs"] = len(node.output)  # before opset 18: as many equal parts as outputs
        outputs = list(node.output)
        while outputs and not outputs[-1]:  # omitted trailing optional outputs
            outputs.pop()
        for k, out in enumerate(outputs):
            if not out:  # an omitted optional output before a used one still needs a name of its own
                outputs[k] = _fresh(f"{name}.output{k}", tensor_names)
        if not outputs:
            outputs = [_fresh(f"{name}.output0", tensor_names)]
        inputs = list(node.input)
        while inputs and not inputs[-1]:
            inputs.pop()
        nodes.append(Node(node.op_type, inputs, outputs, attrs, name, node.doc_string))
        where_of.append(where)

    loss = next((p.value for p in model.metadata_props if p.key == LOSS_KEY), None)
    graph = Graph(leaves, nodes, [o.name for o in g.output], loss=loss if loss in tensor_names else None,
                  name=g.name, doc=model.doc_string or g.doc_string, opset=opset, path=file)
    from cgtools.checks import check

    try:
        check(graph)
    except CgError as e:
        where = e.where or ""
        match = re.match(r"nodes\[(\d+)\]( \([^)]*\))?", where)
        if match:
            where = where_of[int(match.group(1))] + where[match.end():]
        raise CgError(e.detail, file=file, where=where) from None
    return graph



def _node_names(nodes, leaf_names: set, tensor_names: set) -> list[str]:
    """Unique node names, none a leaf's: a node keeps its ONNX name when no other node and no leaf has it,
    else it is named after its first output (suffixed when that is taken)."""
    counts = Counter(node.name for node in nodes if node.name)
    kept = [node.name if node.name and counts[node.name] == 1 and node.name not in leaf_names else None
            for node in nodes]
    taken = set(leaf_names) | {name for name in kept if name}
    names = []
    for node, name in zip(nodes, kept):
        if name is None:
            base = next((out for out in node.output if out), "") or node.name or node.op_type
            name = _fresh(base, taken)
        names.append(name)
    return names


def _constant_value(onnx, node, where: str, file: str) -> tuple[np.ndarray, str]:
    """The value a Constant node holds."""
    if len(node.attribute) != 1:
        raise CgError(f"a Constant needs exactly one value attribute, found {len(node.attribute)}", file=file,
                      where=where)
    attr = node.attribute[0]
    if attr.name == "value":
        return _array(attr.t, where, file)
    simple = {"value_float": (attr.f, np.float32), "value_floats": (list(attr.floats), np.float32),
              "value_int": (attr.i, np.int64), "value_ints": (list(attr.ints), np.int64)}
    if attr.name in simple:
        data, dtype = simple[attr.name]
        return np.asarray(data, dtype), ""
    raise CgError(f"a Constant's {attr.name!r} is not a numeric tensor; cgtools runs {SUPPORTED_WORDS}",
                  file=file, where=where)


def _attribute(onnx, attr, where: str, file: str):
    A = onnx.AttributeProto
    kind = attr.type
    if kind == A.FLOAT:
        return float(attr.f)
    if kind == A.INT:
        return int(attr.i)
    if kind == A.STRING:
        return attr.s.decode("utf-8", errors="replace")
    if kind == A.FLOATS:
        return [float(v) for v in attr.floats]
    if kind == A.INTS:
        return [int(v) for v in attr.ints]
    if kind == A.STRINGS:
        return [s.decode("utf-8", errors="replace") for s in attr.strings]
    if kind == A.TENSOR:
        dtype = onnx_dtype_name(attr.t.data_type)
        if dtype not in DTYPES:
            raise CgError(f"has dtype {dtype}; cgtools runs {SUPPORTED_WORDS}", file=file, where=where)
        return _array(attr.t, where, file)[0]
    kind_name = A.AttributeType.Name(kind).lower()
    raise CgError(f"attributes of type {kind_name} are not supported; expected numbers, strings, lists of "
                  "them or a tensor", file=file, where=where)
