"""Writing a Graph as an ONNX model (see cgtools.onnx_io for how the formats map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgtools.errors import CgError
from cgtools.errors import node_place
from cgtools.files import write_atomic
from cgtools.graph import Graph, Leaf, Node
from cgtools.onnx_types import (
    ATTR_TO_INPUT,
    DEFAULT_OPSET,
    LOSS_KEY,
    OLD_AXIS_DEFAULT,
    WIDENED,
    WIDENED_DOC,
    _elem_type,
    _fresh,
    _onnx,
)

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
