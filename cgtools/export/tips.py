"""A large page's tooltips as numbers, not text: the float32 and float64 tensors a hovered edge writes out in
full (up to TOOLTIP_ELEMENTS elements) go into the page once, as the bytes of one array per dtype, and the
page's script writes the hovered one as format_tensor(value, 6) would (page.html's formatNumber, tested
against it). A 100,000-node page then formats none of its tooltips' numbers in Python."""

from __future__ import annotations

import base64

import numpy as np

TOOLTIP_ELEMENTS = 64  # a hovered tensor is written out up to this size, summarised past it
WIDTHS = {np.dtype("float32"): "32", np.dtype("float64"): "64"}  # the page's Float32Array and Float64Array


class Numbers:
    """The numbers of the tooltips of one page, one column per dtype: add() an array, get its offset; texts()
    each column's little-endian bytes in base64."""

    def __init__(self):
        self.columns: dict[str, list[np.ndarray]] = {width: [] for width in WIDTHS.values()}
        self.sizes = dict.fromkeys(WIDTHS.values(), 0)

    def add(self, array: np.ndarray) -> int:
        width = WIDTHS[array.dtype]
        at = self.sizes[width]
        self.columns[width].append(array)
        self.sizes[width] += array.size
        return at

    def joined(self, width: str) -> np.ndarray:
        arrays = self.columns[width]
        return np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0, f"<f{int(width) // 8}")

    def finite(self) -> bool:
        """Whether every number is finite (the script writes no NaN nor infinity; a page with one writes text)."""
        return all(np.isfinite(self.joined(width)).all() for width in self.columns)

    def texts(self) -> dict[str, str]:
        return {width: base64.b64encode(self.joined(width).astype(f"<f{int(width) // 8}").tobytes()).decode()
                for width in self.columns}


def packable(value, grad, share) -> bool:
    """Whether the page's script can write these arrays: float32 or float64 alike (or none), non-empty and
    small enough to be written out."""
    present = [a for a in (value, grad, share) if a is not None]
    return all(type(a) is np.ndarray and a.dtype == value.dtype and a.dtype in WIDTHS
               and 0 < a.size <= TOOLTIP_ELEMENTS for a in present)


def compact_tip(head: str, value, grad, share, numbers: Numbers) -> dict:
    """A tooltip whose value, gradient and share are offsets into `numbers`' column of their dtype (`width`),
    with the shape they share; the script writes `value: …`, `∂loss/∂name: …` and `this read adds: …`."""
    tip = {"head": head, "shape": list(value.shape), "width": WIDTHS[value.dtype]}
    for key, array in (("value", value), ("grad", grad), ("share", share)):
        if array is not None:
            tip[key] = numbers.add(array)
    return tip
