"""An ONNX file's inline weights read in place: a walk over the protobuf wire format of the file (memory-mapped)
finds where each of the main graph's initializers keeps its raw_data, so the model can be parsed, and checked,
without them. Otherwise every byte of the weights is copied four times before a run (the file read, protobuf's
parse, the checker's own parse, the array taken from the message); mapped, they are read from the page cache
when an op first uses them (or once at load, for those at an offset not a multiple of their item size).

Only what is unambiguous is lifted out: a tensor whose sole data is a raw_data of exactly the bytes its dtype
(one value a byte or more, as numpy holds it) and dims need; anything else stays in the message for onnx to
read and judge as before. A file the walk cannot follow is read the ordinary way."""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgtools.files import mapped_array
from cgtools.onnx.mapping import NUMPY_TYPES

LIFTED_FROM = 4096  # bytes of raw_data: a smaller tensor costs less to copy than to map
WALKED_FROM = 2**20  # bytes of a file: a smaller one parses in about a millisecond as it is
FIELD_BYTES, FREE_FIELDS = 4096, 2000  # the walk's budget: fields per byte of the file, and some for any file
MODEL_GRAPH, GRAPH_INITIALIZER = 7, 5  # field numbers of ModelProto.graph and GraphProto.initializer
DIMS, DATA_TYPE, NAME, RAW_DATA = 1, 2, 8, 9  # TensorProto's
OTHER_DATA = {3, 4, 5, 6, 7, 10, 11, 13, 14}  # segment, the typed data fields, external data and its location
PLAIN = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "bool"}  # dtypes stored one value to itemsize bytes


class NotFollowed(Exception):
    """The bytes are not a protobuf message the walk can follow (a corrupt file, groups, another kind)."""


@dataclass(frozen=True)
class Lifted:
    """Where an initializer's raw_data lies in the file."""
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]


def without_weights(path: Path) -> tuple[bytes, dict[str, Lifted]] | None:
    """The model's bytes with its large plain initializers' raw_data left out, and where each one lies in the
    file (by name); None when there is nothing to lift, too little to be worth the walk, or a file the walk
    cannot follow."""
    if path.stat().st_size < WALKED_FROM:
        return None
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # an empty file, or one that cannot be mapped
            return None
    with buf:
        view = memoryview(buf)
        try:
            return _Walk(view).model()
        except NotFollowed:
            return None
        finally:
            view.release()


def mapped_weights(path: Path, lifted: dict[str, Lifted], maps) -> dict[str, np.ndarray]:
    """The lifted weights as copy-on-write maps of the file (files.mapped_array, `maps` as it takes them); one
    whose bytes lie at an address its dtype cannot be read from directly is copied (from the page cache) into
    memory of its own, as numpy would copy it again at every use."""
    weights = {name: mapped_array(path, w.offset, w.dtype, w.shape, maps=maps) for name, w in lifted.items()}
    return {name: array if array.flags.aligned else np.array(array) for name, array in weights.items()}


def checked_bytes(onnx, model, data: bytes, lifted: dict[str, Lifted]) -> bytes:
    """What onnx's checker reads: the bytes parsed, or when weights were lifted out of them, the model with
    those weights as empty tensors of their dtype (the checker wants a tensor's data to fill its dims; the walk
    lifted only weights whose raw_data does)."""
    if not lifted:
        return data
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        if tensor.name in lifted:
            tensor.ClearField("dims")
            tensor.dims.append(0)
    return copy.SerializeToString()


class _Walk:
    """One walk over a file's bytes. It gives up (NotFollowed) past one field per FIELD_BYTES of the file: the
    walk costs a few microseconds a field, which only large weights repay (a graph of 100,000 small nodes and no
    weights parses faster as a whole)."""

    def __init__(self, buf):
        self.buf, self.lifted = buf, {}
        self.fields_left = len(buf) // FIELD_BYTES + FREE_FIELDS

    def model(self) -> tuple[bytes, dict[str, Lifted]] | None:
        pieces = []
        for number, wire, start, end, field_start in self.fields(0, len(self.buf)):
            if number == MODEL_GRAPH and wire == 2:
                pieces.append(_field(MODEL_GRAPH, self.graph(start, end)))
            else:
                pieces.append(self.buf[field_start:end])
        return (b"".join(pieces), self.lifted) if self.lifted else None

    def graph(self, start: int, end: int) -> bytes:
        pieces = []
        for number, wire, value_start, value_end, field_start in self.fields(start, end):
            tensor = self.tensor(value_start, value_end) if (number, wire) == (GRAPH_INITIALIZER, 2) else None
            pieces.append(self.buf[field_start:value_end] if tensor is None else _field(GRAPH_INITIALIZER, tensor))
        return b"".join(pieces)

    def tensor(self, start: int, end: int) -> bytes | None:
        """The tensor's bytes without its raw_data, noting where that lies; None to keep it whole."""
        dims, data_type, name, raw, others, kept = [], 0, None, [], False, []
        for number, wire, value_start, value_end, field_start in self.fields(start, end):
            if number == RAW_DATA and wire == 2:
                raw.append((value_start, value_end))
                continue
            kept.append(self.buf[field_start:value_end])
            if number == DIMS:
                dims += self.packed(value_start, value_end) if wire == 2 else [_signed(value_start)]
            elif number == DATA_TYPE and wire == 0:
                data_type = value_start
            elif number == NAME and wire == 2:
                name = bytes(self.buf[value_start:value_end]).decode("utf-8", errors="replace")
            others = others or number in OTHER_DATA
        dtype = NUMPY_TYPES.get(data_type)
        if others or len(raw) != 1 or dtype is None or dtype.name not in PLAIN or name is None or name in self.lifted:
            return None
        offset, stop = raw[0]
        if stop - offset < LIFTED_FROM or min(dims, default=1) < 0 or math.prod(dims) * dtype.itemsize != stop - offset:
            return None
        self.lifted[name] = Lifted(offset, dtype.newbyteorder("<"), tuple(dims))  # ONNX stores little-endian
        return b"".join(kept)

    def fields(self, start: int, end: int):
        """(number, wire type, value start, value end, field start) of each field of the message at
        buf[start:end]; for a varint the value itself stands in for the value's start."""
        i = start
        while i < end:
            self.fields_left -= 1
            if self.fields_left < 0:
                raise NotFollowed
            field_start = i
            key, i = self.varint(i, end)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, i = self.varint(i, end)
                yield number, wire, value, i, field_start
                continue
            if wire == 2:
                size, i = self.varint(i, end)
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
            else:  # groups (deprecated, never in ONNX) and invalid wire types
                raise NotFollowed
            if number == 0 or i + size > end:
                raise NotFollowed
            yield number, wire, i, i + size, field_start
            i += size

    def varint(self, i: int, end: int) -> tuple[int, int]:
        buf, value, shift = self.buf, 0, 0
        while True:
            if i >= end or shift > 63:
                raise NotFollowed
            byte = buf[i]
            value |= (byte & 0x7F) << shift
            i += 1
            if byte < 0x80:
                return value, i
            shift += 7

    def packed(self, start: int, end: int) -> list[int]:
        values, i = [], start
        while i < end:
            value, i = self.varint(i, end)
            values.append(_signed(value))
        return values


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value  # int64: two's complement


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field, encoded anew (its length changed)."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data
