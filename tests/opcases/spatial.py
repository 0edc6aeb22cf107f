"""The cases of the spatial ops: Resize, ConvTranspose, the extra normalisations and pools, GridSample.

torch's functional forms are the oracles where they map; finite differences check the rest.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from opcheck import SKIP, Const, case, distinct, nonzero, randn


def sizes(*n):
    return Const(list(n), "int64")


def scales(*s):
    return Const(list(s), "float32")


def interpolate(**kwargs):
    return lambda x, *skipped: F.interpolate(x, **kwargs)


def upsample_2x(x):
    """Linear 2× along the last axis, asymmetric (output o reads o/2), the last element repeated past the end."""
    right = torch.cat([x[..., 1:], x[..., -1:]], -1)
    return torch.stack([x, (x + right) / 2], -1).flatten(-2)


def lp_pool(p, kernel, stride=1, pads=None):
    """(Σ |x|^p)^(1/p) over each window, zeros padded as ONNX's pads say."""
    def fn(x):
        x = x if pads is None else pad(x, pads)
        return (F.avg_pool2d(x.abs() ** p, kernel, stride) * math.prod(kernel)) ** (1 / p)

    return fn


def pad(x, pads):
    """ONNX pads [x1_begin, x2_begin, x1_end, x2_end] as torch's F.pad."""
    return F.pad(x, [pads[1], pads[3], pads[0], pads[2]])


def max_pool_indices(x, kernel):
    """MaxPool's indices as torch gives them (within each plane) and as ONNX does (in the whole tensor)."""
    _, within = F.max_pool2d(torch.from_numpy(x), kernel, return_indices=True)
    planes = torch.arange(x.shape[0] * x.shape[1]).reshape(x.shape[0], x.shape[1], 1, 1)
    return within, (within + planes * x.shape[2] * x.shape[3]).numpy()


def rms_norm(x, w, dims, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps) * w


CASES = [
    case("RMSNormalization-last-axis", [randn(2, 3, 4), randn(4)], lambda x, w: rms_norm(x, w, (-1,))),
    case("RMSNormalization-axis1-epsilon", [randn(2, 3, 4), randn(3, 4)],
         lambda x, w: rms_norm(x, w, (1, 2), 0.1), axis=1, epsilon=0.1),
    case("RMSNormalization-broadcast-scale", [randn(3, 5), randn(1)], lambda x, w: rms_norm(x, w, (-1,))),
    case("GroupNormalization-per-channel", [randn(2, 6, 3, 2), randn(6), randn(6)],
         lambda x, s, b: F.group_norm(x, 3, s, b, eps=1e-5), num_groups=3),
    case("GroupNormalization-per-group-opset18", [randn(2, 4, 5), randn(2), randn(2)],
         lambda x, s, b: F.group_norm(x, 2, s.repeat_interleave(2), b.repeat_interleave(2), eps=0.01),
         num_groups=2, epsilon=0.01),
    case("LRN-size3", [randn(2, 5, 3, 3)], lambda x: F.local_response_norm(x, 3, 1e-2, 0.75, 1.0),
         size=3, alpha=1e-2),
    # torch puts an even window's extra channel before c, ONNX after it: flipping the channels swaps the sides.
    case("LRN-even-size-bias", [randn(1, 6, 2, 3)],
         lambda x: F.local_response_norm(x.flip(1), 4, 0.3, 0.6, 2.0).flip(1),
         size=4, alpha=0.3, beta=0.6, bias=2.0),
]

# torch's modes as ONNX spells them: nearest is asymmetric with floor, nearest-exact half_pixel rounding up
# halves, the others half_pixel (align_corners=False) or align_corners.
CASES += [
    case("Resize-nearest-upsample-scales-asymmetric-floor", [randn(1, 2, 2, 3), SKIP, scales(1, 1, 2, 3)],
         interpolate(scale_factor=(2, 3), mode="nearest"), coordinate_transformation_mode="asymmetric",
         nearest_mode="floor"),
    case("Resize-nearest-downsample-sizes-half-pixel", [randn(1, 2, 5, 7), SKIP, SKIP, sizes(1, 2, 3, 4)],
         interpolate(size=(3, 4), mode="nearest-exact"), nearest_mode="round_prefer_ceil"),
    case("Resize-linear-upsample-sizes-half-pixel", [randn(2, 1, 3, 4), SKIP, SKIP, sizes(2, 1, 5, 7)],
         interpolate(size=(5, 7), mode="bilinear"), mode="linear"),
    case("Resize-linear-downsample-sizes-align-corners", [randn(1, 2, 6, 5), SKIP, SKIP, sizes(1, 2, 4, 3)],
         interpolate(size=(4, 3), mode="bilinear", align_corners=True), mode="linear",
         coordinate_transformation_mode="align_corners"),
    case("Resize-linear-1d-axes", [randn(2, 3, 5), SKIP, SKIP, sizes(8)],
         interpolate(size=8, mode="linear"), mode="linear", axes=[2]),
    case("Resize-linear-3d", [randn(1, 1, 2, 3, 3), SKIP, SKIP, sizes(1, 1, 3, 4, 2)],
         interpolate(size=(3, 4, 2), mode="trilinear"), mode="linear"),
    case("Resize-cubic-upsample-sizes", [randn(1, 2, 4, 4), SKIP, SKIP, sizes(1, 2, 7, 6)],
         interpolate(size=(7, 6), mode="bicubic"), mode="cubic"),
    case("Resize-cubic-downsample-align-corners-axes", [randn(1, 2, 6, 5), SKIP, SKIP, sizes(4, 3)],
         interpolate(size=(4, 3), mode="bicubic", align_corners=True), mode="cubic", axes=[2, 3],
         coordinate_transformation_mode="align_corners"),
    case("Upsample-nearest", [randn(1, 2, 2, 3), scales(1, 1, 2, 2)],
         interpolate(scale_factor=2, mode="nearest")),
    case("Upsample-linear-asymmetric", [randn(1, 1, 3, 4), scales(1, 1, 1, 2)],
         lambda x, s: upsample_2x(x), mode="linear"),
]

CASES += [
    case("ConvTranspose-2d-bias", [randn(1, 2, 3, 3), randn(2, 3, 3, 3), randn(3)], F.conv_transpose2d),
    case("ConvTranspose-2d-strides-pads-output-padding", [randn(2, 2, 3, 4), randn(2, 2, 3, 2)],
         lambda x, w: F.conv_transpose2d(x, w, stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
         strides=[2, 3], pads=[1, 0, 1, 0], output_padding=[1, 2]),
    case("ConvTranspose-2d-groups-dilations", [randn(1, 4, 3, 3), randn(4, 1, 2, 2), randn(2)],
         lambda x, w, b: F.conv_transpose2d(x, w, b, groups=2, dilation=(2, 1)), group=2, dilations=[2, 1]),
    case("ConvTranspose-1d-asymmetric-pads", [randn(2, 3, 5), randn(3, 2, 3)],
         lambda x, w: F.conv_transpose1d(x, w, stride=2)[..., 1:-2], strides=[2], pads=[1, 2]),
    # output_shape one larger than the strides make: a row and column of zeros (plus the bias) at the end
    case("ConvTranspose-2d-output-shape", [randn(1, 1, 3, 3), randn(1, 2, 3, 3), randn(2)],
         lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(3, 2), output_padding=1), strides=[3, 2],
         output_shape=[10, 8]),
    case("ConvTranspose-2d-auto-pad-same-upper", [randn(1, 2, 3, 3), randn(2, 2, 3, 3)],
         lambda x, w: F.conv_transpose2d(x, w, stride=2)[..., :6, :6], strides=[2, 2], auto_pad="SAME_UPPER"),
    case("ConvTranspose-3d", [randn(1, 2, 2, 3, 2), randn(2, 1, 2, 2, 2), randn(1)], F.conv_transpose3d),
    case("LpPool-2d-p2", [randn(1, 2, 4, 5)], lambda x: F.lp_pool2d(x, 2, (2, 2), 2), kernel_shape=[2, 2],
         strides=[2, 2]),
    case("LpPool-2d-p3-pads", [randn(1, 2, 4, 4)], lp_pool(3, (3, 3), 1, [1, 0, 1, 2]), kernel_shape=[3, 3],
         p=3, pads=[1, 0, 1, 2]),
    case("LpPool-2d-p1", [nonzero(2, 1, 3, 4)], lp_pool(1, (2, 3)), kernel_shape=[2, 3], p=1),
]

X_POOLED = distinct(1, 2, 4, 6)
INDICES_TORCH, INDICES = max_pool_indices(X_POOLED, 2)
CASES += [
    case("MaxUnpool-2d", [randn(1, 2, 2, 3), Const(INDICES)],
         lambda x, i: F.max_unpool2d(x, INDICES_TORCH, 2), kernel_shape=[2, 2], strides=[2, 2]),
    # a larger output_shape pads the unpooled shape at the end (torch would reread the indices in the new shape)
    case("MaxUnpool-2d-output-shape", [randn(1, 2, 2, 3), Const(INDICES), Const([1, 2, 5, 7], "int64")],
         lambda x, i, s: F.pad(F.max_unpool2d(x, INDICES_TORCH, 2), [0, 1, 0, 1]), kernel_shape=[2, 2],
         strides=[2, 2]),
]

# Grid points spread a little beyond −1 … 1, so the padding modes matter. torch's bicubic pads its taps but
# never clamps the point itself, as ONNX does beyond the border: its cubic cases keep the points inside.
CASES += [
    case("GridSample-linear-zeros", [randn(2, 2, 4, 5), 0.7 * randn(2, 3, 4, 2)],
         lambda x, g: F.grid_sample(x, g, "bilinear", "zeros", align_corners=False)),
    case("GridSample-linear-border-align-corners", [randn(1, 3, 3, 4), 0.7 * randn(1, 4, 2, 2)],
         lambda x, g: F.grid_sample(x, g, "bilinear", "border", align_corners=True), padding_mode="border",
         align_corners=1),
    case("GridSample-linear-reflection", [randn(1, 2, 4, 3), 0.9 * randn(1, 3, 3, 2)],
         lambda x, g: F.grid_sample(x, g, "bilinear", "reflection", align_corners=False),
         padding_mode="reflection"),
    case("GridSample-bilinear-reflection-align-corners-opset16", [randn(1, 2, 4, 3), 0.9 * randn(1, 3, 3, 2)],
         lambda x, g: F.grid_sample(x, g, "bilinear", "reflection", align_corners=True), mode="bilinear",
         padding_mode="reflection", align_corners=1),
    case("GridSample-nearest-zeros", [randn(1, 2, 4, 5), 0.7 * randn(1, 3, 3, 2)],
         lambda x, g: F.grid_sample(x, g, "nearest", "zeros", align_corners=False), mode="nearest"),
    case("GridSample-cubic-zeros", [randn(1, 2, 5, 4), 0.7 * randn(1, 3, 2, 2)],
         lambda x, g: F.grid_sample(x, g, "bicubic", "zeros", align_corners=False), mode="cubic"),
    case("GridSample-cubic-border-inside", [randn(1, 1, 5, 6), 0.4 * randn(1, 3, 3, 2)],
         lambda x, g: F.grid_sample(x, g, "bicubic", "border", align_corners=True), mode="cubic",
         padding_mode="border", align_corners=1),
    case("GridSample-3d-linear-border", [randn(1, 2, 3, 4, 3), 0.7 * randn(1, 2, 2, 3, 3)],
         lambda x, g: F.grid_sample(x, g, "bilinear", "border", align_corners=False), padding_mode="border"),
    case("AffineGrid-2d", [randn(2, 2, 3), Const([2, 1, 3, 4], "int64")],
         lambda t, s: F.affine_grid(t, [2, 1, 3, 4], align_corners=False)),
    case("AffineGrid-3d-align-corners", [randn(1, 3, 4), Const([1, 2, 2, 3, 4], "int64")],
         lambda t, s: F.affine_grid(t, [1, 2, 2, 3, 4], align_corners=True), align_corners=1),
]

# ONNX's antialias picks its taps unlike torch's (and its cubic keeps a = −0.75), and torch has no crop with
# extrapolation nor exclude_outside: these are checked against finite differences only (tests/test_spatial_ops.py).
FINITE_DIFFERENCE_ONLY_CASES = [
    case("Resize-linear-antialias-downsample", [randn(1, 2, 8, 7), SKIP, SKIP, sizes(1, 2, 3, 4)], None,
         mode="linear", antialias=1),
    case("Resize-cubic-antialias-downsample-scales", [randn(1, 1, 9, 6), SKIP, scales(1, 1, 0.5, 0.6)], None,
         mode="cubic", antialias=1),
    case("Resize-linear-tf-crop-and-resize-extrapolation", [randn(1, 1, 4, 5), Const([0.4, -0.2, 0.9, 1.3]),
                                                            SKIP, sizes(3, 4)], None,
         mode="linear", axes=[2, 3], coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=2.0),
    case("Resize-cubic-exclude-outside", [randn(1, 1, 4, 4), SKIP, scales(1, 1, 1.6, 0.8)], None, mode="cubic",
         exclude_outside=1, cubic_coeff_a=-0.5),
    case("Resize-linear-half-pixel-symmetric-not-larger", [randn(1, 1, 4, 6), SKIP, SKIP, sizes(3, 7)], None,
         mode="linear", axes=[2, 3], coordinate_transformation_mode="half_pixel_symmetric",
         keep_aspect_ratio_policy="not_larger"),
]

TORCH_ONLY_CASES: list = []
NON_FLOAT_OPS: set[str] = set()
LOW_PRECISION_CASES = ["GroupNormalization-per-channel", "RMSNormalization-axis1-epsilon", "LRN-size3",
                       "Resize-linear-upsample-sizes-half-pixel", "ConvTranspose-2d-groups-dilations",
                       "LpPool-2d-p2", "GridSample-linear-zeros"]
