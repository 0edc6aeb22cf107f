"""A large page's tooltips as numbers, not text: the float32 tensors a hovered edge writes out in full (up to
TOOLTIP_ELEMENTS elements) go into the page once, as the bytes of one float32 array, and the page's script
writes the hovered one as format_tensor(value, 6) would (page.html's formatNumber, tested against it): a large
model's page formats none of those numbers in Python, and holds each in 4 bytes rather than about 9 characters.
Not float64: its 8 bytes would make the page larger than its text (a 100,000-node chain's page: 59 MB, not 54)."""

from __future__ import annotations

import base64

import numpy as np

TOOLTIP_ELEMENTS = 64  # a hovered tensor is written out up to this size, summarised past it
FLOAT32 = np.dtype("<f4")


class Numbers:
    """The numbers of the tooltips of one page: add() an array, get its offset; text() the bytes of them all."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self.size = 0

    def add(self, array: np.ndarray) -> int:
        at = self.size
        self.arrays.append(array)
        self.size += array.size
        return at

    def text(self) -> str | None:
        """The bytes of every number, base64; None when one is not finite (the script writes no NaN nor infinity:
        a page with one writes its tooltips as text)."""
        joined = np.concatenate([a.ravel() for a in self.arrays]) if self.arrays else np.zeros(0, FLOAT32)
        if not np.isfinite(joined).all():
            return None
        return base64.b64encode(joined.astype(FLOAT32).tobytes()).decode()


def packable(value, grad, share) -> bool:
    """Whether the page's script can write these arrays: float32 (or none), non-empty and small enough to be
    written out."""
    return all(type(a) is np.ndarray and a.dtype == FLOAT32 and 0 < a.size <= TOOLTIP_ELEMENTS
               for a in (value, grad, share) if a is not None)


def compact_tip(head: str, value, grad, share, numbers: Numbers) -> dict:
    """A tooltip whose value, gradient and share are offsets into `numbers`, with the shape they share; the
    script writes `value: …`, `∂loss/∂name: …` and `this read adds: …` from them."""
    tip = {"head": head, "shape": list(value.shape)}
    for key, array in (("value", value), ("grad", grad), ("share", share)):
        if array is not None:
            tip[key] = numbers.add(array)
    return tip
