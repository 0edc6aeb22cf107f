"""The one exception users see, and the words that place it: every failure a user can cause is a CgError
that names the file, the place, what was expected and what was found."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Characters a terminal acts on or cannot print, written as their escapes: C0 controls but newline and tab, DEL,
# the C1 controls (ESC [ in one byte) and lone surrogates (no encoding holds them)
_TERMINAL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (9, 10)}
_TERMINAL_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)})


def terminal_safe(text: str) -> str:
    """`text` as a terminal may show it: a name holding `\\x1b]0;…` sets no title and clears no screen."""
    return str(text).translate(_TERMINAL_ESCAPES)


class CgError(Exception):
    """A user-caused failure. Its location is data: `file`, `where` (a JSON path or a node's place) and the
    `detail` itself; the message joins them."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file, self.where, self.detail = file, where, message
        super().__init__(": ".join(part for part in (file, where, message) if part))

    def located(self, *, file: str | None = None, where: str | None = None) -> CgError:
        """The same error (of the same kind) with a file or place filled in where it had none."""
        return type(self)(self.detail, file=self.file or file, where=self.where or where)

    def within(self, where: str) -> CgError:
        """The same error placed inside `where`: its own place, if any, becomes a path below it."""
        inner = f".{self.where}" if self.where and not self.where.startswith("[") else self.where or ""
        return type(self)(self.detail, file=self.file, where=where + inner)


class LossNotScalar(CgError):
    """Backward was asked for from a loss that is not a scalar, and no seed gradient was given."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a known name is close to `name`, else ''."""
    known = list(known)
    same = [k for k in known if k.lower() == name.lower()]  # relu -> Relu before relu -> Selu
    close = same or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def node_place(index: int, node) -> str:
    """How messages name a node: `nodes[3] (Mul 'c')`."""
    return f"nodes[{index}] ({node.op} {node.name!r})"


def json_path(parts) -> str:
    """('nodes', 2, 'inputs', 1) -> 'nodes[2].inputs[1]'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "top level"
