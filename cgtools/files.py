"""Files as cgtools writes and reads them: atomic writes, and .npz archives that never unpickle."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from cgtools.errors import CgError


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


def read_npz(path: Path, shown: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz, read without ever unpickling; `shown` is how messages name the file."""
    shown = shown or str(path)
    if not zipfile.is_zipfile(path):
        raise CgError(f"expected an .npz (zip) archive of arrays, found another kind of file: {shown!r}",
                      where="file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError:  # numpy refuses object arrays without pickle, and we never allow pickle
        raise CgError(f"{shown!r} holds object arrays; expected plain numeric arrays", where="file") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise CgError(f"cannot read {shown!r}: {e}", where="file") from None
