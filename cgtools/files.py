"""Files as cgtools writes and reads them: atomic writes, .npz archives that never unpickle, and the limits on
what any file read may hold (array sizes, names and text)."""

from __future__ import annotations

import math
import os
import re
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cgtools.errors import CgError, did_you_mean


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


def write_atomic(path: Path, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then move it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_npz(f, arrays: dict) -> None:
    """np.savez's archive, written member by member: np.savez(f, **arrays) breaks on a tensor named "file" and
    takes one named "allow_pickle" for its flag."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


# The limits on arrays cgtools reads (from documents, .npz archives and ONNX models), checked from declared
# shapes and headers before anything is allocated.
MAX_RANK = 32  # dimensions of one array: numpy 1.x's limit, more than any model uses
MAX_ELEMENTS = 2**28  # elements of one array: 1 GiB of float32, well past the largest embedding table of a model
# an interpreter in numpy can train; a larger tensor is a mistake or an attack, not a graph to look at
MAX_TOTAL_ELEMENTS = 2**29  # elements of all the arrays one graph or one archive gives: 2 GiB of float32, the
# weights of a 500M-parameter model (its run then needs several times that for values and gradients)
MAX_NAME_LENGTH = 1024  # characters of a tensor or node name: exporters' longest paths of module names are a few
# hundred; a name is drawn in every label that shows it and is an .npz member's name (at most 65,535 bytes)
MAX_TEXT_LENGTH = 100_000  # characters of any other text (docs, attributes): a tooltip, not a book
# What no text may hold: lone surrogates (a JSON "\ud800" escape with no pair: no encoding can write them, so
# saving or drawing would fail) and NUL (files, zip members, Graphviz and ONNX names end at it)
_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")
NPY_VERSIONS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def checked_size(shape) -> int:
    """The element count of a declared shape (a list of Python ints, from a document or a header), checked
    before numpy sees it: numpy wraps or refuses [2**62, 4] and [0, 10**20] with its own errors."""
    dims = list(shape)
    if len(dims) > MAX_RANK or any(type(d) is not int or d < 0 for d in dims):
        raise CgError(f"expected a shape of at most {MAX_RANK} dimensions, each a whole number 0 or more, "
                      f"found {_short(dims)}")
    count = math.prod(d for d in dims if d)  # [0, 10**20] holds nothing, yet numpy cannot make it
    if count > MAX_ELEMENTS:
        raise CgError(f"expected a shape whose non-zero dimensions multiply to at most {MAX_ELEMENTS:,} (the "
                      f"elements of one tensor), found {_short(dims)}: {count:,}")
    return math.prod(dims)


def _short(dims) -> str:
    text = str(dims)
    return text if len(text) <= 80 else text[:77] + "…]"


def text_problem(text: str, limit: int = MAX_TEXT_LENGTH, what: str = "text") -> str | None:
    """Why `text` cannot be kept (and written back out), or None: too long, a lone surrogate or a NUL."""
    if len(text) > limit:
        return f"expected {what} of at most {limit:,} characters, found {len(text):,}"
    bad = _UNWRITABLE.search(text)
    if bad is None:
        return None
    if bad.group() == "\0":
        return f"found a NUL character in {what}; names and text may not hold NUL (files cannot store it)"
    return (f"found a lone surrogate \\u{ord(bad.group()):04x} in {what}; names and text must be valid Unicode "
            "(a JSON \\ud800-\\udfff escape needs its pair)")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a tensor or a node, or None."""
    return text_problem(name, MAX_NAME_LENGTH, "a name")


def read_npz(path: Path, shown: str | None = None, keys=None, budget: int = MAX_TOTAL_ELEMENTS
             ) -> dict[str, np.ndarray]:
    """The arrays of an .npz (those named in `keys`, or all), read without ever unpickling; `shown` is how
    messages name the file. Each member's .npy header is read first and checked against the limits, `budget`
    (elements in all) and the size the zip directory gives the member, so no claim is trusted and nothing
    is decompressed before it is known to fit."""
    shown = shown or str(path)
    if not zipfile.is_zipfile(path):
        raise CgError(f"expected an .npz (zip) archive of arrays, found another kind of file: {shown!r}",
                      where="file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
            for key in [] if keys is None else keys:
                if key not in members:
                    raise CgError(f"{shown!r} has no array {key!r}{did_you_mean(key, members)}", where="key")
            wanted = [members[key] for key in (members if keys is None else keys)]
            sizes = [_member_size(archive, info, shown) for info in wanted]
            if sum(sizes) > budget:
                raise CgError(f"{shown!r} holds {sum(sizes):,} elements; at most {budget:,} more fit the limit "
                              f"of {MAX_TOTAL_ELEMENTS:,} for all the values of a graph", where="file")
            return {info.filename[:-4]: _member_array(archive, info, shown) for info in wanted}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise CgError(f"cannot read {shown!r}: {e}", where="file") from None


def _member_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str) -> int:
    """The elements a member holds, by its .npy header, once the header agrees with the zip's directory."""
    key = info.filename[:-4]
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version not in NPY_VERSIONS:
                raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
            shape, _, dtype = NPY_VERSIONS[version](member)
        except ValueError as e:
            raise CgError(f"{shown!r}: the array {key!r} is not a readable .npy array: {e}", where="file") from None
        start = member.tell()
    if dtype.hasobject or dtype.kind not in "biuf":
        raise CgError(f"{shown!r}: the array {key!r} holds {'objects' if dtype.hasobject else dtype}; expected "
                      "plain numeric arrays (booleans, integers, floats)", where="file")
    try:
        count = checked_size(shape)
    except CgError as e:
        raise CgError(f"{shown!r}: the array {key!r}: {e.detail}", where="file") from None
    if start + count * dtype.itemsize != info.file_size:
        raise CgError(f"{shown!r}: the array {key!r} claims {count:,} elements of {dtype} "
                      f"({count * dtype.itemsize:,} bytes) but its member holds {info.file_size - start:,} bytes",
                      where="file")
    return count


def _member_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str) -> np.ndarray:
    """A member checked by _member_size: the zip module stops at the size its directory gave and checks the
    CRC, so a member that decompresses to more (a zip bomb) fails rather than fills memory."""
    with archive.open(info) as member:
        try:
            return np.lib.format.read_array(member, allow_pickle=False)
        except ValueError as e:  # fewer bytes than the header said
            raise CgError(f"{shown!r}: the array {info.filename[:-4]!r} is cut short: {e}", where="file") from None
