"""How values, gradients, shapes and ops are written: one place, shared by tables, diagram labels and tooltips."""

from __future__ import annotations

import math

import numpy as np

from cgtools.numerics import non_finite
from cgtools.values import is_float

INLINE_ELEMENTS = 6  # tensors up to this size are written out in full
SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
SUMMED = (np.dtype(np.float32), np.dtype(np.float64))  # whose mean() is exactly sum() / size


def format_number(v, precision: int = 4) -> str:
    """25 (not 2e+01 at low precision), 0.3333, 1.25×10⁻⁵: as a slide would write it."""
    if type(v) is not float:  # tolist() gives floats; anything else is rarer
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v)).lower()
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        v = float(v)
    if v.is_integer() and abs(v) < 1e7:
        return str(int(v))  # also turns -0 into 0
    text = f"{v:.{precision}g}"
    if "e" in text:  # 1.25e-05 -> 1.25×10⁻⁵, and no "e" to mix up with a tensor called e
        mantissa, exponent = text.split("e")
        text = f"{mantissa}×10{str(int(exponent)).translate(SUPERSCRIPT)}"
    return text


def format_shape(shape) -> str:
    return "scalar" if len(shape) == 0 else "[" + "×".join(str(n) for n in shape) + "]"


_DTYPE_TEXT: dict = {}  # dtype -> str(dtype), which numpy makes slowly: a large graph asks for it per tensor


def format_type(value) -> str:
    """`float32 [2×3]`: an array's dtype and shape."""
    dtype = value.dtype
    text = _DTYPE_TEXT.get(dtype) or _DTYPE_TEXT.setdefault(dtype, str(dtype))
    return f"{text} {format_shape(value.shape)}"


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
    if (a.dtype.kind == "c" or is_float(a.dtype)) and a.size:
        summary += float_summary(a, precision)
    elif a.size:
        summary += f" min={format_number(a.min())} max={format_number(a.max())}"
    return summary


def float_summary(a, precision: int) -> str:
    """` μ=0.01 ‖·‖=3.2` of a float or complex array's finite elements, after how many are not finite. A finite
    sum means every element is finite: then none are counted, and for float32 and float64 the sum gives the
    mean as mean() does (whose bookkeeping costs more than the arithmetic on a large graph's small tensors)."""
    total = np.add.reduce(a, axis=None) if a.dtype in SUMMED else None  # a.sum() without its Python wrapper
    bad, kept = 0, a
    if total is None or not math.isfinite(total):
        finite = np.isfinite(a)
        bad = a.size - int(finite.sum())
        kept = a[finite] if bad else a
    text = f" {bad} non-finite" if bad else ""
    if not kept.size:
        return text
    if bad and total is not None:
        total = kept.sum()
    mean = float(total / kept.size if total is not None else kept.mean())
    flat = kept.ravel()  # squared and summed in float64 by einsum's buffered loop: one pass, no float64 copy
    squares = np.einsum("i,i->", flat, flat, dtype=np.float64) if flat.dtype.kind == "f" else \
        np.add.reduce(np.square(np.abs(flat), dtype=np.float64))
    return text + _mean_and_norm(mean, squares, kept.size, precision)


def _mean_and_norm(mean: float, squares, size: int, precision: int) -> str:
    norm = math.sqrt(float(squares))
    if abs(mean) * math.sqrt(size) < 1e-9 * norm:
        mean = 0.0  # rounding noise of a sum that is zero (a softmax's gradient), not information
    return f" μ={format_number(mean, precision)} ‖·‖={format_number(norm, precision)}"


def stacked_sums(arrays) -> list[tuple[list, np.ndarray, np.ndarray]]:
    """The small, C-ordered float32 and float64 arrays among `arrays` in groups of one dtype and shape, each group
    with its arrays' sums and sums of squares (in float64): numpy sums each row of the stacked arrays as it sums
    the array alone, and a large graph's 200,000 small tensors take a few numpy calls instead of a million."""
    groups: dict = {}
    for a in arrays:
        if type(a) is np.ndarray and a.dtype in SUMMED and 0 < a.size <= 4096 and a.flags.c_contiguous:
            groups.setdefault((a.dtype, a.shape), []).append(a)
    found = []
    for group in groups.values():
        rows = np.stack(group).reshape(len(group), -1)
        with np.errstate(over="ignore", invalid="ignore"):  # past float64's range: infinity, as rms says
            found.append((group, np.add.reduce(rows, axis=1),
                          np.add.reduce(np.square(rows, dtype=np.float64), axis=1)))
    return found


def float_summaries(sums: list, precision: int = 4) -> dict[int, tuple[np.ndarray, str]]:
    """format_tensor(a, precision) of each array past INLINE_ELEMENTS in `sums` (stacked_sums), a group at a time.
    By id(a), with `a` to check it is the same array; arrays with a NaN or an infinity are left to format_tensor."""
    found = {}
    for group, totals, squares in sums:
        size = group[0].size
        if size <= INLINE_ELEMENTS:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            means = (totals / size).astype(np.float64)  # in the arrays' dtype, as float(total / a.size)
            norms = np.sqrt(squares)
            means[np.abs(means) * math.sqrt(size) < 1e-9 * norms] = 0.0  # as _mean_and_norm rounds to 0
        head = format_shape(group[0].shape)
        for a, finite, mean, norm in zip(group, np.isfinite(totals).tolist(), _numbers(means.tolist(), precision),
                                          _numbers(norms.tolist(), precision)):
            if finite:
                found[id(a)] = (a, f"{head} μ={mean} ‖·‖={norm}")
    return found


def root_mean_squares(sums: list) -> dict[int, tuple[np.ndarray, float]]:
    """colours.rms of each array in `sums` (stacked_sums), by id(a), with `a` to check it is the same array."""
    found = {}
    for group, _, squares in sums:
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.sqrt(squares / group[0].size)
        values[~np.isfinite(values)] = np.inf
        found.update(zip(map(id, group), zip(group, values.tolist())))
    return found


def _nested(items, precision):
    if items and not isinstance(items[0], list):  # the innermost level, most of the work
        return "[" + ", ".join(_numbers(items, precision)) + "]"
    return "[" + ", ".join([_nested(i, precision) for i in items]) + "]"


def _numbers(items: list, precision: int) -> list[str]:
    """format_number of each item; a float that `g` writes without an exponent, and not as -0, is written as `g`
    writes it (format_number agrees), without the checks: a tooltip of a large graph writes millions."""
    spec, out = f".{precision}g", []
    for v in items:
        if type(v) is float:
            text = format(v, spec)
            if "e" not in text and text != "-0":
                out.append(text)
                continue
        out.append(format_number(v, precision))
    return out


def shorten(name: str, limit: int = 28) -> str:
    """Long names cut to fit a slide (the tooltip keeps the whole name)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def op_symbol(cls, inputs: list[str], folded: dict[str, str]) -> str:
    """The op as drawn: its symbol, with folded constants written in place of their inputs.

    Pow by a small whole number is (·)², infix ops read "3 × ·", others "clip(·, 0, 6)"."""
    if not any(name in folded for name in inputs):
        return cls.symbol
    operands = ["·" if name not in folded else folded[name] for name in inputs if name]
    exponent = folded.get(inputs[1]) if cls.op_type == "Pow" and len(inputs) == 2 else None
    if exponent is not None and inputs[0] not in folded and exponent.lstrip("-").isdigit() and len(exponent) <= 3:
        return "(·)" + exponent.translate(SUPERSCRIPT)
    if cls.infix and len(operands) == 2:
        return f"{operands[0]} {cls.symbol} {operands[1]}"
    return f"{cls.symbol}({', '.join(operands)})"


def has_non_finite(value) -> bool:
    return value is not None and non_finite(np.asarray(value))
