"""Reading an ONNX model's external data: from inside its folder only, never longer than its tensors."""

from __future__ import annotations

import math
from pathlib import Path

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, all_tensors


def load_external_data(onnx, model, path: Path) -> None:
    file, folder = str(path), path.parent.resolve()
    external = [t for t in all_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
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
        check_external_size(tensor, target, file)
    if external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(folder))
        except Exception as e:  # noqa: BLE001
            raise CgError(f"cannot read external data: {e}", file=file) from None


def check_external_size(tensor, target: Path, file: str) -> None:
    """Refuse external data longer than its tensor's dims say, before onnx reads it all into memory."""
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
