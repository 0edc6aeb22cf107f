"""The cases of the index and block ops (cgtools/ops/indexing.py, cgtools/ops/blocks.py): TopK, the scatters,
GatherND, OneHot's values, Compress, ReverseSequence, DepthToSpace/SpaceToDepth, CenterCropPad, TensorScatter
and Col2Im, each against torch's own op where it has one (topk, scatter, pixel_shuffle, fold …).

TopK's inputs are distinct (no ties); scatters without reduction write each element at most once, since
which of two writes wins is not a gradient's business.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from opcheck import Case, Const, case, distinct, ints, randn

CASES: list[Case] = []


def flags(values):
    return Const(values, bool)


CASES += [
    case("TopK-largest-last-axis", [distinct(3, 5), ints([2])], lambda x, k: torch.topk(x, 2, -1).values),
    Case("TopK-smallest-axis0-with-indices", "TopK", [distinct(4, 3), ints([3])],
         lambda x, k: torch.topk(x, 3, 0, largest=False).values, {"axis": 0, "largest": 0}, output=0, n_outputs=2),
    case("TopK-k-attribute", [distinct(6)], lambda x: torch.topk(x, 4).values, k=4),  # opset 1's form
    case("ScatterElements-none-axis1", [randn(3, 4), ints([[0, 2], [3, 1], [1, 0]]), randn(3, 2)],
         lambda d, i, u: torch.scatter(d, 1, i, u), axis=1),
    case("ScatterElements-none-negative-indices", [randn(4, 2), ints([[-1, 0], [1, -3]]), randn(2, 2)],
         lambda d, i, u: torch.scatter(d, 0, i % 4, u)),
    case("ScatterElements-add-duplicates", [randn(3, 3), ints([[1, 1, 0], [1, 2, 2]]), randn(2, 3)],
         lambda d, i, u: torch.scatter_add(d, 0, i, u), reduction="add"),
    case("Scatter-axis1", [randn(2, 4), ints([[3, 0, 1]]), randn(1, 3)],
         lambda d, i, u: torch.scatter(d, 1, i, u), axis=1),
    # GatherND's gradient scatter-adds: a slice gathered twice collects both gradients
    case("GatherND-elements-repeated", [randn(3, 4), ints([[0, 1], [2, 3], [0, 1]])],
         lambda d, i: d[i[:, 0], i[:, 1]]),
    case("GatherND-slices-negative", [randn(3, 4), ints([[[-1]], [[0]]])], lambda d, i: d[i[..., 0] % 3]),
    case("GatherND-batch-dims", [randn(2, 3, 4), ints([[[2], [0]], [[1], [1]]])],
         lambda d, i: torch.stack([d[b][i[b, :, 0]] for b in range(2)]), batch_dims=1),
    # OneHot's float values input: the off value collects the gradient of every cold position, on of every hot
    case("OneHot-values-last-axis", [ints([[1, 3], [0, -1]]), ints(4), randn(2)],
         lambda i, n, v: torch.where(F.one_hot(i % 4, 4).bool(), v[1], v[0])),
    case("OneHot-values-axis0-out-of-range", [ints([2, 5, 0]), ints([3]), randn(2)],
         lambda i, n, v: torch.where(F.one_hot(i.clamp(max=3), 4)[:, :3].T.bool(), v[1], v[0]), axis=0),
    case("Compress-axis0-short-condition", [randn(4, 3), flags([True, False, True])],
         lambda x, c: x[torch.tensor([0, 2])], axis=0),
    case("Compress-flattened", [randn(2, 3), flags([False, True, True, False, False, True])],
         lambda x, c: torch.masked_select(x.flatten(), c)),
    case("Compress-negative-axis", [randn(2, 4), flags([True, True, False, True])],
         lambda x, c: x[:, c], axis=-1),
]


def torch_reverse_sequence(x, lengths, time_axis):
    """Each batch entry's first lengths[b] steps flipped, batch entry by batch entry."""
    batch_axis = 1 - time_axis
    entries = [torch.cat([e[:n].flip(0), e[n:]]) for e, n in zip(x.unbind(batch_axis), lengths.tolist())]
    return torch.stack(entries, batch_axis)


CASES += [
    case("ReverseSequence-time-major", [randn(4, 3, 2), ints([4, 1, 2])],
         lambda x, n: torch_reverse_sequence(x, n, 0)),
    case("ReverseSequence-batch-major", [randn(3, 4), ints([2, 4, 1])],
         lambda x, n: torch_reverse_sequence(x, n, 1), batch_axis=0, time_axis=1),
]


def dcr_channels(c: int, b: int) -> list[int]:
    """For each channel of torch's order (channel, block row, block column), its channel in ONNX's DCR order
    (block row, block column, channel)."""
    return [(k % (b * b)) * c + k // (b * b) for k in range(c * b * b)]


CASES += [
    case("DepthToSpace-CRD", [randn(2, 8, 2, 3)], lambda x: F.pixel_shuffle(x, 2), blocksize=2, mode="CRD"),
    case("DepthToSpace-DCR", [randn(1, 8, 2, 2)], lambda x: F.pixel_shuffle(x[:, dcr_channels(2, 2)], 2),
         blocksize=2),
    case("SpaceToDepth-DCR", [randn(2, 2, 4, 6)],
         lambda x: F.pixel_unshuffle(x, 2)[:, np.argsort(dcr_channels(2, 2))], blocksize=2),
    case("SpaceToDepth-CRD", [randn(1, 3, 3, 3)], lambda x: F.pixel_unshuffle(x, 3), blocksize=3, mode="CRD"),
    # an odd difference crops (or pads) its extra element at the end
    case("CenterCropPad-crop-and-pad", [randn(5, 4), ints([2, 7])], lambda x, s: F.pad(x[1:3], (1, 2))),
    case("CenterCropPad-axes", [randn(2, 5, 6), ints([3, 8])], lambda x, s: F.pad(x[..., 1:4, :], (1, 1)),
         axes=[-2, -1]),
]


def torch_cache_write(cache, update, starts, circular=False):
    """update written into cache along axis 1 from each batch entry's start (wrapping around if circular)."""
    pos = starts[:, None] + torch.arange(update.shape[1])
    pos = pos % cache.shape[1] if circular else pos
    return torch.scatter(cache, 1, pos[:, :, None].expand(update.shape), update)


CASES += [
    case("TensorScatter-linear", [randn(2, 5, 3), randn(2, 2, 3), ints([0, 2])],
         lambda c, u, w: torch_cache_write(c, u, w)),
    case("TensorScatter-no-write-indices", [randn(2, 4, 3), randn(2, 3, 3)],
         lambda c, u: torch_cache_write(c, u, torch.zeros(2, dtype=torch.int64)), axis=1),
    case("TensorScatter-circular", [randn(2, 5, 2), randn(2, 3, 2), ints([4, 1])],
         lambda c, u, w: torch_cache_write(c, u, w, circular=True), mode="circular"),
]

# Col2Im is torch's fold; fold pads both ends alike, so the ONNX pads are symmetric here
CASES += [
    case("Col2Im-basic", [randn(1, 8, 16), ints([5, 5]), ints([2, 2])],
         lambda x, i, b: F.fold(x, (5, 5), (2, 2))),
    case("Col2Im-strides-pads", [randn(2, 4, 9), ints([5, 5]), ints([2, 2])],
         lambda x, i, b: F.fold(x, (5, 5), (2, 2), padding=1, stride=2), pads=[1, 1, 1, 1], strides=[2, 2]),
    case("Col2Im-dilations-rectangular", [randn(1, 6, 20), ints([4, 5]), ints([3, 1])],
         lambda x, i, b: F.fold(x, (4, 5), (3, 1), dilation=(1, 2), padding=(1, 0)),
         dilations=[1, 2], pads=[1, 0, 1, 0]),
]

TORCH_ONLY_CASES: list[Case] = []

# Registered here with nothing to differentiate: indices only
NON_FLOAT_OPS = {"NonZero", "Unique"}

FLOAT32_CASES = ["TopK-largest-last-axis", "ScatterElements-add-duplicates", "GatherND-batch-dims",
                 "OneHot-values-last-axis", "DepthToSpace-DCR", "CenterCropPad-crop-and-pad", "Col2Im-strides-pads"]
