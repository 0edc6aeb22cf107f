"""The one exception users see: every failure they can cause is a CgError with a readable message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CgError(Exception):
    """A user-caused failure: names the file, the place, what was expected and what was found."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file, self.where, self.detail = file, where, message
        super().__init__(": ".join(part for part in (file, where, message) if part))

    def located(self, *, file: str | None = None, where: str | None = None) -> CgError:
        """The same error (of the same kind) with a file or place filled in where it had none."""
        return type(self)(self.detail, file=self.file or file, where=self.where or where)


class LossNotScalar(CgError):
    """Backward was asked for from a loss that is not a scalar, and no seed gradient was given."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a known name is close to `name`, else ''."""
    known = list(known)
    same = [k for k in known if k.lower() == name.lower()]  # relu -> Relu before relu -> Selu
    close = same or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
