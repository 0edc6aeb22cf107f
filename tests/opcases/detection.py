"""The cases of LinearAttention (against its recurrence written step by step in torch), and of the detection
ops RoiAlign and DeformConv (against torchvision.ops where it has them, else finite differences only).

NonMaxSuppression and the training ops (Momentum, Adagrad, Adam) have nothing to differentiate.
"""

from __future__ import annotations

import torch
from models import torchvision_module

from opcheck import SKIP, Case, Const, away_from, case, distinct, ints, randn, rng

CASES: list[Case] = []


def heads(x, n):
    """(batch, seq, n·size) -> (batch, n, seq, size)"""
    return x.reshape(x.shape[0], x.shape[1], n, -1).transpose(1, 2)


def linear_attention(q_heads, kv_heads, rule="gated_delta", scale=0.0, output=0):
    """ONNX's LinearAttention as its defining recurrence, one token at a time."""
    gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")

    def fn(query, key, value, past=None, decay=None, beta=None):
        q, k, v = heads(query, q_heads), heads(key, kv_heads), heads(value, kv_heads)
        b, _, t, d_k = q.shape
        state = past if past is not None else torch.zeros(b, kv_heads, d_k, v.shape[-1], dtype=q.dtype)
        g = heads(decay, 1 if decay.shape[-1] == 1 else kv_heads) if gated else None
        be = heads(beta, 1 if beta.shape[-1] == 1 else kv_heads) if delta else None
        outs = []
        for i in range(t):
            if gated:
                state = state * torch.exp(g[:, :, i])[..., None]
            u = v[:, :, i]
            if delta:
                u = be[:, :, i] * (u - torch.einsum("bhdm,bhd->bhm", state, k[:, :, i]))
            state = state + k[:, :, i, :, None] * u[:, :, None, :]
            shared = state.repeat_interleave(q_heads // kv_heads, dim=1)
            outs.append((scale or d_k ** -0.5) * torch.einsum("bhd,bhdm->bhm", q[:, :, i], shared))
        y = torch.stack(outs, 2).transpose(1, 2).reshape(b, t, -1)
        return (y, state)[output]

    return fn


CASES += [
    case("LinearAttention-linear", [randn(2, 3, 4), randn(2, 3, 4), randn(2, 3, 6)],
         linear_attention(2, 2, "linear"), q_num_heads=2, kv_num_heads=2, update_rule="linear"),
    case("LinearAttention-gated-per-key-decay-past", [randn(1, 3, 4), randn(1, 3, 4), randn(1, 3, 4),
                                                      randn(1, 2, 2, 2), randn(1, 3, 4)],
         linear_attention(2, 2, "gated"), q_num_heads=2, kv_num_heads=2, update_rule="gated"),
    case("LinearAttention-delta-scale", [randn(1, 4, 3), randn(1, 4, 3), randn(1, 4, 2), SKIP, SKIP,
                                         randn(1, 4, 1)],
         linear_attention(1, 1, "delta", scale=0.7), q_num_heads=1, kv_num_heads=1, update_rule="delta", scale=0.7),
    case("LinearAttention-gated-delta-gqa-past", [randn(2, 3, 8), randn(2, 3, 4), randn(2, 3, 6), randn(2, 2, 2, 3),
                                                  randn(2, 3, 2), randn(2, 3, 2)],
         linear_attention(4, 2), q_num_heads=4, kv_num_heads=2),
    case("LinearAttention-gated-delta-shared-beta", [randn(1, 3, 4), randn(1, 3, 4), randn(1, 3, 4), SKIP,
                                                     randn(1, 3, 4), randn(1, 3, 1)],
         linear_attention(2, 2), q_num_heads=2, kv_num_heads=2),
]

# the present state as the output (the carried state of the next call)
CASES += [Case("LinearAttention-gated-delta-present-state", "LinearAttention",
               [randn(1, 3, 4), randn(1, 3, 4), randn(1, 3, 2), randn(1, 1, 4, 2), randn(1, 3, 1), randn(1, 3, 1)],
               linear_attention(1, 1, output=1), {"q_num_heads": 1, "kv_num_heads": 1}, output=1, n_outputs=2)]

def roi_align(output_size, scale, ratio, aligned):
    """torchvision's pure-torch RoiAlign (avg mode; aligned=True is ONNX's half_pixel), without torch.compile."""
    reference = torchvision_module("ops.roi_align")._roi_align.__wrapped__

    def fn(x, rois, batch_indices):
        boxes = torch.cat([batch_indices[:, None].to(rois.dtype), rois], 1)
        return reference(x, boxes, scale, *output_size, ratio, aligned)

    return fn


ROIS = Const([[0.4, 0.8, 4.6, 3.9], [1.5, 0.2, 5.7, 6.8], [2.2, 2.1, 3.0, 2.9]])  # x1, y1, x2, y2
IMAGES = ints([1, 0, 1])

CASES += [
    case("RoiAlign-avg-half-pixel-ratio2", [randn(2, 3, 6, 7), ROIS, IMAGES], roi_align((2, 3), 1.0, 2, True),
         output_height=2, output_width=3, sampling_ratio=2),
    case("RoiAlign-avg-output-half-pixel-adaptive-scale", [randn(2, 2, 5, 5), ROIS, IMAGES],
         roi_align((3, 2), 0.6, 0, False), output_height=3, output_width=2, spatial_scale=0.6,
         coordinate_transformation_mode="output_half_pixel"),
]

TORCH_ONLY_CASES: list[Case] = []

NON_FLOAT_OPS = {"NonMaxSuppression", "ai.onnx.preview.training.Momentum", "ai.onnx.preview.training.Adagrad",
                 "ai.onnx.preview.training.Adam"}

FLOAT32_CASES = ["LinearAttention-gated-delta-gqa-past", "RoiAlign-avg-half-pixel-ratio2"]

# torch has no max-mode RoiAlign: finite differences only (tests/test_ops_detection.py), on distinct values
FINITE_DIFFERENCE_CASES = [
    case("RoiAlign-max-half-pixel", [distinct(2, 2, 6, 6), ROIS, IMAGES], None, mode="max", output_height=2,
         output_width=2, sampling_ratio=2),
]


def deform_conv(pads=(0, 0), strides=(1, 1), dilations=(1, 1), group=1, offset_group=1):
    """Deformable convolution through torch's grid_sample (bilinear, zeros outside, align_corners: pixel
    coordinates map exactly), one sampling grid per offset group."""
    def fn(x, w, offset, b=None, mask=None):
        n, c, height, width = x.shape
        kh, kw = w.shape[2:]
        oh, ow = offset.shape[2:]
        off = offset.reshape(n, offset_group, kh, kw, 2, oh, ow)
        ky = torch.arange(kh, dtype=x.dtype)[:, None, None, None] * dilations[0]
        ys = ky + (torch.arange(oh, dtype=x.dtype) * strides[0] - pads[0])[:, None] + off[..., 0, :, :]
        kx = torch.arange(kw, dtype=x.dtype)[:, None, None] * dilations[1]
        xs = kx + torch.arange(ow, dtype=x.dtype) * strides[1] - pads[1] + off[..., 1, :, :]
        grid = torch.stack([xs / (width - 1) * 2 - 1, ys / (height - 1) * 2 - 1], -1)  # (N, G, kh, kw, oh, ow, 2)
        parts = [torch.nn.functional.grid_sample(
            part, grid[:, g].reshape(n, kh * kw * oh, ow, 2), align_corners=True)
            for g, part in enumerate(x.chunk(offset_group, 1))]
        cols = torch.cat(parts, 1).reshape(n, c, kh * kw, oh * ow)
        if mask is not None:
            cols = (cols.reshape(n, offset_group, -1, kh * kw, oh * ow)
                    * mask.reshape(n, offset_group, 1, kh * kw, oh * ow)).reshape(cols.shape)
        cols = cols.reshape(n, group, c // group, kh * kw, oh * ow)
        weights = w.reshape(group, -1, c // group, kh * kw)
        y = torch.einsum("gock,ngckp->ngop", weights, cols).reshape(n, -1, oh, ow)
        return y if b is None else y + b.reshape(-1, 1, 1)

    return fn


def offsets(n, groups, kh, kw, oh, ow):
    """Offsets that move samples by up to 1.5 pixels, some outside the image, none on a pixel (a kink)."""
    return away_from(rng.uniform(-1.5, 1.5, (n, 2 * groups * kh * kw, oh, ow)), [-1.0, 0.0, 1.0], 0.05)


CASES += [
    case("DeformConv-basic", [randn(1, 2, 4, 4), randn(3, 2, 2, 2), offsets(1, 1, 2, 2, 3, 3)], deform_conv()),
    case("DeformConv-pads-strides-bias-mask", [randn(2, 2, 5, 4), randn(2, 2, 3, 2), offsets(2, 1, 3, 2, 3, 3),
                                               randn(2), rng.uniform(0.2, 1.0, (2, 6, 3, 3))],
         deform_conv(pads=(1, 0), strides=(2, 1)), pads=[1, 0, 1, 0], strides=[2, 1]),
    case("DeformConv-groups-offset-groups-dilations", [randn(1, 4, 5, 5), randn(4, 2, 2, 2),
                                                       offsets(1, 2, 2, 2, 3, 3), SKIP, randn(1, 8, 3, 3)],
         deform_conv(dilations=(2, 2), group=2, offset_group=2), dilations=[2, 2], group=2, offset_group=2),
]

FLOAT32_CASES += ["DeformConv-pads-strides-bias-mask"]
