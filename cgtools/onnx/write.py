"""Writing a Graph as an ONNX model (the package's docstring says how the formats map)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cgtools.checks import dry_run_feed
from cgtools.errors import CgError, node_place
from cgtools.files import write_atomic
from cgtools.graph import Graph
from cgtools.onnx.mapping import (
    DEFAULT_OPSET,
    LOSS_KEY,
    OLD_AXIS_DEFAULT,
    SCOPE_KEY,
    WIDENED,
    WIDENED_DOC,
    attribute_inputs,
    code_of,
    first_line,
    fresh_name,
    require_onnx,
)
from cgtools.ops import get_op
from cgtools.parts import Leaf, Node

ATTR_TYPES = {"int": "INT", "float": "FLOAT", "str": "STRING", "ints": "INTS", "floats": "FLOATS",
              "strings": "STRINGS", "tensor": "TENSOR"}


def save_onnx(graph: Graph, path, run=None) -> Path:
    """Write the graph as an ONNX model at `path`, atomically. `run`, when given, supplies the tensors' dtypes
    and shapes (otherwise a forward pass does, where the inputs allow one)."""
    path = Path(path)
    require_onnx()
    try:
        model = to_onnx(graph, run)
    except CgError as e:
        raise e.located(file=graph.path) from None
    data = model.SerializeToString()
    write_atomic(path, lambda f: f.write(data))
    return path


def to_onnx(graph: Graph, run=None):
    """The graph as an onnx.ModelProto (checked with onnx.checker, full check)."""
    onnx = require_onnx()
    opset = graph.opset or DEFAULT_OPSET
    values = _forward_values(graph, run)
    lowering = _Lowering(graph, opset, values)
    inputs, initializers = _inputs_and_initializers(graph, values)
    lowering.constants(skip=lowering.folded_constants())
    for index in graph.topological_order():
        lowering.node(index)
    outputs, value_info = _outputs_and_value_info(graph, values, opset)
    helper = onnx.helper
    name = graph.name or (Path(graph.path).stem if graph.path else "graph")
    onnx_graph = helper.make_graph(lowering.nodes, name, inputs, outputs, initializer=initializers,
                                   doc_string=graph.doc or None, value_info=value_info)
    opsets = [helper.make_opsetid("", opset)]
    domains = {node.op.rpartition(".")[0] for node in graph.nodes} - {""}  # ai.onnx.preview.training …
    opsets += [helper.make_opsetid(domain, 1) for domain in sorted(domains)]
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
        raise CgError(f"the graph does not make a valid ONNX model (opset {opset}): {first_line(e)}") from None
    return model


def _forward_values(graph: Graph, run):
    """Tensor name -> array from `run`, or from a forward pass when every input has a value or a shape (zeros
    stand in for the missing values), or None."""
    if run is not None:
        return dict(run.values)
    feed = dry_run_feed(graph, "ONNX shape inference types the outputs instead")
    if feed is None:
        return None
    try:
        with np.errstate(all="ignore"):
            return dict(graph.run(feed, backward=False).values)
    except CgError:
        return None  # ONNX shape inference types the outputs instead


def _value_info(name, dtype, shape):
    helper = require_onnx().helper
    return helper.make_tensor_value_info(name, code_of(dtype),
                                         None if shape is None else list(shape))


def _stored(leaf: Leaf) -> np.ndarray:
    """A leaf's value as the ONNX model holds it: narrowed back when the reader widened it."""
    value = np.asarray(leaf.value)
    match = WIDENED_DOC.match(leaf.doc or "")
    if match and match.group(1) in WIDENED and value.dtype.name == WIDENED[match.group(1)]:
        narrow = value.astype(match.group(1))
        if np.array_equal(narrow, value):
            return narrow
    return value


# ---- leaves ---------------------------------------------------------------------------------------------

def _inputs_and_initializers(graph: Graph, values) -> tuple[list, list]:
    """Graph inputs (typed; a value becomes the input's default, an initializer named like it) and params."""
    from_array = require_onnx().numpy_helper.from_array
    inputs, initializers = [], []
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
        inputs.append(_value_info(leaf.name, dtype, shape))
        if leaf.doc:
            inputs[-1].doc_string = leaf.doc
        if value is not None:  # an initializer named like an input is that input's default (IR >= 4)
            initializers.append(from_array(value.astype(dtype, copy=False), leaf.name))
    for leaf in graph.leaves_of("param"):
        if leaf.value is None:
            raise CgError("a param needs a value to be written to ONNX", where=f"param {leaf.name!r}")
        initializers.append(from_array(_stored(leaf), leaf.name))
        if leaf.doc:
            initializers[-1].doc_string = leaf.doc
    return inputs, initializers


# ---- nodes ----------------------------------------------------------------------------------------------

class _Lowering:
    """The graph's constants and nodes as ONNX nodes at one opset, into `nodes`."""

    def __init__(self, graph: Graph, opset: int, values):
        self.onnx = require_onnx()
        self.graph, self.opset, self.values, self.nodes = graph, opset, values, []
        self.taken = (set(graph.leaves) | {out for node in graph.nodes for out in node.outputs}
                      | {n.name for n in graph.nodes})

    def constants(self, skip: set) -> None:
        """The constant leaves as Constant nodes, but those in `skip`."""
        helper, from_array = self.onnx.helper, self.onnx.numpy_helper.from_array
        for leaf in self.graph.leaves_of("constant"):
            if leaf.name in skip:
                continue
            if leaf.value is None:
                raise CgError("a constant needs a value to be written to ONNX", where=f"constant {leaf.name!r}")
            self.nodes.append(helper.make_node("Constant", [], [leaf.name], name=leaf.name,
                                               doc_string=leaf.doc or None,
                                               value=from_array(_stored(leaf), leaf.name)))

    def constant(self, base: str, array: np.ndarray) -> str:
        """A new Constant node holding `array`; its output's name."""
        name = fresh_name(base, self.taken)
        self.nodes.append(self.onnx.helper.make_node("Constant", [], [name], name=name,
                                                     value=self.onnx.numpy_helper.from_array(array, name)))
        return name

    def foldable(self, node: Node) -> dict[int, str]:
        """Input position -> attribute, for the inputs this opset takes as attributes that a constant gives."""
        folds = {}
        for attr, position, since, _ in attribute_inputs(get_op(node.op)):
            given = node.inputs[position] if position < len(node.inputs) else ""
            leaf = self.graph.leaves.get(given)
            if self.opset < since and leaf is not None and leaf.kind == "constant" and leaf.value is not None:
                folds[position] = attr
        return folds

    def folded_constants(self) -> set[str]:
        """Constants read only as inputs this opset takes as attributes: they are not written as nodes."""
        folded, other_uses = set(), set(self.graph.outputs) | {self.graph.loss}
        for node in self.graph.nodes:
            folds = self.foldable(node)
            for position, name in enumerate(node.inputs):
                (folded if position in folds else other_uses).add(name)
        return folded - other_uses

    def node(self, index: int) -> None:
        """One node as ONNX nodes (MSELoss as several), with the attribute forms of the opset."""
        node = self.graph.nodes[index]
        place = node_place(index, node)
        if node.op == "MSELoss":
            self.nodes.extend(self.mse(node))
            return
        domain, _, op_type = node.op.rpartition(".")  # "ai.onnx.preview.training.Adam": Adam of that domain
        if not self.onnx.defs.has(op_type, domain):
            raise CgError(f"{node.op} has no ONNX equivalent, so the graph cannot be written as ONNX", where=place)
        spec = get_op(node.op).spec
        attrs, inputs = dict(node.attrs), list(node.inputs)
        for position, attr in self.foldable(node).items():
            attrs[attr] = self.graph.leaves[inputs[position]].value
            inputs[position] = ""
        self.attributes_as_inputs(node, attrs, inputs, place)
        if node.op in OLD_AXIS_DEFAULT and self.opset < OLD_AXIS_DEFAULT[node.op] and "axis" not in attrs:
            attrs["axis"] = -2 if node.op == "DFT" else -1  # cgtools' default; before that opset ONNX's was 1
        if node.op == "Split" and self.opset < 18 and "num_outputs" in attrs:
            if attrs.pop("num_outputs") != len(node.outputs):
                raise CgError(f"before opset 18, Split makes as many equal parts as it has outputs; write it at "
                              f"opset 18 or give it {len(node.outputs)} outputs", where=place)
        outer = dict.fromkeys(t for v in attrs.values() if hasattr(v, "outer") for t in v.outer)
        inputs = inputs[:len(inputs) - len(outer)]  # the enclosing graph's tensors bodies read: ONNX's scope
        while inputs and not inputs[-1]:
            inputs.pop()
        proto = self.onnx.helper.make_node(op_type, inputs, node.outputs, name=node.name, doc_string=node.doc or None,
                                           domain=domain or None)
        if node.scope and node.scope != tuple(p for p in node.name.split("/")[:-1] if p):
            proto.metadata_props.add(key=SCOPE_KEY, value=json.dumps(list(node.scope)))
        for key, value in attrs.items():
            kind = spec.attrs[key][0] if key in spec.attrs else None
            if kind == "graph":
                value = _body(value, self.opset)
            try:
                proto.attribute.append(_make_attribute(self.onnx, key, value, kind))
            except (TypeError, ValueError) as e:
                raise CgError(f"cannot write the attribute as ONNX: {e}", where=f"{place}.attrs.{key}") from None
        self.nodes.append(proto)

    def attributes_as_inputs(self, node: Node, attrs: dict, inputs: list[str], place: str) -> None:
        """Attributes (as JSON graphs may give them) that this opset takes as inputs become Constant inputs."""
        for attr, position, since, dtype in attribute_inputs(get_op(node.op)):
            if self.opset < since or attr not in attrs:
                continue
            given = attrs.pop(attr)
            if np.size(given) == 0:  # an empty list: the same as no input
                continue
            inputs += [""] * (position + 1 - len(inputs))
            if inputs[position]:
                raise CgError(f"{attr} is given both as the attribute and as input {position}", where=place)
            if dtype is None:
                first = self.values.get(inputs[0]) if self.values else None
                if first is None:
                    raise CgError(f"cannot tell the dtype {attr!r} needs as an input at opset {self.opset}",
                                  where=place)
                dtype = first.dtype
            inputs[position] = self.constant(f"{node.name}.{attr}", np.asarray(given, dtype))

    def mse(self, node: Node) -> list:
        """MSELoss as ONNX nodes: d = input − target; d·d; then its mean (or sum, or nothing)."""
        helper, taken = self.onnx.helper, self.taken
        reduction = node.attrs.get("reduction", "mean")
        out = node.outputs[0]
        diff = fresh_name(f"{node.name}.diff", taken)
        squares = out if reduction == "none" else fresh_name(f"{node.name}.squares", taken)
        made = [helper.make_node("Sub", list(node.inputs[:2]), [diff], name=fresh_name(f"{node.name}.Sub", taken)),
                helper.make_node("Mul", [diff, diff], [squares], name=fresh_name(f"{node.name}.Mul", taken))]
        if reduction != "none":
            op = "ReduceMean" if reduction == "mean" else "ReduceSum"
            made.append(helper.make_node(op, [squares], [out], name=node.name, keepdims=0,
                                         doc_string=node.doc or None))
        return made


def _body(graph: Graph, opset: int):
    """A subgraph as an onnx.GraphProto: its own inputs (typed as far as known), its nodes, its outputs; the
    enclosing graph's tensors it reads are in ONNX's scope, not inputs."""
    helper = require_onnx().helper
    lowering = _Lowering(graph, opset, None)
    lowering.constants(skip=lowering.folded_constants())
    for index in graph.topological_order():
        lowering.node(index)
    inputs = [helper.make_tensor_value_info(leaf.name, code_of(leaf.dtype), leaf.shape) if leaf.dtype else
              helper.make_empty_tensor_value_info(leaf.name)
              for leaf in graph.leaves_of("input") if leaf.name not in graph.outer]
    _, initializers = _inputs_and_initializers(Graph(graph.leaves_of("param"), [], []), None)
    outputs = [helper.make_empty_tensor_value_info(name) for name in graph.outputs]
    return helper.make_graph(lowering.nodes, graph.name or "body", inputs, outputs, initializer=initializers)


def _make_attribute(onnx, key, value, kind):
    helper, A = onnx.helper, onnx.AttributeProto
    if kind in ("int", "float", "ints", "floats") and isinstance(value, np.ndarray):  # a folded constant input
        value = np.ravel(value).tolist() if kind.endswith("s") else np.ravel(value)[0].item()
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


# ---- output typing --------------------------------------------------------------------------------------

def _outputs_and_value_info(graph: Graph, values, opset: int) -> tuple[list, list]:
    """The graph's outputs, typed from the forward values where known (else left for shape inference), and
    the intermediate tensors' types."""
    helper = require_onnx().helper
    value_info, outputs = [], []
    leaf_or_output = set(graph.leaves) | set(graph.outputs)
    dtypes = {}
    if values:
        for node in graph.nodes:
            for position, out in enumerate(node.outputs):
                if out in values:
                    dtypes[out] = _onnx_dtype(node, position, values, opset)
                if out not in leaf_or_output and out in values:
                    value_info.append(_value_info(out, dtypes[out], values[out].shape))
    for name in graph.outputs:
        if values and name in values:
            outputs.append(_value_info(name, dtypes.get(name, values[name].dtype), values[name].shape))
        else:
            outputs.append(helper.make_empty_tensor_value_info(name))
    return outputs, value_info


def _onnx_dtype(node: Node, position: int, values, opset: int):
    """The dtype ONNX gives a node's output at this opset: Dropout's mask had the data's type before opset 10
    (bool since, as cgtools makes it)."""
    if node.op == "Dropout" and position == 1 and opset < 10 and node.inputs[0] in values:
        return values[node.inputs[0]].dtype
    return values[node.outputs[position]].dtype


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
