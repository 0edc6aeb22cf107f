"""The cases of the spatial ops: Resize, ConvTranspose, the extra normalisations and pools, GridSample.

torch's functional forms are the oracles where they map; finite differences check the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opcheck import case, randn


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

TORCH_ONLY_CASES: list = []
NON_FLOAT_OPS: set[str] = set()
LOW_PRECISION_CASES = ["GroupNormalization-per-channel", "RMSNormalization-axis1-epsilon"]
