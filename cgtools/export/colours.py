"""Colouring edges by a magnitude of their tensor, on a log scale: its value, its gradient, or its difference to
another run (`cgtools compare`). Where numbers vanish, explode or part ways shows at a glance.

A value's and a gradient's magnitude is the root mean square of its elements (the typical size, not one
outlier's); a difference's is its largest absolute difference (what `compare` reports and its tolerance tests).
Each theme has its scale: plasma (perceptually uniform, luminance rising with the magnitude) cut to read on
the theme's background, grey to black on paper. An edge with no such magnitude is grey; one holding a NaN or
an infinity keeps the alert colour; a magnitude of exactly 0 sits at the scale's low end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

MEASURES = ("value", "grad", "diff")
TITLES = {"value": "rms of the value", "grad": "rms of the gradient", "diff": "max |difference|"}
MAX_TICKS = 7
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Colouring:
    """What the edges are coloured by ("" for their usual colour), and what a comparison adds: each tensor's
    largest difference, what it was compared against, and the node to outline (name, line saying why)."""

    by: str = ""
    diffs: Mapping[str, float] | None = field(default=None, hash=False)
    against: str = ""
    mark: tuple[str, str] | None = None


def rms(array) -> float | None:
    """The root mean square of a numeric tensor's elements (infinity when one is NaN or infinite)."""
    if array is None:
        return None
    a = np.asarray(array)
    if a.size == 0 or a.dtype.kind not in "biuf":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        squares = np.square(a, dtype=np.float64)  # sum / size: mean() without its Python bookkeeping
        value = float(np.sqrt(squares.sum() / squares.size))
    return value if math.isfinite(value) else math.inf


def magnitudes(tensor: str, values: Mapping, grads: Mapping, diffs: Mapping | None,
               known: Mapping | None = None) -> dict[str, float]:
    """The tensor's magnitudes by measure, for those it has; rms looked up in `known` (by id: (array, rms), as
    labels.root_mean_squares makes them for many arrays at once) where it is there."""
    found = {"value": known_rms(values.get(tensor), known), "grad": known_rms(grads.get(tensor), known),
             "diff": diffs.get(tensor) if diffs else None}
    return {measure: m for measure, m in found.items() if m is not None}


def known_rms(array, known: Mapping | None) -> float | None:
    found = known.get(id(array)) if known else None
    return found[1] if found is not None and found[0] is array else rms(array)


@dataclass(frozen=True)
class Scale:
    """From 10**lo to 10**hi (whole powers of ten), through the colours `anchors`, evenly in log10."""

    lo: int
    hi: int
    anchors: tuple[str, ...]

    def position(self, magnitude: float) -> float:
        """Where a magnitude sits, 0 at the low end and 1 at the high end; linear in log10, clamped."""
        if magnitude <= 0:
            return 0.0
        return min(1.0, max(0.0, (math.log10(magnitude) - self.lo) / (self.hi - self.lo)))

    def colour(self, magnitude: float) -> str:
        return blend(self.anchors, self.position(magnitude))

    def ticks(self) -> list[tuple[str, str]]:
        """(label, colour) at powers of ten from end to end, at most MAX_TICKS of them."""
        step = max(1, math.ceil((self.hi - self.lo) / (MAX_TICKS - 1)))
        powers = list(range(self.lo, self.hi, step)) + [self.hi]
        return [(power_label(k), self.colour(10.0 ** k)) for k in powers]


def scale_for(found, anchors) -> Scale | None:
    """The scale spanning the finite, positive magnitudes `found`, its ends whole powers of ten; None when
    there is nothing to scale."""
    finite = [m for m in found if m is not None and math.isfinite(m)]
    positive = [m for m in finite if m > 0]
    if not positive:
        return Scale(0, 1, tuple(anchors)) if finite else None
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    return Scale(lo, hi if hi > lo else lo + 1, tuple(anchors))


def power_label(k: int) -> str:
    """10 to the k, as written on a slide: 10⁻³, 1, 10, 10²."""
    return {0: "1", 1: "10"}.get(k, "10" + str(k).translate(SUPERSCRIPTS))


def blend(anchors, p: float) -> str:
    """The colour at `p` (0 to 1) along evenly spaced anchor colours, mixed linearly between neighbours."""
    at = p * (len(anchors) - 1)
    i = min(int(at), len(anchors) - 2)
    a, b = rgb(anchors[i]), rgb(anchors[i + 1])
    f = at - i
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))


def blends(anchors, ps: list[float]) -> list[str]:
    """blend(anchors, p) of each p, the same arithmetic on numpy arrays (rint rounds half to even, as round does):
    a 100,000-node page colours 170,000 edges by each measure."""
    at = np.asarray(ps, dtype=np.float64) * (len(anchors) - 1)
    i = np.minimum(at.astype(np.int64), len(anchors) - 2)  # int(at): at is 0 or more
    ends = np.array([rgb(anchor) for anchor in anchors], dtype=np.float64)
    a, b = ends[i], ends[i + 1]
    mixed = np.rint(a + (b - a) * (at - i)[:, None]).astype(np.int64)
    return [f"#{n:06x}" for n in (mixed[:, 0] << 16 | mixed[:, 1] << 8 | mixed[:, 2]).tolist()]


def rgb(colour: str) -> tuple[int, int, int]:
    n = int(colour.lstrip("#"), 16)
    return n >> 16 & 255, n >> 8 & 255, n & 255


@dataclass
class Legend:
    """What a coloured drawing explains: the measure, the ticks, and whether grey and alert edges are present."""

    title: str
    ticks: list[tuple[str, str]]
    grey: bool
    alert: bool


def edge_colours(found: list[dict], measure: str, t: dict, against: str = "") -> tuple[list[str], Legend] | None:
    """Each edge's colour by `measure`, from its magnitudes `found`, and the legend; None when no edge has
    that magnitude."""
    ms = [f.get(measure) for f in found]
    scale = scale_for(ms, t["scale"])
    if not any(m is not None for m in ms):
        return None
    colours = [t["unmeasured"] if m is None else t["alert"] for m in ms]
    measured = [k for k, m in enumerate(ms) if m is not None and math.isfinite(m)]
    for k, colour in zip(measured, blends(scale.anchors, [scale.position(ms[k]) for k in measured])):
        colours[k] = colour
    title = TITLES[measure] + (f" against {against}" if measure == "diff" and against else "") + ", log scale"
    zero = [("0", scale.colour(0))] if 0 in ms else []  # drawn as the low end
    ticks = zero + (scale.ticks() if any(m and math.isfinite(m) for m in ms) else [])
    legend = Legend(title, ticks, None in ms, any(m is not None and not math.isfinite(m) for m in ms))
    return colours, legend
