"""The one table of ONNX TensorProto element-type codes and the numpy dtype names they stand for."""

from __future__ import annotations

import numpy as np

# TensorProto.DataType code -> dtype name: numpy's name where numpy has the type, ONNX's (lower-cased) otherwise.
TYPE_NAMES: dict[int, str] = {
    0: "undefined", 1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
    15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
    20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1", 24: "float8e8m0", 25: "uint2", 26: "int2",
    27: "float6e2m3", 28: "float6e3m2",
}
CODES: dict[str, int] = {name: code for code, name in TYPE_NAMES.items()}


def _real(name: str) -> bool:
    """Whether numpy holds the type as one of its own booleans, integers or floats."""
    try:
        return np.dtype(name).kind in "biuf"
    except TypeError:  # strings, bfloat16, float8, int4 and the like: not numpy's own
        return False


# The codes of the types numpy holds as booleans, integers and floats (what Cast can convert to), by code.
NUMPY_TYPES: dict[int, np.dtype] = {code: np.dtype(name) for code, name in TYPE_NAMES.items() if _real(name)}
# The float types among them (ONNX's stash_type choices).
FLOAT_TYPES: dict[int, np.dtype] = {code: t for code, t in NUMPY_TYPES.items() if t.kind == "f"}


def code_of(dtype) -> int:
    """The TensorProto code of a numpy dtype."""
    return CODES[np.dtype(dtype).name]


def described(types: dict[int, np.dtype]) -> str:
    """The codes with their types' names: "1 (float32), 2 (uint8), …"."""
    return ", ".join(f"{code} ({t.name})" for code, t in types.items())
