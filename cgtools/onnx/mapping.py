"""The one table of ONNX TensorProto element-type codes and the numpy dtype names they stand for; and what
ONNX reading and writing share: the opset tables, the names both directions use, and the lazy import of
`onnx` (its absence is a CgError naming how to install it).

The ops import this module for dtype codes, so it imports nothing above cgtools.values, and never `onnx` at
import time."""

from __future__ import annotations

import re

import numpy as np

from cgtools.errors import CgError
from cgtools.limits import MAX_TOTAL_ELEMENTS, checked_size, name_problem, text_problem
from cgtools.values import DTYPES, NARROW_FLOATS

# TensorProto.DataType code -> dtype name: numpy's name, or ml_dtypes' (as numpy knows it once ml_dtypes is
# imported) for bfloat16, float8, float6, float4 and the 4- and 2-bit integers.
TYPE_NAMES: dict[int, str] = {
    0: "undefined", 1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
    15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2",
    20: "float8_e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2",
    26: "int2", 27: "float6_e2m3fn", 28: "float6_e3m2fn",
}
CODES: dict[str, int] = {name: code for code, name in TYPE_NAMES.items()}

# The codes of the format's types (what Cast can convert to), by code.
NUMPY_TYPES: dict[int, np.dtype] = {code: np.dtype(name) for code, name in TYPE_NAMES.items() if name in DTYPES}
# numpy's own float types among them (ONNX's stash_type choices).
FLOAT_TYPES: dict[int, np.dtype] = {code: t for code, t in NUMPY_TYPES.items()
                                    if t.kind == "f" and t.name not in NARROW_FLOATS}


def code_of(dtype) -> int:
    """The TensorProto code of a numpy dtype."""
    return CODES[np.dtype(dtype).name]


def described(types: dict[int, np.dtype]) -> str:
    """The codes with their types' names: "1 (float32), 2 (uint8), …"."""
    return ", ".join(f"{code} ({t.name})" for code, t in types.items())


# ---- what reading and writing share ---------------------------------------------------------------------

INSTALL_HINT = "ONNX support needs the onnx package: pip install 'cgtools[onnx]'"
DEFAULT_OPSET = 18
SUPPORTED_WORDS = "the numeric types (bool, integers of 2 to 64 bits, floats of 4 to 64 bits)"
# The widening of small integers (to int32/int64) the format did before it had them: documents written then say
# so in a tensor's doc, and ONNX export writes such a tensor back in its original type.
WIDENED = {"int8": "int32", "uint8": "int32", "int16": "int32", "uint16": "int32", "uint32": "int64"}
WIDENED_DOC = re.compile(r"^(\w+) in the ONNX model, widened to \w+")
LOSS_KEY = "cgtools.loss"  # metadata_props entry naming the graph's loss
SCOPE_KEY = "cgtools.scope"  # a node's metadata_props entry: its scope, a JSON list of module names
TORCH_SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # PyTorch's dynamo exporter: "['', 'layer1', 'conv1', 'conv2d']"
# Ops that take the loader's care rather than the interpreter's: Constant nodes become constant leaves.
LOADER_OPS = frozenset({"Constant"})
# The first opset that takes an op's attribute forms (Operation.attribute_forms: ReduceSum's axes …) as inputs
INPUT_FORMS_SINCE = {
    "ReduceSum": 13, "Squeeze": 13, "DFT": 20, "Unsqueeze": 13, "Split": 13, "Pad": 11, "Dropout": 12, "Slice": 10,
    **{op: 18 for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum")},
}
# The dtype of a float attribute's input where ONNX fixes one (else it is that of the op's first input)
FLOAT_FORM_DTYPES = {("Dropout", "ratio"): "float32"}
# Attributes of early opsets that change nothing at these values (None: at any value): dropped on reading
NEUTRAL_ATTRS = {"consumed_inputs": None, ("BatchNormalization", "spatial"): 1, ("BatchNormalization", "is_test"): 1,
                 ("Dropout", "is_test"): 1}
# Ops whose default axis was 1 before an opset (Softmax-like ops: -1 since 13; DFT: -2 since 20) -> that opset
OLD_AXIS_DEFAULT = {"Softmax": 13, "LogSoftmax": 13, "Hardmax": 13, "DFT": 20}


def attribute_inputs(op) -> list[tuple[str, int, int, str | None]]:
    """For each attribute form of the op class `op`: (attribute, input position, first opset with the input
    form, the input's dtype: a name, or None for the dtype of the op's first input)."""
    since = INPUT_FORMS_SINCE.get(op.op_type)
    if since is None:
        return []
    return [(attr, op.spec.inputs.index(fed), since,
             "int64" if kind == "ints" else FLOAT_FORM_DTYPES.get((op.op_type, attr)))
            for attr, (fed, kind) in op.attribute_forms.items()]


def require_onnx():
    """The `onnx` module, or the CgError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise CgError(INSTALL_HINT) from None
    return onnx


def onnx_dtype_name(elem_type: int) -> str:
    """The numpy-style name of an ONNX element type: 'float32', 'int64', 'bfloat16', 'string' …"""
    name = TYPE_NAMES.get(elem_type)
    if name is None:  # a code newer than the table: onnx may know it
        try:
            name = require_onnx().TensorProto.DataType.Name(elem_type).lower()
        except ValueError:
            return f"type {elem_type}"
    return "an undefined type" if name == "undefined" else name


def first_line(error: Exception) -> str:
    """An exception's first line, or its type's name when it has no message."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def fresh_name(base: str, taken: set) -> str:
    """`base`, or `base_1`, `base_2`, … : the first not in `taken` (which it joins)."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


# ---- what a model holds, and what reading it refuses before any tensor is read ---------------------------

def graphs_within(graph):
    """The GraphProto and every subgraph its nodes' attributes hold, at any depth."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)


def all_tensors(graph):
    """Every TensorProto a graph holds: initializers and tensor attributes, subgraphs included."""
    for g in graphs_within(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def check_text_and_sizes(model, file: str) -> None:
    """Refuse, before any tensor is read (its external data included), a name or text no file can hold (bytes
    that are not UTF-8, NUL, too long: files.text_problem) and tensors over the element limits."""
    total = 0
    _check_text(model.doc_string, "the model's doc", file)
    for prop in model.metadata_props:
        _check_text(prop.value, f"metadata {prop.key!r}", file)
    for g in graphs_within(model.graph):
        _check_text(g.name, "the graph's name", file, name=True)
        _check_text(g.doc_string, "the graph's doc", file)
        for what, entries in (("graph input", g.input), ("graph output", g.output), ("value info", g.value_info)):
            for entry in entries:
                _check_text(entry.name, f"{what} {entry.name!r}", file, name=True)
        sparse = [t for s in g.sparse_initializer for t in (s.values, s.indices)]
        for tensor in (*g.initializer, *sparse):
            total += _check_tensor(tensor, f"initializer {tensor.name!r}", file)
        for i, node in enumerate(g.node):
            total += _check_node(node, f"node {i} ({node.op_type} {node.name!r})", file)
    if total > MAX_TOTAL_ELEMENTS:
        raise CgError(f"expected at most {MAX_TOTAL_ELEMENTS:,} elements in all the tensors of a model, found "
                      f"{total:,}", file=file)


def _check_node(node, where: str, file: str) -> int:
    """Check a node's names and text; the elements its tensor attributes hold."""
    for name in (node.name, *node.input, *node.output):
        _check_text(name, where, file, name=True)
    _check_text(node.doc_string, f"{where}.doc", file)
    for prop in node.metadata_props:
        _check_text(prop.value, f"{where} metadata {prop.key!r}", file)
    total = 0
    for attr in node.attribute:
        _check_text(attr.name, f"{where}.attrs", file, name=True)
        for text in (attr.s, *attr.strings):
            _check_text(text.decode("utf-8", errors="replace"), f"{where}.attrs.{attr.name}", file)
        for tensor in (*([attr.t] if attr.HasField("t") else []), *attr.tensors):
            total += _check_tensor(tensor, f"{where}.attrs.{attr.name}", file)
    return total


def _check_tensor(tensor, where: str, file: str) -> int:
    """Check a tensor's name, its external data's location and its dims; the elements it holds."""
    _check_text(tensor.name, where, file, name=True)
    for entry in tensor.external_data:
        _check_text(entry.value, f"{where} external data {entry.key!r}", file)
    try:
        return checked_size(list(tensor.dims))
    except CgError as e:
        raise e.located(file=file, where=where) from None


def _check_text(text, where: str, file: str, name: bool = False) -> None:
    if isinstance(text, bytes):  # protobuf hands over a string field that is not UTF-8 as bytes
        raise CgError(f"expected UTF-8 text, found bytes that are not: {text[:60]!r}", file=file, where=where)
    problem = name_problem(text) if name else text_problem(text)
    if problem:
        raise CgError(problem, file=file, where=where)
