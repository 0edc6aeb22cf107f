"""Reading an ONNX model's external data: from inside its folder only, never longer than its tensors, and
memory-mapped: a tensor's bytes are read from disk when something first uses them, not when the model loads."""

from __future__ import annotations

import math
import weakref
from contextvars import ContextVar
from pathlib import Path

import numpy as np

from cgtools.errors import CgError
from cgtools.files import mapped_array
from cgtools.onnx.mapping import NUMPY_TYPES, all_tensors
from cgtools.values import NARROW_INTS

PACKED = (*NARROW_INTS, "float4_e2m1fn")  # several values to a byte: numpy holds one per byte, so not mappable
MAPPINGS: ContextVar = ContextVar("MAPPINGS")  # the model being read's mappings (files.mapped_array's `maps`)


def check_external_data(onnx, model, path: Path) -> bool:
    """Refuse external data outside the model's folder, missing, or longer than its tensor, before any is read;
    whether the model has any."""
    external = [t for t in all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        external_file(tensor, path)
    MAPPINGS.set(weakref.WeakValueDictionary())  # held by the model's arrays only, gone with them
    return bool(external)


def external_file(tensor, path: Path) -> Path:
    """The checked file holding `tensor`'s external data (`path` is the model's)."""
    file, folder = str(path), path.parent.resolve()
    location = next((e.value for e in tensor.external_data if e.key == "location"), "")
    target = (folder / location).resolve()
    if not location or not target.is_relative_to(folder):
        raise CgError(f"external data at {location!r} is outside the model's folder {str(folder)!r}; "
                      "cgtools reads external data from inside that folder only", file=file,
                      where=f"initializer {tensor.name!r}")
    if not target.is_file():
        raise CgError(f"external data file {location!r} is missing from {str(folder)!r}", file=file,
                      where=f"initializer {tensor.name!r}")
    check_external_size(tensor, target, file)
    return target


def external_array(onnx, tensor, path: Path) -> np.ndarray:
    """An external tensor's value as an np.memmap of its bytes (files.mapped_array), on disk until used; dtypes
    that pack several values in a byte (int4, float4 …) are read whole by onnx instead."""
    target, file = external_file(tensor, path), str(path)
    dtype = NUMPY_TYPES.get(tensor.data_type)
    entries = {e.key: e.value for e in tensor.external_data}
    offset, shape = int(entries.get("offset") or 0), tuple(tensor.dims)
    if dtype is None or dtype.name in PACKED:
        return _read_whole(onnx, tensor, target.parent, file)
    size, length = math.prod(shape) * dtype.itemsize, entries.get("length")
    available = int(length) if length else target.stat().st_size - offset
    if available < size or offset + size > target.stat().st_size:
        raise CgError(f"external data of a {dtype.name} tensor of shape {list(shape)} needs {size:,} bytes from "
                      f"offset {offset:,}; found {max(min(available, target.stat().st_size - offset), 0):,}",
                      file=file, where=f"initializer {tensor.name!r}")
    # ONNX stores little-endian
    return mapped_array(target, offset, dtype.newbyteorder("<"), shape, maps=MAPPINGS.get(None))


def _read_whole(onnx, tensor, folder: Path, file: str) -> np.ndarray:
    copy = onnx.TensorProto()
    copy.CopyFrom(tensor)
    try:
        onnx.external_data_helper.load_external_data_for_tensor(copy, str(folder))
        return onnx.numpy_helper.to_array(copy)
    except Exception as e:  # noqa: BLE001
        raise CgError(f"cannot read external data: {e}", file=file, where=f"initializer {tensor.name!r}") from None


def check_external_size(tensor, target: Path, file: str) -> None:
    """Refuse external data longer than its tensor's dims say, before any of it is read."""
    entries = {e.key: e.value for e in tensor.external_data}
    dtype = NUMPY_TYPES.get(tensor.data_type)
    offset, length = entries.get("offset") or "0", entries.get("length") or ""
    if not offset.isdigit() or not (length.isdigit() or not length):
        raise CgError(f"expected external data's offset and length as whole numbers, found {offset!r} and "
                      f"{length!r}", file=file, where=f"initializer {tensor.name!r}")
    stored = int(length) if length else target.stat().st_size - int(offset)
    expected = math.prod(tensor.dims) * dtype.itemsize if dtype is not None else None
    if expected is not None and stored > expected:
        raise CgError(f"external data of {stored:,} bytes for a {dtype.name} tensor of shape {list(tensor.dims)} "
                      f"({expected:,} bytes)", file=file, where=f"initializer {tensor.name!r}")
