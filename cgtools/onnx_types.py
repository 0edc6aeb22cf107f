"""What ONNX reading and writing share: the mapping's constants, the lazy import of `onnx`, and dtypes."""

from __future__ import annotations

import re

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import TYPE_NAMES, code_of
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
    name = TYPE_NAMES.get(elem_type)
    if name is None:  # a code newer than the table: onnx may know it
        try:
            name = _onnx().TensorProto.DataType.Name(elem_type).lower()
        except ValueError:
            return f"type {elem_type}"
    return "an undefined type" if name == "undefined" else name


def _elem_type(dtype) -> int:
    return code_of(dtype)


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

def _fresh(base: str, taken: set) -> str:
    """`base`, or `base_1`, `base_2`, … : the first not in `taken` (which it joins)."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name
