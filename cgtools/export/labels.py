"""How values and gradients are written: one place, shared by tables, DOT labels and HTML tooltips."""

from __future__ import annotations

import numpy as np

INLINE_ELEMENTS = 6  # tensors up to this size are written out in full


def format_number(v, precision: int = 4) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    text = f"{float(v):.{precision}g}"
    return "-0" if text == "-0" else text


def format_shape(shape) -> str:
    return "scalar" if len(shape) == 0 else "[" + "×".join(str(n) for n in shape) + "]"


def format_tensor(value, precision: int = 4, inline: int = INLINE_ELEMENTS) -> str:
    """25 · [1, 2.5] · [[1, 2], [3, 4]] · or, past `inline` elements, `[64×10] μ=0.01 ‖·‖=3.2`."""
    if value is None:
        return ""
    a = np.asarray(value)
    if a.ndim == 0:
        return format_number(a.item(), precision)
    if a.size <= inline:
        return _nested(a.tolist(), precision)
    summary = format_shape(a.shape)
    if a.dtype.kind in "fc" and a.size:
        finite = np.isfinite(a)
        bad = a.size - int(finite.sum())
        if bad:
            summary += f" {bad} non-finite"
        kept = a[finite] if bad else a
        if kept.size:
            mean, norm = float(kept.mean()), float(np.sqrt(np.square(kept, dtype=np.float64).sum()))
            summary += f" μ={format_number(mean, precision)} ‖·‖={format_number(norm, precision)}"
    elif a.size:
        summary += f" min={format_number(a.min())} max={format_number(a.max())}"
    return summary


def _nested(items, precision):
    if isinstance(items, list):
        return "[" + ", ".join(_nested(i, precision) for i in items) + "]"
    return format_number(items, precision)
