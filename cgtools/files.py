"""Files as cgtools writes and reads them: writes that replace a file whole or not at all (and never replace what
is not a regular file), .npz archives that never unpickle, read within the limits (limits.py), and arrays
memory-mapped from files (an .npz's stored members, an ONNX model's external data): read when first used."""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import struct
import sys
import zipfile
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgtools.errors import CgError, did_you_mean
from cgtools.limits import MAX_TOTAL_ELEMENTS, checked_size

# Paths naming a descriptor this process already holds: written into where it points, never replaced or truncated
DESCRIPTOR_PATHS = {"/dev/stdout": 1, "/dev/stderr": 2}
DESCRIPTOR_FOLDERS = ("/dev/fd/", "/proc/self/fd/")
TEMP_NAME_KEEP = 50  # characters of the name kept in its temp file's: 200 bytes of UTF-8 at most, NAME_MAX is 255
MAX_MEMBER_NAME = 65535 - len(".npy")  # UTF-8 bytes of an array's name: a zip entry's name length is 16 bits


@dataclass
class Staged:
    """A file written and synced to disk under a temporary name, replacing `target` on commit(); `tmp` is None
    once committed or discarded, or when the data went straight into a device or pipe."""
    target: Path
    tmp: Path | None

    def commit(self) -> None:
        if self.tmp is None:
            return
        try:
            os.replace(self.tmp, self.target)
        except OSError as e:
            raise _cannot_write(e, self.target) from None
        self.tmp = None
        _sync_folder(self.target.parent)

    def discard(self) -> None:
        if self.tmp is not None:
            with suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = None


def write_atomic(path: Path, write) -> None:
    """Call `write(file)` and put the result at `path` whole or not at all (see stage)."""
    staged = stage(path, write)
    try:
        staged.commit()
    finally:
        staged.discard()


def usable_path(path) -> Path:
    """`path` as a Path the operating system can take: a NUL or a lone surrogate (no encoding holds it) in a
    path given from Python is a CgError, not Python's ValueError."""
    text = os.fspath(path)
    if "\0" in text:
        raise CgError("a path cannot hold a NUL character", file=repr(text))
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise CgError("a path must be text the file system can store (it holds a lone surrogate)",
                      file=ascii(text)) from None
    return Path(text)


def stage(path: Path, write) -> Staged:
    """Call `write(file)` on a temporary file beside the regular file `path` names (through its symlinks, which
    keep pointing at it), synced to disk, to replace it on commit() with its permission bits, or with what open()
    would give a new file. A character device, a pipe being read or a descriptor path (/dev/stdout) is written
    into as a shell's `>` would; a folder, socket, block device, FIFO nobody reads or read-only file is refused.
    The temp file is removed on every failure; leftovers of killed writers are removed by the next write."""
    path = usable_path(path)
    found = _existing(path)
    if found is not None and (is_stream(path) or not stat.S_ISREG(found.st_mode)):
        _write_into(path, found, write)
        return Staged(path, None)
    if found is not None and not os.access(path, os.W_OK):
        raise CgError("the file is read-only; cgtools does not replace it", file=str(path))
    target = Path(os.path.realpath(path))
    staged = Staged(target, _create_temp(target, None if found is None else stat.S_IMODE(found.st_mode)))
    try:
        with open(staged.tmp, "r+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        staged.discard()
        raise _cannot_write(e, path) from None
    except BaseException:
        staged.discard()
        raise
    _remove_leftovers(target)
    return staged


def is_stream(path: Path) -> bool:
    """Whether writing to `path` goes into something already there (a device, a pipe, /dev/stdout) rather than
    a regular file in a folder."""
    found = _existing(Path(path))
    return found is not None and (_descriptor(Path(path)) is not None or stat.S_ISCHR(found.st_mode)
                                  or stat.S_ISFIFO(found.st_mode))


def _existing(path: Path) -> os.stat_result | None:
    """What `path` is (through symlinks), None when nothing is there yet."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _cannot_write(e, path) from None


def _descriptor(path: Path) -> int | None:
    """The descriptor `/dev/stdout`, `/dev/fd/N` or `/proc/self/fd/N` names, else None."""
    text = str(path)
    if text in DESCRIPTOR_PATHS:
        return DESCRIPTOR_PATHS[text]
    folder = next((f for f in DESCRIPTOR_FOLDERS if text.startswith(f)), None)
    return int(text[len(folder):]) if folder and text[len(folder):].isdigit() else None


def _write_into(path: Path, found: os.stat_result, write) -> None:
    """`write` into what `path` already is, as a shell redirect would; never a hang on a FIFO nobody reads."""
    mode = found.st_mode
    what = ("a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a block device" if stat.S_ISBLK(mode) else None)
    if what:
        raise CgError(f"expected a file to write, found {what}; give another output name", file=str(path))
    number = _descriptor(path)
    try:
        if number is not None:
            sys.stdout.flush()
            fd = os.dup(number)
        else:  # O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader forever
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC)
            os.set_blocking(fd, True)
        with open(fd, "wb") as f:
            write(f)
    except OSError as e:
        if e.errno == errno.ENXIO:  # a FIFO with no reader
            raise CgError("the output is a FIFO (named pipe) that no process is reading; start its reader first "
                          "or give another output name", file=str(path)) from None
        raise _cannot_write(e, path) from None


def _create_temp(target: Path, mode: int | None) -> Path:
    """A new file beside `target`, named `.NAME.PID.RANDOM.tmp`, with `mode` (None: what open() gives)."""
    tmp = target.parent / f".{target.name[:TEMP_NAME_KEEP]}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else 0o600)
    except OSError as e:
        raise CgError(f"cannot create a file in {str(target.parent)!r}: {e.strerror}", file=str(target)) from None
    try:
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return tmp


def _remove_leftovers(target: Path) -> None:
    """Remove the temp files of earlier writes of `target` whose process has died (killed mid-write)."""
    pattern = re.compile(re.escape(f".{target.name[:TEMP_NAME_KEEP]}.") + r"(\d+)\.[0-9a-f]{8}\.tmp")
    with suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not _alive(int(match[1])):
                with suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another write of this process, in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or no pid at all: leave the file alone
    return True


def _sync_folder(folder: Path) -> None:
    """Make the rename durable; some systems cannot open or sync a folder, and the file itself is synced."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _cannot_write(e: OSError, path: Path) -> CgError:
    return CgError(f"cannot write: {e.strerror or e}", file=str(path))


def write_npz(f, arrays: dict) -> None:
    """np.savez's archive, written member by member: np.savez(f, **arrays) breaks on a tensor named "file" and
    takes one named "allow_pickle" for its flag. Names zip or np.load would mangle are refused first."""
    check_member_names(arrays)
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def check_member_names(keys) -> None:
    """Refuse array names an .npz cannot hold as they are (check_member_name), and a name beside the same name
    plus `.npy`: numpy's lookup of "x.npy" finds the member of "x" first."""
    for key in keys:
        check_member_name(key)
        if key + ".npy" in keys:
            raise CgError(f"cannot store both {key!r} and {key + '.npy'!r} in one .npz: numpy would read the second "
                          "as the first")


def check_member_name(key: str) -> None:
    """Refuse an array name an .npz cannot hold as it is: zip cuts a name at NUL, stores UTF-8 (no lone
    surrogates) and at most 65,535 bytes. Anything else (spaces, `/`, `..`, a `.npy` suffix) reads back equal."""
    shown = repr(key if len(key) <= 60 else key[:57] + "…")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise CgError(f"cannot store the array {shown} in an .npz: its name holds a lone surrogate, which UTF-8 "
                      "cannot encode") from None
    if "\0" in key:
        raise CgError(f"cannot store the array {shown} in an .npz: zip would cut its name at the NUL character")
    if size > MAX_MEMBER_NAME:
        raise CgError(f"cannot store the array {shown} in an .npz: its name has {size:,} bytes, a zip entry's "
                      f"name at most {MAX_MEMBER_NAME:,}")


MAPPED_FROM = 2**20  # bytes of an .npz member mapped rather than read: a smaller one costs less to read at once


def mapped_array(path: Path, offset: int, dtype, shape, fortran: bool = False, maps=None) -> np.ndarray:
    """An np.memmap of the array stored at `offset` in the file `path` (the caller checked that the file holds
    it): its bytes stay on disk until used; copy-on-write, so writing into it changes memory, never the file.
    `maps` (a dict, or a WeakValueDictionary) keeps one mapping per file for the arrays of one load, as each
    mapping holds a file descriptor; arrays of two loads never share one, so writing into one leaves the other."""
    dtype, shape = np.dtype(dtype), tuple(shape)
    size = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if size == 0:
        return np.zeros(shape, dtype)
    maps = {} if maps is None else maps
    key = str(Path(path).resolve())
    whole = maps.get(key)
    if whole is None:
        whole = maps[key] = np.memmap(path, np.uint8, mode="c")
    flat = whole[offset:offset + size].view(dtype)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


NPY_VERSIONS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz(path: Path, shown: str | None = None, keys=None, budget: int = MAX_TOTAL_ELEMENTS, maps=None
             ) -> dict[str, np.ndarray]:
    """The arrays of an .npz (those named in `keys`, or all), read without ever unpickling; `shown` is how
    messages name the file; `maps` as mapped_array takes it. Each member's .npy header is read first and checked
    against the limits, `budget` (elements in all) and the size the zip directory gives the member, so no claim
    is trusted and nothing is decompressed before it is known to fit."""
    maps = {} if maps is None else maps
    shown = shown or str(path)
    path = usable_path(path)
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
            headers = [_member_header(archive, info, shown) for info in wanted]
            total = sum(count for count, *_ in headers)
            if total > budget:
                raise CgError(f"{shown!r} holds {total:,} elements; at most {budget:,} more fit the limit "
                              f"of {MAX_TOTAL_ELEMENTS:,} for all the values of a graph", where="file")
            return {info.filename[:-4]: _member_array(archive, info, shown, (path, maps), header)
                    for info, header in zip(wanted, headers)}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise CgError(f"cannot read {shown!r}: {e}", where="file") from None


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str) -> tuple:
    """A member's elements and .npy header (shape, fortran order, dtype, where its data starts in the member),
    once the header agrees with the zip's directory."""
    key = info.filename[:-4]
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version not in NPY_VERSIONS:
                raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
            shape, fortran, dtype = NPY_VERSIONS[version](member)
        except ValueError as e:
            raise CgError(f"{shown!r}: the array {key!r} is not a readable .npy array: {e}", where="file") from None
        start = member.tell()
    if dtype.hasobject or dtype.kind not in "biufV" or dtype.fields is not None:  # V: bfloat16, float8 … as bytes
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
    return count, shape, fortran, dtype, start


def _member_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str, mapping: tuple, header: tuple
                  ) -> np.ndarray:
    """A member checked by _member_header. A large stored (uncompressed, as np.savez and cgtools write) member
    is memory-mapped, read when first used; a small or compressed one is read now: the zip module stops at the size its
    directory gave and checks the CRC, so a member that decompresses to more (a zip bomb) fails rather than
    fills memory."""
    (path, maps), (_, shape, fortran, dtype, start) = mapping, header
    if info.compress_type == zipfile.ZIP_STORED and info.file_size >= MAPPED_FROM:
        archive.fp.seek(info.header_offset)
        local = archive.fp.read(30)  # the member's local header, then its name and extra field, then its data
        if local[:4] == b"PK\x03\x04":
            data = info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30]))
            if data + info.file_size <= os.stat(path).st_size:
                return mapped_array(path, data + start, dtype, shape, fortran, maps)
    with archive.open(info) as member:
        try:
            return np.lib.format.read_array(member, allow_pickle=False)
        except ValueError as e:  # fewer bytes than the header said
            raise CgError(f"{shown!r}: the array {info.filename[:-4]!r} is cut short: {e}", where="file") from None
