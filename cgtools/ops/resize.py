"""Resize and Upsample: interpolation of a tensor to a new shape (ONNX semantics, nearest, linear, cubic).

Interpolation is separable: each resized axis is multiplied by one out × in matrix whose rows hold the
weights of the input positions an output position reads (edge positions repeated, as ONNX clamps them).
Forward is one matrix product per axis; backward is the transposed products in reverse order: the adjoint
of the interpolation, whatever the mode.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, register_op
from cgtools.ops.conv import work_dtype

Mode = Literal["nearest", "linear", "cubic"]
Coordinates = Literal["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                      "tf_crop_and_resize"]
Nearest = Literal["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def source_positions(out_len: int, in_len: int, scale: float, mode: str, roi=(0.0, 1.0)):
    """Where each output position reads the input (a real-valued index), per coordinate_transformation_mode."""
    o, out_float = np.arange(out_len, dtype=np.float64), scale * in_len
    if mode == "align_corners":
        return np.zeros(out_len) if out_float == 1 else o * (in_len - 1) / (out_float - 1)
    if mode == "asymmetric":
        return o / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if out_float == 1:
            return np.full(out_len, (end - start) * (in_len - 1) / 2 + start * (in_len - 1))
        return o * (end - start) * (in_len - 1) / (out_float - 1) + start * (in_len - 1)
    if mode == "pytorch_half_pixel" and out_float == 1:
        return np.full(out_len, -0.5)
    offset = 0.0
    if mode == "half_pixel_symmetric":  # centre the output on the input when out_len was rounded down
        offset = in_len / 2 * (1 - out_len / out_float)
    return offset + (o + 0.5) / scale - 0.5


def weights(ratio, scale: float, mode: str, nearest_mode: str, cubic_a: float, antialias: bool):
    """Each output position's weights (out × taps, an even number of taps) for the input positions from
    ⌈x⌉ − taps/2 on, given the distance `ratio` ∈ (0, 1] of x past its left neighbour ⌈x⌉ − 1."""
    r = ratio[:, None]
    if mode == "nearest":
        right = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5, "floor": r == 1,
                 "ceil": r > 0}[nearest_mode]
        return np.concatenate([~right, right], axis=1).astype(np.float64)
    reach = 1 if mode == "linear" else 2
    s = min(scale, 1.0) if antialias else 1.0  # downsampling with antialias widens the filter by 1/scale
    start = int(np.floor(-reach / s) + 1)
    x = np.abs((np.arange(start, 2 - start) - r) * s)
    w = np.clip(1 - x, 0, 1) if mode == "linear" else cubic_kernel(x, cubic_a)
    return w / w.sum(axis=1, keepdims=True) if antialias else w


def cubic_kernel(x, a: float):
    """Keys' cubic convolution kernel of |distance| x, with coefficient a."""
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def axis_matrix(in_len, out_len, scale, attrs, roi=(0.0, 1.0)):
    """The out × in interpolation matrix of one axis, and which outputs lie outside the crop (or None)."""
    x = source_positions(out_len, in_len, scale, attrs["coordinate_transformation_mode"], roi)
    left = np.floor(x)
    ratio = np.where(x == left, 1.0, x - left)  # an exact position counts as its left neighbour's right one
    w = weights(ratio, scale, attrs["mode"], attrs["nearest_mode"], attrs["cubic_coeff_a"], attrs["antialias"])
    first = np.ceil(x).astype(np.int64) - w.shape[1] // 2
    index = first[:, None] + np.arange(w.shape[1])
    if attrs["exclude_outside"]:
        w = np.where((index < 0) | (index >= in_len), 0.0, w)
        w = w / np.where(w.sum(axis=1, keepdims=True) == 0, 1, w.sum(axis=1, keepdims=True))
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.arange(out_len)[:, None], np.clip(index, 0, in_len - 1)), w)
    outside = (x < 0) | (x > in_len - 1) if attrs["coordinate_transformation_mode"] == "tf_crop_and_resize" else None
    return matrix, outside


def along(matrix, x, axis):
    """matrix (out × in) applied to x's axis."""
    return np.moveaxis(np.tensordot(matrix, x, axes=(1, axis)), 0, axis)


def plan(shape, roi, scales, sizes, axes, policy):
    """For each resized axis: (axis, scale, output length, its crop (start, end))."""
    rank = len(shape)
    axes = [a % rank for a in axes] or list(range(rank))
    given = sizes if sizes is not None and np.size(sizes) else scales
    if given is None or not np.size(given):
        raise CgError("Resize needs scales or sizes, found neither")
    given = np.ravel(given)
    if len(given) != len(axes):
        raise CgError(f"expected {len(axes)} {'scales' if given is scales else 'sizes'} (one per resized axis of "
                      f"X of shape {list(shape)}), found {given.tolist()}")
    n = len(axes)
    roi = np.ravel(roi) if roi is not None and np.size(roi) else np.repeat([0.0, 1.0], n)
    crops = list(zip(roi[:n], roi[n:]))
    if sizes is not None and np.size(sizes):
        factors = [int(length) / shape[a] for length, a in zip(given, axes)]
        lengths = [int(length) for length in given]
        if policy != "stretch":  # one scale for every axis, so the aspect ratio stays
            scale = min(factors) if policy == "not_larger" else max(factors)
            factors, lengths = [scale] * n, [int(scale * shape[a] + 0.5) for a in axes]
    elif min(given) <= 0:
        raise CgError(f"expected scales > 0, found {given.tolist()}")
    else:
        factors, lengths = [float(s) for s in given], [int(s * shape[a]) for s, a in zip(given, axes)]
    return list(zip(axes, factors, lengths, crops))


def interpolate(ctx, X, steps, attrs, extrapolation_value=0.0):
    """X resized by one matrix per step (axis, scale, length, crop); what backward needs kept in ctx."""
    y = X.astype(work_dtype(X) if X.dtype.kind == "f" else np.float64)
    kept = []
    for axis, scale, length, crop in steps:
        matrix, outside = axis_matrix(X.shape[axis], length, scale, attrs, crop)
        if matrix.shape[0] == matrix.shape[1] and outside is None and np.array_equal(matrix, np.eye(len(matrix))):
            continue  # this axis keeps its size and positions
        y = along(matrix.astype(y.dtype), y, axis)
        if outside is not None and outside.any():  # tf_crop_and_resize: outputs beyond the input take a constant
            where = outside.reshape((-1,) + (1,) * (X.ndim - 1 - axis))
            y = np.where(where, np.asarray(extrapolation_value, y.dtype), y)
        kept.append((axis, matrix.astype(y.dtype), outside))
    ctx.append(kept)
    if X.dtype.kind != "f":
        y = np.clip(np.rint(y), np.iinfo(X.dtype).min, np.iinfo(X.dtype).max)
    return y.astype(X.dtype, copy=False)


def interpolate_backward(ctx, grad):
    g = grad
    for axis, matrix, outside in reversed(ctx[0]):
        if outside is not None:
            g = np.where(outside.reshape((-1,) + (1,) * (g.ndim - 1 - axis)), 0, g)
        g = along(matrix.T, g, axis)
    return g


@register_op("Resize")
class Resize(Operation):
    """X interpolated to new sizes (or by scales) along some axes: nearest, linear or cubic"""

    symbol = "resize"

    @staticmethod
    def forward(ctx, X, roi=None, scales=None, sizes=None, *, antialias: int = 0, axes: list[int] = (),
                coordinate_transformation_mode: Coordinates = "half_pixel", cubic_coeff_a: float = -0.75,
                exclude_outside: int = 0, extrapolation_value: float = 0.0,
                keep_aspect_ratio_policy: Literal["stretch", "not_larger", "not_smaller"] = "stretch",
                mode: Mode = "nearest", nearest_mode: Nearest = "round_prefer_floor"):
        if scales is None and sizes is None and roi is not None and np.size(roi) == X.ndim:
            roi, scales = None, roi  # opset 10's Resize(X, scales)
        if mode == "nearest" and antialias:
            raise CgError("antialias applies to linear and cubic modes, not to nearest")
        steps = plan(X.shape, roi, scales, sizes, axes, keep_aspect_ratio_policy)
        attrs = {"mode": mode, "coordinate_transformation_mode": coordinate_transformation_mode,
                 "nearest_mode": nearest_mode, "cubic_coeff_a": cubic_coeff_a, "antialias": bool(antialias),
                 "exclude_outside": bool(exclude_outside)}
        return interpolate(ctx, X, steps, attrs, extrapolation_value)

    @staticmethod
    def backward(ctx, grad):
        return interpolate_backward(ctx, grad), None, None, None


@register_op("Upsample")
class Upsample(Operation):
    """X enlarged by scales along every axis (nearest or linear; Resize's predecessor, before opset 10)"""

    symbol = "upsample"

    @staticmethod
    def forward(ctx, X, scales=None, *, mode: Literal["nearest", "linear", "bilinear"] = "nearest"):
        steps = plan(X.shape, None, scales, None, (), "stretch")
        attrs = {"mode": "linear" if mode == "bilinear" else mode, "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor", "cubic_coeff_a": -0.75, "antialias": False, "exclude_outside": False}
        return interpolate(ctx, X, steps, attrs)

    @staticmethod
    def backward(ctx, grad):
        return interpolate_backward(ctx, grad), None
