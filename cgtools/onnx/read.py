"""Reading an ONNX model into a Graph (the package's docstring says how the formats map)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from cgtools.checks import check
from cgtools.errors import CgError
from cgtools.graph import Graph
from cgtools.limits import checked_size
from cgtools.onnx.external import MAPPINGS, check_external_data, external_array
from cgtools.onnx.mapping import (
    LOADER_OPS,
    LOSS_KEY,
    NEUTRAL_ATTRS,
    OLD_AXIS_DEFAULT,
    SCOPE_KEY,
    SUPPORTED_WORDS,
    TORCH_SCOPES_KEY,
    attribute_inputs,
    check_text_and_sizes,
    first_line,
    fresh_name,
    graphs_within,
    onnx_dtype_name,
    require_onnx,
)
from cgtools.onnx.roles import is_weight, readers_of
from cgtools.onnx.wire import checked_bytes, mapped_weights, without_weights
from cgtools.ops import REGISTRY
from cgtools.parts import Leaf, Node
from cgtools.values import DTYPES

DEFAULT_DOMAINS = ("", "ai.onnx")


# ---- what a model holds ---------------------------------------------------------------------------------

def op_label(node) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"


def unsupported_ops(model) -> Counter:
    """Op types of the model's nodes (subgraphs included) that cgtools cannot run, with their counts."""
    counts: Counter = Counter()
    for g in graphs_within(model.graph):
        for node in g.node:
            label = op_label(node)
            if label not in REGISTRY and label not in LOADER_OPS:
                counts[label] += 1
    return counts


def type_problem(type_proto) -> str | None:
    """Why a value of this type cannot be a cgtools tensor, or None when it can."""
    kind = type_proto.WhichOneof("value")
    if kind in ("sequence_type", "optional_type"):  # of tensors (or an optional sequence of them)
        return type_problem(getattr(type_proto, kind).elem_type)
    if kind != "tensor_type":
        words = {"sequence_type": "a sequence", "map_type": "a map", "optional_type": "an optional",
                 "sparse_tensor_type": "a sparse tensor", None: "no type"}.get(kind, kind)
        return f"has {words} type; cgtools runs dense tensors only"
    dtype = onnx_dtype_name(type_proto.tensor_type.elem_type)
    if dtype not in DTYPES:
        return f"has dtype {dtype}; cgtools runs {SUPPORTED_WORDS}"
    return None


def container_of(type_proto) -> str | None:
    """"sequence" or "optional" (values.CONTAINERS) for a value of such a type, else None."""
    kind = type_proto.WhichOneof("value")
    return kind.removesuffix("_type") if kind in ("sequence_type", "optional_type") else None


def _dims_of(type_proto):
    """A tensor type's dimensions: sizes, names of symbolic ones, None for unknown ones; None for no rank."""
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    # a negative size, which some exporters write for "unknown", is read as unknown
    return tuple(dim.dim_value if dim.HasField("dim_value") and dim.dim_value >= 0 else dim.dim_param or None
                 for dim in tensor.shape.dim)


def _array(tensor, where: str, file: str) -> tuple[np.ndarray, str]:
    """A TensorProto as an array of its own dtype, and a doc line (none today)."""
    onnx = require_onnx()
    dtype = onnx_dtype_name(tensor.data_type)
    if dtype not in DTYPES:
        raise CgError(f"has dtype {dtype}; cgtools runs {SUPPORTED_WORDS}", file=file, where=where)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:  # mapped, not read: `file` is the model's path
        return external_array(onnx, tensor, Path(file)), ""
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as e:  # noqa: BLE001 - truncated raw data and the like
        raise CgError(f"cannot read the tensor: {e}", file=file, where=where) from None
    return np.asarray(array), ""


# ---- the file -------------------------------------------------------------------------------------------

def _read_model(path: Path):
    """The ModelProto at `path`, checked, its external data too (inside its folder only) but left unread; and
    its large inline weights, memory-mapped where the file holds them (wire.py), by name."""
    onnx = require_onnx()
    file = str(path)
    if not path.exists():
        raise CgError("no such file", file=file)
    if path.is_dir():
        raise CgError("expected an ONNX model file, found a folder", file=file)
    data, lifted = without_weights(path) or (None, {})
    try:
        data = path.read_bytes() if data is None else data  # read once: the checker is given the same bytes
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise CgError(f"cannot read as an ONNX model (is the file complete?): {first_line(e)}", file=file) from None
    if not model.HasField("graph") or not model.opset_import:
        raise CgError("expected an ONNX model (a ModelProto with a graph and opset imports), found none; "
                      "the file is corrupt or of another kind", file=file)
    check_text_and_sizes(model, file)
    external = check_external_data(onnx, model, path)
    try:  # the bytes read, not the model serialized again (costlier than the check); external data: from its file
        onnx.checker.check_model(file if external else checked_bytes(onnx, model, data, lifted))
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and protobuf's size errors
        raise CgError(f"not a valid ONNX model: {first_line(e)}", file=file) from None
    return model, mapped_weights(path, lifted, MAPPINGS.get(None))


def _check_model_types_and_ops(model, file: str) -> None:
    """Refuse graph inputs and outputs of types cgtools lacks, and ops it cannot run."""
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
        listed = ", ".join(f"{op} ×{n}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        raise CgError(f"unsupported ops: {listed} (`cgtools ops` lists the ops cgtools runs)", file=file)


# ---- the graph ------------------------------------------------------------------------------------------

def load_onnx(path) -> Graph:
    """Read an ONNX model into a Graph (see the package's docstring for how the formats map)."""
    require_onnx()
    path = Path(path)
    file = str(path)
    model, weights = _read_model(path)
    _check_model_types_and_ops(model, file)
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    leaves = _leaves(model, weights, file)
    nodes, places = _nodes(g, leaves, opset, file)
    loss = next((p.value for p in model.metadata_props if p.key == LOSS_KEY), None)
    tensors = set(leaf.name for leaf in leaves) | {out for node in nodes for out in node.outputs}
    graph = Graph(leaves, nodes, [o.name for o in g.output], loss=loss if loss in tensors else None,
                  name=g.name, doc=model.doc_string or g.doc_string, opset=opset, path=file)
    try:
        check(graph, places=places)
    except CgError as e:
        raise e.located(file=file) from None
    return graph


def _nodes(g, leaves: list[Leaf], opset, file: str) -> tuple[list[Node], list[str]]:
    """The graph's nodes (and their places); its Constant nodes become constants, appended to `leaves`."""
    onnx_nodes = []  # (index in the graph, NodeProto)
    for i, node in enumerate(g.node):
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
            value, widened = _constant_value(node, _node_where(i, node), file)
            leaves.append(Leaf(node.output[0], "constant", value, value.dtype.name, None,
                               "; ".join(part for part in (widened, node.doc_string) if part)))
        else:
            onnx_nodes.append((i, node))
    return _NodeReader(g, leaves, onnx_nodes, opset, file).read()


def _subgraph(g, opset, where: str, file: str) -> Graph:
    """A graph attribute (If's branches, Loop's body) as a Graph: its inputs, then as `outer` inputs the
    enclosing graph's tensors it reads (the node lists those after its own inputs)."""
    leaves = [Leaf(v.name, "input") if type_problem(v.type) else _typed_leaf(v) for v in g.input]
    leaves += [Leaf(t.name, "constant", _array(t, f"{where} initializer {t.name!r}", file)[0]) for t in g.initializer]
    nodes, places = _nodes(g, leaves, opset, file)
    known = {leaf.name for leaf in leaves} | {out for node in nodes for out in node.outputs}
    outer = list(dict.fromkeys(t for node in nodes for t in node.inputs if t and t not in known))
    outer += [name for name in dict.fromkeys(o.name for o in g.output) if name not in known and name not in outer]
    leaves += [Leaf(name, "input") for name in outer]
    graph = Graph(leaves, nodes, [o.name for o in g.output], name=g.name, opset=opset, outer=outer)
    try:
        check(graph, places=places)
    except CgError as e:
        raise e.within(where).located(file=file) from None
    return graph


def _typed_leaf(v) -> Leaf:
    if container_of(v.type):
        return Leaf(v.name, "input", None, container_of(v.type))
    dims = _dims_of(v.type)
    fixed = dims is not None and all(isinstance(d, int) for d in dims)
    return Leaf(v.name, "input", None, onnx_dtype_name(v.type.tensor_type.elem_type), dims if fixed else None)


def _leaves(model, weights: dict, file: str) -> list[Leaf]:
    """Graph inputs (with their defaults from IR 4 on), then the other initializers: the ones read as weights
    as params, the others as constants (roles.py); cgtools writes its constants as Constant nodes, so in its own
    models every float initializer is a param. `weights` holds the initializers already mapped, by name."""
    g = model.graph
    readers = readers_of(g)
    ours = model.producer_name == "cgtools"
    initializers = {t.name: t for t in g.initializer}
    defaults = model.ir_version >= 4  # an initializer listed as an input is then that input's default value
    leaves: list[Leaf] = []
    for entry in g.input:
        if entry.name in initializers and not defaults:
            continue
        if container_of(entry.type):
            leaves.append(Leaf(entry.name, "input", None, container_of(entry.type), doc=entry.doc_string))
            continue
        value = None
        if entry.name in initializers:
            tensor = initializers.pop(entry.name)
            value = weights.get(entry.name)
            value = _array(tensor, f"graph input {entry.name!r}", file)[0] if value is None else value
        dims = _dims_of(entry.type)
        try:
            checked_size([d for d in dims or () if isinstance(d, int)])
        except CgError as e:
            raise e.located(file=file, where=f"graph input {entry.name!r}") from None
        fixed = dims is not None and all(isinstance(d, int) for d in dims)
        leaves.append(Leaf(entry.name, "input", value, onnx_dtype_name(entry.type.tensor_type.elem_type),
                           dims if fixed else None, entry.doc_string, None if fixed or value is not None else dims))
    for name, tensor in initializers.items():
        value, widened = (weights[name], "") if name in weights else _array(tensor, f"initializer {name!r}", file)
        weight = value.dtype.kind == "f" if ours else is_weight(name, value, readers)
        kind = "param" if weight else "constant"
        doc = "; ".join(part for part in (widened, tensor.doc_string) if part)
        leaves.append(Leaf(name, kind, value, value.dtype.name, None, doc))
    return leaves


def scope_of(node) -> tuple[str, ...]:
    """The modules a node belongs to: from cgtools' own metadata, else PyTorch's dynamo exporter's (its last
    entry names the call itself), else from the node's name as PyTorch's TorchScript exporter writes it
    (`/layer1/layer1.0/conv1/Conv`: the part after the last slash names the node itself)."""
    metadata = {p.key: p.value for p in node.metadata_props}
    if SCOPE_KEY in metadata:
        try:
            scope = json.loads(metadata[SCOPE_KEY])
        except (ValueError, RecursionError):  # not cgtools' own metadata after all: read the scope otherwise
            scope = None
        if isinstance(scope, list) and all(isinstance(s, str) for s in scope):
            return tuple(s for s in scope if s)
    if TORCH_SCOPES_KEY in metadata:  # a Python list of quoted strings, read as text (never evaluated)
        return tuple(s for s in re.findall(r"'((?:[^'\\]|\\.)*)'", metadata[TORCH_SCOPES_KEY])[:-1] if s)
    return tuple(part for part in node.name.split("/")[:-1] if part)


def _node_where(index: int, node) -> str:
    return f"node {index} ({op_label(node)} {node.name or (node.output[0] if node.output else '')!r})"


class _NodeReader:
    """The model's (non-Constant) nodes as Nodes, in one form whatever the opset: attributes later opsets made
    inputs become constant leaves (appended to `leaves`), older defaults are made explicit."""

    def __init__(self, g, leaves: list[Leaf], onnx_nodes, opset: int | None, file: str):
        self.leaves, self.onnx_nodes, self.opset, self.file = leaves, onnx_nodes, opset, file
        leaf_names = {leaf.name for leaf in leaves}
        self.tensor_names = leaf_names | {out for _, node in onnx_nodes for out in node.output if out}
        self.names = _node_names([node for _, node in onnx_nodes], leaf_names)
        self.declared = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
        self.declared.update({t.name: t.data_type for t in g.initializer})
        self.declared.update({leaf.name: leaf.dtype for leaf in leaves if leaf.kind == "constant"})

    def read(self) -> tuple[list[Node], list[str]]:
        nodes, places = [], []
        for (i, node), name in zip(self.onnx_nodes, self.names):
            places.append(_node_where(i, node))
            nodes.append(self.node(node, name, places[-1]))
        return nodes, places

    def node(self, node, name: str, where: str) -> Node:
        attrs, graphs = {}, [attr for attr in node.attribute if attr.HasField("g")]
        for attr in node.attribute:
            if attr.HasField("g"):
                attrs[attr.name] = _subgraph(attr.g, self.opset, f"{where}.attrs.{attr.name}", self.file)
                continue
            value = _attribute(attr, f"{where}.attrs.{attr.name}", self.file)
            neutral = NEUTRAL_ATTRS.get((node.op_type, attr.name), NEUTRAL_ATTRS.get(attr.name, ()))
            if neutral is None or (isinstance(value, int) and neutral == value):
                continue
            attrs[attr.name] = value
        if node.op_type in OLD_AXIS_DEFAULT and self.opset is not None and self.opset < OLD_AXIS_DEFAULT[node.op_type]:
            attrs.setdefault("axis", 1)
        inputs = self.attributes_as_inputs(node.op_type, attrs, list(node.input), name)
        while inputs and not inputs[-1]:
            inputs.pop()
        if graphs:  # a body's own inputs, then the enclosing graph's tensors any body reads
            inputs += [""] * (max(len(g.input) for g in (attr.g for attr in graphs)) - len(inputs))
            inputs += dict.fromkeys(t for attr in graphs for t in attrs[attr.name].outer)
        if node.op_type == "Split" and "num_outputs" not in attrs and (len(inputs) < 2 or not inputs[1]):
            attrs["num_outputs"] = len(node.output)  # before opset 18: as many equal parts as outputs
        outputs = list(node.output)
        while outputs and not outputs[-1]:  # omitted trailing optional outputs
            outputs.pop()
        for k, out in enumerate(outputs):
            if not out:  # an omitted optional output before a used one still needs a name of its own
                outputs[k] = fresh_name(f"{name}.output{k}", self.tensor_names)
        if not outputs:
            outputs = [fresh_name(f"{name}.output0", self.tensor_names)]
        return Node(op_label(node), inputs, outputs, attrs, name, node.doc_string, scope_of(node))

    def attributes_as_inputs(self, op: str, attrs: dict, inputs: list[str], name: str) -> list[str]:
        """Move the attribute forms of early opsets (ReduceSum's axes before 13 …) to constant inputs."""
        for attr, position, _, dtype in attribute_inputs(REGISTRY[op]) if op in REGISTRY else ():
            if attr not in attrs:
                continue
            given = attrs.pop(attr)
            if np.size(given) == 0:  # an empty list: the same as no input
                continue
            if dtype is None:  # the dtype of the op's first input, where the model states it
                code = self.declared.get(inputs[0]) if inputs else None
                dtype = code if isinstance(code, str) else onnx_dtype_name(code) if code else "float32"
            value = np.asarray(given, dtype)
            constant = fresh_name(f"{name}.{attr}", self.tensor_names | set(self.names))
            self.tensor_names.add(constant)
            self.leaves.append(Leaf(constant, "constant", value, value.dtype.name, None, ""))
            inputs += [""] * (position + 1 - len(inputs))
            inputs[position] = constant
        return inputs


def _node_names(nodes, leaf_names: set) -> list[str]:
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
            name = fresh_name(base, taken)
        names.append(name)
    return names


def _constant_value(node, where: str, file: str) -> tuple[np.ndarray, str]:
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


def _attribute(attr, where: str, file: str):
    A = require_onnx().AttributeProto
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
    if kind == A.TYPE_PROTO:  # Optional's type: the value's own says it, so kept only as words
        return str(attr.tp).replace("\n", " ").strip()
    kind_name = A.AttributeType.Name(kind).lower()
    raise CgError(f"attributes of type {kind_name} are not supported; expected numbers, strings, lists of "
                  "them or a tensor", file=file, where=where)
