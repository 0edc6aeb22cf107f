"""Tensor values as the format writes them: numbers, nested lists, {dtype, shape, data}, {file, key}."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import ml_dtypes  # registers bfloat16, float8_*, int4 … with numpy, by name
import numpy as np

from cgtools.errors import CgError
from cgtools.files import read_npz
from cgtools.limits import MAX_TOTAL_ELEMENTS, checked_size

# The format's dtypes: every numeric ONNX element type, by its numpy name (ml_dtypes' for those numpy lacks).
NARROW_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                 "float8_e8m0fnu", "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn")
NARROW_INTS = ("int4", "uint4", "int2", "uint2")
DTYPES = ("float16", "float32", "float64", *NARROW_FLOATS, "int8", "int16", "int32", "int64", "uint8", "uint16",
          "uint32", "uint64", *NARROW_INTS, "bool")
# Gradients flow into these only: float8, float6, float4 and e8m0 are storage formats, not ones to train in.
GRAD_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
INLINE_LIMIT = 1000  # arrays with more elements are saved into an .npz beside the graph


CONTAINERS = ("sequence", "optional")  # the dtype of a leaf that holds an ONNX sequence or optional


def holds_tensor(value) -> bool:
    """Whether a slot holds a tensor: not a sequence (a list of arrays) nor an empty optional (None)."""
    return value is not None and type(value) is not list


def carries_gradient(value) -> bool:
    """Whether a slot's value gets a gradient: a tensor of a differentiable dtype, a sequence of them."""
    if type(value) is list:
        return any(carries_gradient(v) for v in value)
    return value is not None and differentiable(value.dtype)


@cache  # by dtype: a dtype's name is slow to make, and backward asks once per tensor
def differentiable(dtype) -> bool:
    """Whether a tensor of this dtype carries a gradient (ml_dtypes' kinds say 'f' for float8_e5m2 alone)."""
    return np.dtype(dtype).name in GRAD_DTYPES


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f" or np.dtype(dtype).name in NARROW_FLOATS


def is_integer(dtype) -> bool:
    return np.dtype(dtype).kind in "iu" or np.dtype(dtype).name in NARROW_INTS


def as_plain(array: np.ndarray) -> np.ndarray:
    """The values of an ml_dtypes array as float64 or int64, which hold every one of them exactly; other
    arrays as they are."""
    name = array.dtype.name
    return array.astype(np.float64) if name in NARROW_FLOATS else array.astype(np.int64) if name in NARROW_INTS \
        else array


NARROW_FLOAT_DTYPES = frozenset(np.dtype(name) for name in NARROW_FLOATS)


def in_float32(forward):
    """`forward` run on float32 copies of its bfloat16, float8 … inputs, its float32 results cast back to that
    type, as onnx's ReferenceEvaluator computes: ml_dtypes lacks much of numpy (einsum) and a Python float
    promotes its arrays to float32."""
    def run(ctx, *inputs, **attrs):
        for a in inputs:  # a loop, not a generator: this runs on every op's every call
            if isinstance(a, np.ndarray) and a.dtype in NARROW_FLOAT_DTYPES:
                narrow = a.dtype
                break
        else:
            return forward(ctx, *inputs, **attrs)
        wide = [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype == narrow else a for a in inputs]
        out = forward(ctx, *wide, **attrs)
        back = [o.astype(narrow) if isinstance(o, np.ndarray) and o.dtype == np.float32 else o
                for o in (out if isinstance(out, tuple) else (out,))]
        return tuple(back) if isinstance(out, tuple) else back[0]
    return run


def decode(value, *, dtype: str | None = None, shape=None, folder: Path | None = None,
           npz_cache: dict | None = None, budget: int = MAX_TOTAL_ELEMENTS) -> np.ndarray:
    """The array a JSON value describes; `dtype` and `shape` are what the tensor entry declares, `budget` the
    elements an .npz may still give."""
    if isinstance(value, dict) and "file" in value:
        array = _from_npz(value["file"], value["key"], folder or Path.cwd(), npz_cache, budget)
        if "dtype" in value:  # bfloat16, float8 …: stored as raw bytes, read by their dtype
            array = _cast(array, value["dtype"])
    elif isinstance(value, dict):
        if "data" not in value:
            raise CgError(f"expected a number, a nested list or {{dtype, shape, data}}, found {str(value)[:40]}")
        array = _from_nested(value["data"], value.get("dtype") or dtype)
        if "shape" in value:
            try:
                size = checked_size(value["shape"])
            except CgError as e:
                raise e.located(where="shape") from None
            if array.size != size:
                raise CgError(f"expected {size} elements for shape {list(value['shape'])}, found {array.size}",
                              where="data")
            array = array.reshape(value["shape"])
    else:
        array = _from_nested(value, dtype)
    if dtype is not None and array.dtype != np.dtype(dtype):
        array = _cast(array, dtype)
    if shape is not None and tuple(shape) != array.shape:
        raise CgError(f"expected shape {list(shape)} as declared, found {list(array.shape)}")
    return array


def _from_nested(data, dtype):
    if isinstance(data, (np.ndarray, np.generic)):  # given from Python: its dtype stands unless one is declared
        array = np.asarray(data)
    else:
        try:
            array = np.array(data)
        except ValueError:
            raise CgError("expected a number or a rectangular nested list, found a ragged list") from None
        if dtype is not None and np.dtype(dtype) == np.uint64 and array.dtype.kind in "fO":
            array = _uint64_of(data, array)  # integers past 2**63 made numpy choose floats
        if dtype is None and array.dtype.kind in "iu":
            array = array.astype(np.float64)  # plain numbers are real-valued unless a dtype says otherwise
    if array.dtype.kind not in "biuf" and array.dtype.name not in DTYPES:
        raise CgError(f"expected numbers, found {str(data)[:40]!r}")
    return array if dtype is None or array.dtype == dtype else _cast(array, dtype)


def _uint64_of(data, array):
    """Whole numbers up to 2**64 - 1 exactly, as uint64; other data as numpy read it (refused later)."""
    exact = np.array(data, dtype=object)
    if all(type(v) is int and 0 <= v < 2**64 for v in exact.flat):
        return exact.astype(np.uint64)
    return array


def _cast(array, dtype):
    target = np.dtype(dtype)
    if array.dtype.kind == "V" and array.dtype.itemsize == target.itemsize and target.name in DTYPES:
        return array.view(target)  # an .npz holds bfloat16, float8 … as raw bytes: the declared dtype reads them
    if is_integer(target) and is_integer(array.dtype) and array.size:  # 2**63 as uint64 would wrap to -2**63
        array = as_plain(array)
        low, high, info = array.min().item(), array.max().item(), ml_dtypes.iinfo(target)
        if low < info.min or high > info.max:
            raise CgError(f"expected {dtype} values, found {low if low < info.min else high!r}, which {dtype} "
                          "cannot hold")
    with np.errstate(invalid="ignore", over="ignore"):  # values that do not fit are reported below
        cast = array.astype(dtype)
    if (is_integer(target) or target.kind == "b") and not np.array_equal(cast.astype(array.dtype), array):
        bad = array[cast.astype(array.dtype) != array].flat[0].item()
        raise CgError(f"expected {dtype} values, found {bad!r}, which {dtype} cannot hold")
    return cast


def _from_npz(file: str, key: str, folder: Path, cache: dict | None, budget: int):
    """The array `key` of the .npz `file`, read alone (each archive's arrays are kept in `cache` by path)."""
    if "\0" in file:  # the operating system cannot name such a file
        raise CgError(f"expected a file name, found one holding a NUL character: {file!r}", where="file")
    path = (folder / file).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise CgError(f"expected a file inside the graph's folder {str(folder)!r}, found {file!r}",
                      where="file")
    arrays = cache.setdefault(path, {}) if cache is not None else {}
    maps = cache.setdefault((path, "mapping"), {}) if cache is not None else None  # one mapping per archive
    if key not in arrays:
        if not path.is_file():
            raise CgError(f"no such file {file!r} in {str(folder)!r}", where="file")
        arrays.update(read_npz(path, file, keys=[key], budget=budget, maps=maps))
    return arrays[key]


def encode(array: np.ndarray, *, name: str, sidecar: dict | None = None, sidecar_file: str = ""):
    """The JSON value of an array: plain for float64, {dtype, shape, data} otherwise, and a reference
    into `sidecar` (saved as `sidecar_file`) when it is large."""
    array = np.asarray(array)
    if sidecar is not None and array.size > INLINE_LIMIT:
        narrow = array.dtype.name in NARROW_FLOATS + NARROW_INTS  # the .npz keeps their bytes, not their type
        sidecar[name] = array.view(np.dtype(("V", array.dtype.itemsize))) if narrow else array
        return {"file": sidecar_file, "key": name, **({"dtype": array.dtype.name} if narrow else {})}
    if array.dtype == np.float64:
        return array.tolist()
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": as_plain(array).ravel().tolist()}
