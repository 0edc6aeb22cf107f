"""ONNX interop: read a model into a Graph, write a Graph as a model, convert files between the two.

The `onnx` package is optional: it is imported inside these functions only, and its absence is a CgError
saying how to install it.

How the two formats map onto each other:
- ONNX graph inputs are cgtools inputs (dtype and shape from their type; a symbolic dimension leaves the
  shape unknown). An initializer that is also listed as a graph input is, from IR version 4 on, an input with
  a default value — which is how cgtools inputs with values are written. (Before IR 4 every initializer had to
  be listed as an input, so there they are weights like any other.)
- Float initializers are params (trainable); other initializers are constants. Constant nodes become
  constants too, and cgtools constants are written as Constant nodes, so kinds survive a round trip.
- int8, uint8, int16 and uint16 initializers (and Constant values) are widened to int32, uint32 to int64:
  lossless, and the original type is kept in the tensor's doc, so writing the model narrows them back. Graph
  inputs and outputs of types the format lacks are refused, as are strings, bfloat16, float8, complex, and
  sequence, map and optional types.
- Node names are kept when they are unique and no leaf has them; otherwise a node is named after its first
  output, suffixed `_1`, `_2`, … if that is taken.
- MSELoss, which ONNX lacks, is written as Sub, Mul and ReduceMean (ReduceSum for reduction "sum").
- Models are written at the graph's recorded opset, else at DEFAULT_OPSET; attribute forms that opset moved
  to inputs (ReduceSum's axes since 13, the other reductions' since 18, Squeeze/Unsqueeze's and Split's since
  13, Pad's since 11, Dropout's ratio since 12) become Constant inputs.
- Older opsets' defaults are made explicit where the ops follow the newest: Softmax, LogSoftmax and Hardmax
  before opset 13 read axis 1 (written back with axis -1, which means the same there); Split before 18 makes
  as many parts as it has outputs (num_outputs).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from cgtools.errors import CgError
from cgtools.graph import Graph, Leaf, Node, write_atomic
from cgtools.values import DTYPES

INSTALL_HINT = "ONNX support needs the onnx package: pip install 'cgtools[onnx]'"
DEFAULT_OPSET = 18
WIDENED = {"int8": "int32", "uint8": "int32", "int16": "int32", "uint16": "int32", "uint32": "int64"}
WIDENED_DOC = re.compile(r"^(\w+) in the ONNX model, widened to \w+")
LOSS_KEY = "cgtools.loss"  # metadata_props entry naming the graph's loss
# Ops that take the loader's care rather than the interpreter's: Constant nodes become constant leaves.
LOADER_OPS = frozenset({"Constant"})
# Attributes later opsets made inputs: op -> [(attribute, input position, first opset with the input form,
# the input's dtype: a name, or None for the dtype of the op's first input)]
ATTR_TO_INPUT = {
    "ReduceSum": [("axes", 1, 13, "int64")],
    "Squeeze": [("axes", 1, 13, "int64")],
    "Unsqueeze": [("axes", 1, 13, "int64")],
    "Split": [("split", 1, 13, "int64")],
    "Pad": [("pads", 1, 11, "int64"), ("value", 2, 11, None)],
    "Dropout": [("ratio", 1, 12, "float32")],
    **{op: [("axes", 1, 18, "int64")] for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                                 "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")},
}
# Attributes of early opsets that change nothing at these values (None: at any value): dropped on reading
NEUTRAL_ATTRS = {"consumed_inputs": None, ("BatchNormalization", "spatial"): 1, ("BatchNormalization", "is_test"): 1,
                 ("Dropout", "is_test"): 1}
# Softmax-like ops whose default axis was 1 before opset 13 (it is -1 since)
OLD_AXIS_DEFAULT = ("Softmax", "LogSoftmax", "Hardmax")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise CgError(INSTALL_HINT) from None
    return onnx


# ---- dtypes ---------------------------------------------------------------------------------------------

def onnx_dtype_name(elem_type: int) -> str:
    """The numpy-style name of an ONNX element type: 'float32', 'int64', 'bfloat16', 'string' …"""
    onnx = _onnx()
    try:
        name = onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"
    return {"float": "float32", "double": "float64", "undefined": "an undefined type"}.get(name, name)


def _elem_type(dtype) -> int:
    onnx = _onnx()
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


SUPPORTED_WORDS = "float16, float32, float64, int32, int64 and bool"


def type_problem(type_proto) -> str | None:
    """Why a value of this type cannot be a cgtools tensor, or None when it can."""
    kind = type_proto.WhichOneof("value")
    if kind != "tensor_type":
        words = {"sequence_type": "a sequence", "map_type": "a map", "optional_type": "an optional",
                 "sparse_tensor_type": "a sparse tensor", None: "no type"}.get(kind, kind)
        return f"has {words} type; cgtools runs dense tensors only"
    dtype = onnx_dtype_name(type_proto.tensor_type.elem_type)
    if dtype not in DTYPES:
        return f"has dtype {dtype}; cgtools runs {SUPPORTED_WORDS}"
    return None


def _shape_of(type_proto):
    """A tensor type's shape as a tuple, or None when its rank or any dimension is unknown or symbolic."""
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = []
    for dim in tensor.shape.dim:
        if not dim.HasField("dim_value"):
            return None
        dims.append(dim.dim_value)
    return tuple(dims)


def _array(tensor, where: str, file: str) -> tuple[np.ndarray, str]:
    """A TensorProto as an array of the format's dtypes (small integers widened), and a doc line."""
    onnx = _onnx()
    dtype = onnx_dtype_name(tensor.data_type)
    if dtype not in DTYPES and dtype not in WIDENED:
        raise CgError(f"has dtype {dtype}; cgtools runs {SUPPORTED_WORDS} "
                      f"(and widens {', '.join(WIDENED)} to int32/int64)", file=file, where=where)
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as e:  # noqa: BLE001 - truncated raw data and the like
        raise CgError(f"cannot read the tensor: {e}", file=file, where=where) from None
    if dtype in WIDENED:
        return array.astype(WIDENED[dtype]), f"{dtype} in the ONNX model, widened to {WIDENED[dtype]}"
    return np.asarray(array), ""


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
    from cgtools.schema import check

    try:
        check(graph)
    except CgError as e:
        where = e.where or ""
        match = re.match(r"nodes\[(\d+)\]( \([^)]*\))?", where)
        if match:
            where = where_of[int(match.group(1))] + where[match.end():]
        raise CgError(e.detail, file=file, where=where) from None
    return graph


def _fresh(base: str, taken: set) -> str:
    """`base`, or `base_1`, `base_2`, … : the first not in `taken` (which it joins)."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


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


# ---- writing --------------------------------------------------------------------------------------------

ATTR_TYPES = {"int": "INT", "float": "FLOAT", "str": "STRING", "ints": "INTS", "floats": "FLOATS",
              "strings": "STRINGS", "tensor": "TENSOR"}


def _forward_values(graph: Graph, run):
    """Tensor name -> array from `run`, or from a forward pass when every input has a value or a shape (zeros
    stand in for the missing values), or None."""
    if run is not None:
        return dict(run.values)
    feed = {}
    for leaf in graph.leaves.values():
        if leaf.value is None:
            if leaf.shape is None:
                return None
            feed[leaf.name] = np.zeros(leaf.shape, leaf.dtype or np.float64)
    try:
        with np.errstate(all="ignore"):
            return dict(graph.run(feed, backward=False).values)
    except CgError:
        return None  # ONNX shape inference types the outputs instead


def _stored(leaf: Leaf) -> np.ndarray:
    """A leaf's value as the ONNX model holds it: narrowed back when the reader widened it."""
    value = np.asarray(leaf.value)
    match = WIDENED_DOC.match(leaf.doc or "")
    if match and match.group(1) in WIDENED and value.dtype.name == WIDENED[match.group(1)]:
        narrow = value.astype(match.group(1))
        if np.array_equal(narrow, value):
            return narrow
    return value


def to_onnx(graph: Graph, run=None):
    """The graph as an onnx.ModelProto (checked with onnx.checker, full check)."""
    onnx = _onnx()
    from onnx import helper, numpy_helper

    from cgtools.ops import get_op
    from cgtools.schema import node_place

    opset = graph.opset or DEFAULT_OPSET
    values = _forward_values(graph, run)
    taken = set(graph.leaves) | {out for node in graph.nodes for out in node.outputs} | {n.name for n in graph.nodes}
    inputs, initializers, nodes = [], [], []

    def info(name, dtype, shape):
        return helper.make_tensor_value_info(name, _elem_type(dtype), None if shape is None else list(shape))

    for leaf in graph.leaves_of("input"):
        value = None if leaf.value is None else np.asarray(leaf.value)
        known = values.get(leaf.name) if values else None
        dtype = (value.dtype if value is not None else leaf.dtype or
                 (known.dtype if known is not None else "float64"))
        shape = value.shape if value is not None else leaf.shape
        if shape is None and known is not None:
            shape = known.shape
        if shape is None:  # onnx.checker requires a shape (symbolic dims aside) on every graph input
            raise CgError("an ONNX graph input needs a shape: give the input a value or a \"shape\"",
                          where=f"input {leaf.name!r}")
        inputs.append(info(leaf.name, dtype, shape))
        if leaf.doc:
            inputs[-1].doc_string = leaf.doc
        if value is not None:  # an initializer named like an input is that input's default (IR >= 4)
            initializers.append(numpy_helper.from_array(value.astype(dtype, copy=False), leaf.name))
    for leaf in graph.leaves_of("param"):
        if leaf.value is None:
            raise CgError("a param needs a value to be written to ONNX", where=f"param {leaf.name!r}")
        initializers.append(numpy_helper.from_array(_stored(leaf), leaf.name))
        if leaf.doc:
            initializers[-1].doc_string = leaf.doc
    for leaf in graph.leaves_of("constant"):
        if leaf.value is None:
            raise CgError("a constant needs a value to be written to ONNX", where=f"constant {leaf.name!r}")
        nodes.append(helper.make_node("Constant", [], [leaf.name], name=leaf.name, doc_string=leaf.doc or None,
                                      value=numpy_helper.from_array(_stored(leaf), leaf.name)))

    def constant(base, array):
        name = _fresh(base, taken)
        nodes.append(helper.make_node("Constant", [], [name], name=name,
                                      value=numpy_helper.from_array(array, name)))
        return name

    for index in graph.topological_order():
        node = graph.nodes[index]
        place = node_place(index, node)
        if node.op == "MSELoss":
            nodes.extend(_mse_nodes(helper, node, opset, taken))
            continue
        if not onnx.defs.has(node.op):
            raise CgError(f"{node.op} has no ONNX equivalent, so the graph cannot be written as ONNX", where=place)
        spec = get_op(node.op).spec
        attrs, node_inputs = dict(node.attrs), list(node.inputs)
        for attr, position, since, dtype in ATTR_TO_INPUT.get(node.op, ()):
            if opset < since or attr not in attrs:
                continue
            given = attrs.pop(attr)
            if np.size(given) == 0:  # an empty list: the same as no input
                continue
            node_inputs += [""] * (position + 1 - len(node_inputs))
            if node_inputs[position]:
                raise CgError(f"{attr} is given both as the attribute and as input {position}", where=place)
            if dtype is None:
                first = values.get(node_inputs[0]) if values else None
                if first is None:
                    raise CgError(f"cannot tell the dtype {attr!r} needs as an input at opset {opset}", where=place)
                dtype = first.dtype
            node_inputs[position] = constant(f"{node.name}.{attr}", np.asarray(given, dtype))
        if node.op in OLD_AXIS_DEFAULT and opset < 13 and "axis" not in attrs:
            attrs["axis"] = -1  # cgtools' default; before opset 13 ONNX's was 1
        if node.op == "Split" and opset < 18 and "num_outputs" in attrs:
            if attrs.pop("num_outputs") != len(node.outputs):
                raise CgError(f"before opset 18, Split makes as many equal parts as it has outputs; write it at "
                              f"opset 18 or give it {len(node.outputs)} outputs", where=place)
        while node_inputs and not node_inputs[-1]:
            node_inputs.pop()
        proto = helper.make_node(node.op, node_inputs, node.outputs, name=node.name, doc_string=node.doc or None)
        for key, value in attrs.items():
            kind = spec.attrs[key][0] if key in spec.attrs else None
            try:
                proto.attribute.append(_make_attribute(onnx, key, value, kind))
            except (TypeError, ValueError) as e:
                raise CgError(f"cannot write the attribute as ONNX: {e}", where=f"{place}.attrs.{key}") from None
        nodes.append(proto)

    value_info, outputs = [], []
    leaf_or_output = set(graph.leaves) | set(graph.outputs)
    if values:
        for node in graph.nodes:
            for out in node.outputs:
                if out not in leaf_or_output and out in values:
                    value_info.append(info(out, values[out].dtype, values[out].shape))
    for name in graph.outputs:
        if values and name in values:
            outputs.append(info(name, values[name].dtype, values[name].shape))
        else:
            outputs.append(helper.make_empty_tensor_value_info(name))
    name = graph.name or (Path(graph.path).stem if graph.path else "graph")
    onnx_graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers,
                                   doc_string=graph.doc or None, value_info=value_info)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="cgtools",
                              ir_version=max(helper.find_min_ir_version_for(opsets), 4))
    if graph.doc:
        model.doc_string = graph.doc
    if graph.loss:
        helper.set_model_props(model, {LOSS_KEY: graph.loss})
    if not values or any(name not in values for name in graph.outputs):
        _type_outputs_by_inference(onnx, model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError, shape inference errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CgError(f"the graph does not make a valid ONNX model (opset {opset}): {first}") from None
    return model


def _type_outputs_by_inference(onnx, model) -> None:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001
        raise CgError(f"cannot tell the outputs' types: ONNX shape inference failed: {e}") from None
    known = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)
             if v.type.tensor_type.elem_type}
    for out in model.graph.output:
        if not out.type.tensor_type.elem_type:
            if out.name not in known:
                raise CgError(f"cannot tell the type of output {out.name!r}; give the graph's inputs values or "
                              "shapes so a forward pass can")
            out.type.CopyFrom(known[out.name].type)


def _make_attribute(onnx, key, value, kind):
    helper, A = onnx.helper, onnx.AttributeProto
    if isinstance(value, np.ndarray):
        return helper.make_attribute(key, onnx.numpy_helper.from_array(value, key))
    if kind == "int" or (kind is None and isinstance(value, (int, np.integer))):
        return helper.make_attribute(key, int(value), attr_type=A.INT)
    if kind == "float" or (kind is None and isinstance(value, (float, np.floating))):
        return helper.make_attribute(key, float(value), attr_type=A.FLOAT)
    if kind in ("ints", "floats", "strings"):
        cast = {"ints": int, "floats": float, "strings": str}[kind]
        return helper.make_attribute(key, [cast(v) for v in value], attr_type=getattr(A, ATTR_TYPES[kind]))
    return helper.make_attribute(key, value)


def _mse_nodes(helper, node: Node, opset: int, taken: set) -> list:
    """MSELoss as ONNX nodes: d = input − target; d·d; then its mean (or sum, or nothing)."""
    reduction = node.attrs.get("reduction", "mean")
    out = node.outputs[0]
    diff = _fresh(f"{node.name}.diff", taken)
    squares = out if reduction == "none" else _fresh(f"{node.name}.squares", taken)
    made = [helper.make_node("Sub", list(node.inputs[:2]), [diff], name=_fresh(f"{node.name}.Sub", taken)),
            helper.make_node("Mul", [diff, diff], [squares], name=_fresh(f"{node.name}.Mul", taken))]
    if reduction != "none":
        op = "ReduceMean" if reduction == "mean" else "ReduceSum"
        made.append(helper.make_node(op, [squares], [out], name=node.name, keepdims=0,
                                     doc_string=node.doc or None))
    return made


def save_onnx(graph: Graph, path, run=None) -> Path:
    """Write the graph as an ONNX model at `path`, atomically. `run`, when given, supplies the tensors' dtypes
    and shapes (otherwise a forward pass does, where the inputs allow one)."""
    path = Path(path)
    _onnx()
    try:
        model = to_onnx(graph, run)
    except CgError as e:
        raise e.located(file=graph.path) from None
    data = model.SerializeToString()
    write_atomic(path, lambda f: f.write(data))
    return path


# ---- converting ----------------------------------------------------------------------------------------

def convert(source, target) -> list[Path]:
    """model.onnx -> graph.json (arrays over 1,000 elements into graph.npz beside it), or graph.json ->
    model.onnx. Returns the paths written."""
    from cgtools.values import INLINE_LIMIT

    _onnx()
    source, target = Path(source), Path(target)
    kinds = (source.suffix.lower(), target.suffix.lower())
    if kinds not in ((".onnx", ".json"), (".json", ".onnx")):
        raise CgError(f"convert reads model.onnx and writes graph.json, or reads graph.json and writes "
                      f"model.onnx; found {source.name!r} -> {target.name!r}")
    folder = target.parent
    if not folder.resolve().is_dir():
        raise CgError(f"no such folder {str(folder)!r} to write {target.name!r} in")
    if kinds[0] == ".onnx":
        graph = load_onnx(source)
        sidecar = any(leaf.value is not None and np.size(leaf.value) > INLINE_LIMIT for leaf in graph.leaves.values())
        graph.save(target)
        return [target, target.with_suffix(".npz")] if sidecar else [target]
    from cgtools.schema import load

    return [save_onnx(load(source), target)]
