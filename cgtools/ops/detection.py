"""The ops of object detectors: NonMaxSuppression (which boxes to keep; no gradient), RoiAlign (each region
of interest pooled to a fixed size by bilinear sampling) and DeformConv (a convolution sampling its input at
learnt offsets).

RoiAlign and DeformConv sample by bilinear interpolation: forward gathers the four neighbours of each sample
point with their weights, backward scatters the gradient back through the same weights (and, for DeformConv's
offsets, through the weights' slopes).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cgtools.errors import CgError
from cgtools.ops.base import Operation, one_float_type, register_op


def corners(boxes, center_point_box: int):
    """Boxes as (y_min, x_min, y_max, x_max), from either corner pair in any order, or from
    (x_center, y_center, width, height)."""
    if center_point_box:
        x, y, w, h = np.moveaxis(boxes, -1, 0)
        return np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], -1)
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    return np.stack([np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)], -1)


def overlapping(boxes, iou_threshold):
    """(n, n) bool: which pairs of boxes overlap by an intersection over union above the threshold."""
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    meets = np.all(hi > lo, axis=-1)
    inter = np.prod(np.where(meets[..., None], hi - lo, 0), axis=-1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    union = area[:, None] + area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
    return meets & (area[:, None] > 0) & (area[None, :] > 0) & (iou > iou_threshold)


def first_scalar(tensor, default):
    return default if tensor is None or np.size(tensor) == 0 else np.ravel(tensor)[0].item()


@register_op("NonMaxSuppression")
class NonMaxSuppression(Operation):
    """the boxes kept by greedy non-maximum suppression per batch and class, as (batch, class, box) rows; no gradient"""

    symbol = "NMS"

    @staticmethod
    def forward(ctx, boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None, *,
                center_point_box: int = 0):
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.ndim != 3 or scores.shape[::2] != boxes.shape[:2]:
            raise CgError(f"NonMaxSuppression expected boxes (batches, boxes, 4) and scores (batches, classes, "
                          f"boxes), found shapes {list(boxes.shape)} and {list(scores.shape)}")
        most = max(int(first_scalar(max_output_boxes_per_class, 0)), 0)
        iou = first_scalar(iou_threshold, 0.0)
        least = first_scalar(score_threshold, None)
        rows = []
        for b in range(boxes.shape[0]):
            overlaps = overlapping(corners(boxes[b].astype(np.float64), center_point_box), iou)
            for c in range(scores.shape[1]):
                order = np.argsort(-scores[b, c], kind="stable")  # ties: the lower index first
                if least is not None:
                    order = order[scores[b, c, order] > least]
                kept: list[int] = []
                for i in order:
                    if len(kept) >= most:
                        break
                    if not overlaps[i, kept].any():
                        kept.append(int(i))
                rows += [(b, c, i) for i in kept]
        return np.array(rows, np.int64).reshape(-1, 3)


def bilinear_axis(pos, size):
    """Along one axis of length `size`, ONNX RoiAlign's bilinear neighbours of the sample positions `pos`: their
    indices (…, 2) and weights (…, 2), the weights zero for a sample beyond one pixel outside the image."""
    outside = (pos < -1.0) | (pos > size)
    pos = np.clip(pos, 0, None)
    low = np.minimum(pos.astype(np.int64), size - 1)
    pos = np.where(low >= size - 1, low, pos)  # at the last pixel: all weight on it
    high = np.minimum(low + 1, size - 1)
    frac = pos - low
    weights = np.stack([1 - frac, frac], -1) * ~outside[..., None]
    return np.stack([low, high], -1), weights


def roi_samples(roi, height, width, pooled, ratio, scale, half_pixel):
    """Where one region's samples fall: the row and column neighbours (indices and weights) of each of
    (pooled_h, grid_h) rows and (pooled_w, grid_w) columns of sample points, and the number of samples per bin."""
    start = roi[:2] * scale - (0.5 if half_pixel else 0.0)  # x, y
    size = roi[2:] * scale - (0.5 if half_pixel else 0.0) - start
    if not half_pixel:
        size = np.maximum(size, 1.0)
    bins = size / pooled[::-1]
    grid = [ratio if ratio > 0 else int(np.ceil(s / p)) for s, p in zip(size, pooled[::-1])]
    axes = []
    for k, extent in ((1, height), (0, width)):  # y, then x
        points = (start[k] + np.arange(pooled[1 - k])[:, None] * bins[k]
                  + (np.arange(grid[k]) + 0.5) * bins[k] / grid[k])
        axes.append(bilinear_axis(points, extent))
    return axes, max(grid[0] * grid[1], 1)


@register_op("RoiAlign")
class RoiAlign(Operation):
    """each region of interest (x1, y1, x2, y2) of image batch_indices[i] pooled to output_height × output_width
    bins, each bin the average (or maximum) of bilinear samples"""

    symbol = "RoI align"

    @staticmethod
    def forward(ctx, X, rois, batch_indices, *,
                coordinate_transformation_mode: Literal["half_pixel", "output_half_pixel"] = "half_pixel",
                mode: Literal["avg", "max"] = "avg", output_height: int = 1, output_width: int = 1,
                sampling_ratio: int = 0, spatial_scale: float = 1.0):
        if X.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 4 or np.shape(batch_indices) != rois.shape[:1]:
            raise CgError(f"RoiAlign expected X (N, C, H, W), rois (R, 4) and batch_indices (R), found shapes "
                          f"{list(X.shape)}, {list(rois.shape)} and {list(np.shape(batch_indices))}")
        height, width = X.shape[2:]
        pooled = np.array([output_height, output_width])
        y = np.zeros((len(rois), X.shape[1], output_height, output_width), X.dtype)
        saved = []
        for r, (roi, b) in enumerate(zip(rois.astype(np.float64), np.ravel(batch_indices))):
            ((ys, wy), (xs, wx)), count = roi_samples(roi, height, width, pooled, sampling_ratio, spatial_scale,
                                                      coordinate_transformation_mode == "half_pixel")
            rows, cols = ys[:, :, None, None, :, None], xs[None, None, :, :, None, :]  # (ph, gh, pw, gw, 2, 2)
            weights = wy[:, :, None, None, :, None] * wx[None, None, :, :, None, :]
            terms = X[b][:, rows, cols] * weights  # (C, ph, gh, pw, gw, 2, 2)
            if mode == "avg":
                y[r] = terms.sum(axis=(2, 4, 5, 6)) / count
                share = np.broadcast_to(weights / count, terms.shape)
            else:  # the largest weighted neighbour over the bin's samples, as onnxruntime
                flat = terms.transpose(0, 1, 3, 2, 4, 5, 6).reshape(terms.shape[0], output_height, output_width, -1)
                y[r] = flat.max(-1)
                top = flat == y[r][..., None]
                top &= np.cumsum(top, -1) == 1  # the first of tied maxima
                share = top.reshape(terms.shape[:2] + terms.shape[3:4] + terms.shape[2:3] + terms.shape[4:])
                share = share.transpose(0, 1, 3, 2, 4, 5, 6) * weights
            saved.append((b, rows, cols, share))
        ctx.save(X.shape, X.dtype, saved)
        return y

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, saved = ctx
        gx = np.zeros(shape, dtype)
        for r, (b, rows, cols, share) in enumerate(saved):
            np.add.at(gx[b], (slice(None), rows, cols), share * grad[r][:, :, None, :, None, None, None])
        return gx, None, None


def deform_corners(offset, shape, kernel, pads, strides, dilations, dtype):
    """The four bilinear neighbours of every deformable sample point, as (flat index into H·W, weight, the weight's
    slope along y, along x), each (N, offset groups, kernel positions · output positions); a neighbour outside
    the image has weight 0. The points: the kernel's grid at each output position plus the learnt offsets."""
    (height, width), (kh, kw), (oh, ow) = shape, kernel, offset.shape[-2:]
    n, groups = offset.shape[0], offset.shape[1] // (2 * kh * kw)
    off = offset.reshape(n, groups, kh, kw, 2, oh, ow).astype(np.float64)
    base_y = (np.arange(kh) * dilations[0])[:, None, None, None] + (np.arange(oh) * strides[0] - pads[0])[:, None]
    base_x = (np.arange(kw) * dilations[1])[:, None, None] + np.arange(ow) * strides[1] - pads[1]
    py, px = base_y + off[..., 0, :, :], base_x + off[..., 1, :, :]  # (N, G, kh, kw, oh, ow)
    y0, x0 = np.floor(py), np.floor(px)
    ly, lx = py - y0, px - x0
    result = []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        y, x = y0 + dy, x0 + dx
        inside = (y >= 0) & (y <= height - 1) & (x >= 0) & (x <= width - 1)
        wy, wx = (ly if dy else 1 - ly), (lx if dx else 1 - lx)
        index = (np.clip(y, 0, height - 1) * width + np.clip(x, 0, width - 1)).astype(np.int64)
        slopes = (wy * wx, (1 if dy else -1) * wx, wy * (1 if dx else -1))
        result.append((index.reshape(n, groups, 1, -1),
                       *(np.where(inside, s, 0).astype(dtype).reshape(n, groups, 1, -1) for s in slopes)))
    return result


@register_op("DeformConv")
class DeformConv(Operation):
    """2-D convolution whose kernel samples X at learnt offsets from its grid (bilinear), each sample scaled by a
    mask (deformable convolution v2)"""

    symbol = "deform conv"

    @staticmethod
    def forward(ctx, X, W, offset, B=None, mask=None, *, dilations: list[int] = None, group: int = 1,
                kernel_shape: list[int] = None, offset_group: int = 1, pads: list[int] = None,
                strides: list[int] = None):
        one_float_type(X=X, W=W, offset=offset, B=B, mask=mask)
        kernel = tuple(kernel_shape or W.shape[2:])
        shapes_fit = X.ndim == W.ndim == offset.ndim == 4 and len(kernel) == 2
        n, channels, oc = (X.shape[0], X.shape[1], W.shape[0]) if shapes_fit else (0, 0, 0)
        if not shapes_fit or channels != W.shape[1] * group or oc % group or channels % offset_group or \
                offset.shape[:2] != (n, 2 * offset_group * kernel[0] * kernel[1]):
            raise CgError(f"DeformConv (2-D) expected X (N, C, H, W), W (M, C/group, kH, kW) and offset (N, "
                          f"2·offset_group·kH·kW, oH, oW), found shapes {list(X.shape)}, {list(W.shape)} and "
                          f"{list(offset.shape)} with group {group} and offset_group {offset_group}")
        corners = deform_corners(offset, X.shape[2:], kernel, pads or [0, 0], strides or [1, 1],
                                 dilations or [1, 1], X.dtype)
        xs = X.reshape(n, offset_group, channels // offset_group, -1)
        cols = sum(np.take_along_axis(xs, index, 3) * w for index, w, _, _ in corners)  # (N, G, C/G, K·O)
        masks = np.ones((n, offset_group, 1, cols.shape[-1]), X.dtype) if mask is None else \
            mask.reshape(n, offset_group, 1, -1)
        k, out = kernel[0] * kernel[1], offset.shape[2:]
        sampled = (cols * masks).reshape(n, group, channels // group, k, -1)
        weights = W.reshape(group, oc // group, channels // group, k)
        y = np.einsum("gock,ngckp->ngop", weights, sampled).reshape(n, oc, *out)
        ctx.save(X, W, offset, mask, corners, cols, masks, sampled, weights)
        return y if B is None else y + B.reshape(-1, 1, 1)

    @staticmethod
    def backward(ctx, grad):
        X, W, offset, mask, corners, cols, masks, sampled, weights = ctx
        n, oc, group = X.shape[0], W.shape[0], weights.shape[0]
        gy = grad.reshape(n, group, oc // group, -1)
        gw = np.einsum("ngop,ngckp->gock", gy, sampled).reshape(W.shape)
        gsampled = np.einsum("gock,ngop->ngckp", weights, gy).reshape(cols.shape)
        gmask = None if mask is None else np.sum(gsampled * cols, axis=2).reshape(mask.shape)
        gcols = gsampled * masks
        xs = X.reshape(cols.shape[:3] + (-1,))
        gx = np.zeros_like(xs)
        gy_pos, gx_pos = np.zeros(masks.shape, X.dtype), np.zeros(masks.shape, X.dtype)
        batch, groups, channels = (i[..., None] for i in np.ogrid[:cols.shape[0], :cols.shape[1], :cols.shape[2]])
        for index, w, slope_y, slope_x in corners:
            np.add.at(gx, (batch, groups, channels, index), gcols * w)  # several samples may share a pixel
            value = np.sum(gcols * np.take_along_axis(xs, index, 3), axis=2, keepdims=True)
            gy_pos += value * slope_y
            gx_pos += value * slope_x
        k = W.shape[2:]
        goffset = np.stack([g.reshape(n, -1, *k, *offset.shape[2:]) for g in (gy_pos, gx_pos)], 4)
        gb = grad.sum(axis=(0, 2, 3))
        return gx.reshape(X.shape), gw, goffset.reshape(offset.shape), gb, gmask
