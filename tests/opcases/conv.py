"""The cases of the convolutional-network ops: Conv, the pools, the normalisations and Dropout.

Max pooling's inputs are `distinct` so that no window has tied maxima, where finite differences mean
nothing; TORCH_ONLY_CASES check torch's convention there. LOW_PRECISION_CASES rerun in float32 and float16.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from opcheck import SKIP, Case, Const, case, distinct, positive, randn


def pad(x, pads, value=0.0):
    """ONNX pads [x1_begin, x2_begin, …, x1_end, x2_end, …] as torch's F.pad (last axis first)."""
    n = len(pads) // 2
    return F.pad(x, [p for a in reversed(range(n)) for p in (pads[a], pads[n + a])], value=value)


def avg_excluding_pad(x, kernel, pads, stride=1):
    """Average pooling over the padded input that counts only the input's own elements in each window."""
    pool = {1: F.avg_pool1d, 2: F.avg_pool2d}[len(kernel)]
    return pool(pad(x, pads), kernel, stride) / pool(pad(torch.ones_like(x), pads), kernel, stride)


def conv2d(stride=1, padding=0, dilation=1, groups=1, pads=None):
    def fn(x, w, b=None):
        x = x if pads is None else pad(x, pads)
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    return fn


def batch_norm_formula(x, scale, b, mean, var, eps=1e-5):
    shape = (-1,) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + b.reshape(shape)


CASES: list[Case] = []

CASES += [
    case("Conv-2d-bias", [randn(1, 2, 5, 5), randn(3, 2, 3, 3), randn(3)], conv2d()),
    case("Conv-2d-no-bias", [randn(2, 2, 4, 5), randn(3, 2, 2, 3)], conv2d()),
    case("Conv-2d-skipped-bias-kernel-shape", [randn(1, 2, 4, 4), randn(2, 2, 3, 3), SKIP], conv2d(),
         kernel_shape=[3, 3]),
    case("Conv-2d-strides-pads", [randn(2, 2, 5, 6), randn(3, 2, 3, 2), randn(3)], conv2d((2, 1), (1, 0)),
         strides=[2, 1], pads=[1, 0, 1, 0]),
    case("Conv-2d-asymmetric-pads", [randn(1, 2, 4, 5), randn(2, 2, 3, 3), randn(2)],
         conv2d(pads=[1, 0, 0, 2]), pads=[1, 0, 0, 2]),
    case("Conv-2d-dilations", [randn(1, 2, 6, 5), randn(2, 2, 2, 3), randn(2)], conv2d(dilation=(2, 1)),
         dilations=[2, 1]),
    case("Conv-2d-groups", [randn(1, 4, 4, 4), randn(6, 2, 3, 3), randn(6)], conv2d(padding=1, groups=2),
         group=2, pads=[1, 1, 1, 1]),
    case("Conv-2d-depthwise-stride-pads", [randn(2, 3, 5, 5), randn(3, 1, 3, 3)], conv2d(2, 1, groups=3),
         group=3, strides=[2, 2], pads=[1, 1, 1, 1]),
    case("Conv-2d-depthwise-dilated-pads", [randn(2, 3, 6, 7), randn(3, 1, 3, 2), randn(3)],
         conv2d(padding=(2, 1), dilation=(2, 1), groups=3), group=3, dilations=[2, 1], pads=[2, 1, 2, 1]),
    case("Conv-1d-depthwise-stride3", [randn(1, 2, 10), randn(2, 1, 3)],
         lambda x, w: F.conv1d(x, w, stride=3, padding=1, groups=2), group=2, strides=[3], pads=[1, 1]),
    case("Conv-3d-depthwise-strided", [randn(1, 2, 3, 4, 5), randn(2, 1, 2, 2, 3), randn(2)],
         lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=(1, 0, 1), groups=2), group=2,
         strides=[1, 2, 1], pads=[1, 0, 1, 1, 0, 1]),
    case("Conv-2d-depthwise-multiplier", [randn(1, 2, 4, 4), randn(4, 1, 2, 2), randn(4)], conv2d(groups=2),
         group=2),
    case("Conv-2d-1x1-stride2", [randn(2, 3, 5, 5), randn(4, 3, 1, 1), randn(4)], conv2d(2), strides=[2, 2]),
    # SAME_UPPER with an even kernel pads 1 at the end only; SAME_LOWER at the beginning.
    case("Conv-2d-auto-pad-same-upper", [randn(1, 2, 5, 4), randn(2, 2, 2, 2), randn(2)],
         conv2d(pads=[0, 0, 1, 1]), auto_pad="SAME_UPPER"),
    case("Conv-2d-auto-pad-same-upper-stride2", [randn(1, 2, 6, 5), randn(2, 2, 3, 3)],
         conv2d(2, pads=[0, 1, 1, 1]), auto_pad="SAME_UPPER", strides=[2, 2]),
    case("Conv-2d-auto-pad-same-lower", [randn(1, 2, 5, 4), randn(2, 2, 2, 2)], conv2d(pads=[1, 1, 0, 0]),
         auto_pad="SAME_LOWER"),
    case("Conv-2d-auto-pad-valid", [randn(1, 2, 5, 4), randn(2, 2, 3, 2)], conv2d(2), auto_pad="VALID",
         strides=[2, 2]),
    case("Conv-1d-stride-dilation-asymmetric-pads", [randn(2, 3, 7), randn(4, 3, 3), randn(4)],
         lambda x, w, b: F.conv1d(pad(x, [1, 2]), w, b, stride=2, dilation=2), strides=[2], dilations=[2],
         pads=[1, 2]),
    case("Conv-1d-groups", [randn(1, 4, 6), randn(2, 2, 3)], lambda x, w: F.conv1d(x, w, groups=2), group=2),
    case("Conv-3d-pads", [randn(1, 2, 3, 4, 3), randn(2, 2, 2, 3, 2), randn(2)],
         lambda x, w, b: F.conv3d(x, w, b, padding=(1, 0, 1)), pads=[1, 0, 1, 1, 0, 1]),
]

CASES += [
    case("MaxPool-2d", [distinct(2, 2, 4, 4)], lambda x: F.max_pool2d(x, 2), kernel_shape=[2, 2], strides=[2, 2]),
    case("MaxPool-2d-overlapping-stride1", [distinct(1, 2, 4, 5)], lambda x: F.max_pool2d(x, (2, 3), 1),
         kernel_shape=[2, 3]),
    case("MaxPool-2d-pads-strides", [distinct(1, 2, 5, 6)], lambda x: F.max_pool2d(x, 3, 2, 1),
         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    case("MaxPool-2d-asymmetric-pads", [distinct(1, 2, 4, 4)],
         lambda x: F.max_pool2d(pad(x, [0, 1, 1, 0], -np.inf), 2), kernel_shape=[2, 2], strides=[2, 2],
         pads=[0, 1, 1, 0]),
    case("MaxPool-2d-ceil-mode", [distinct(1, 2, 5, 5)], lambda x: F.max_pool2d(x, 2, 2, ceil_mode=True),
         kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    case("MaxPool-2d-dilations", [distinct(1, 1, 5, 6)], lambda x: F.max_pool2d(x, 2, 1, dilation=(2, 1)),
         kernel_shape=[2, 2], dilations=[2, 1]),
    case("MaxPool-2d-auto-pad-same-upper", [distinct(1, 2, 3, 4)],
         lambda x: F.max_pool2d(pad(x, [0, 0, 1, 1], -np.inf), 2, 1), kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
    case("MaxPool-1d-pads-strides", [distinct(2, 2, 7)], lambda x: F.max_pool1d(x, 3, 2, 1), kernel_shape=[3],
         strides=[2], pads=[1, 1]),
    case("MaxPool-3d", [distinct(1, 2, 3, 4, 4)], lambda x: F.max_pool3d(x, 2, 1), kernel_shape=[2, 2, 2]),
    Case("MaxPool-2d-with-indices-output", "MaxPool", [distinct(1, 2, 4, 4)], lambda x: F.max_pool2d(x, 2),
         {"kernel_shape": [2, 2], "strides": [2, 2]}, output=0, n_outputs=2),
]

CASES += [
    case("AveragePool-2d", [randn(2, 2, 4, 4)], lambda x: F.avg_pool2d(x, 2), kernel_shape=[2, 2], strides=[2, 2]),
    case("AveragePool-2d-pads-count-include-pad", [randn(1, 2, 5, 6)],
         lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=True), kernel_shape=[3, 3], strides=[2, 2],
         pads=[1, 1, 1, 1], count_include_pad=1),
    case("AveragePool-2d-pads-exclude-pad", [randn(1, 2, 5, 6)],
         lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), kernel_shape=[3, 3], strides=[2, 2],
         pads=[1, 1, 1, 1]),
    case("AveragePool-2d-ceil-mode-include-pad", [randn(1, 2, 6, 5)],
         lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True), kernel_shape=[3, 3],
         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
    case("AveragePool-2d-ceil-mode-exclude-pad", [randn(1, 2, 6, 5)],
         lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), kernel_shape=[3, 3],
         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    case("AveragePool-2d-asymmetric-pads-include-pad", [randn(1, 2, 4, 5)],
         lambda x: F.avg_pool2d(pad(x, [1, 0, 0, 2]), 2), kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 0, 2],
         count_include_pad=1),
    case("AveragePool-2d-asymmetric-pads-exclude-pad", [randn(1, 2, 4, 5)],
         lambda x: avg_excluding_pad(x, (2, 2), [1, 0, 0, 2], 2), kernel_shape=[2, 2], strides=[2, 2],
         pads=[1, 0, 0, 2]),
    case("AveragePool-2d-auto-pad-same-upper", [randn(1, 2, 3, 4)],
         lambda x: avg_excluding_pad(x, (2, 2), [0, 0, 1, 1]), kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
    case("AveragePool-2d-dilations", [randn(1, 2, 5, 5)],
         lambda x: F.unfold(x, (2, 2), dilation=(2, 1)).reshape(1, 2, 4, 3, 4).mean(2),
         kernel_shape=[2, 2], dilations=[2, 1]),
    case("AveragePool-1d-pads-exclude-pad", [randn(2, 3, 7)],
         lambda x: F.avg_pool1d(x, 3, 2, 1, count_include_pad=False), kernel_shape=[3], strides=[2], pads=[1, 1]),
    case("GlobalAveragePool-2d", [randn(2, 3, 4, 5)], lambda x: F.adaptive_avg_pool2d(x, 1)),
    case("GlobalAveragePool-1d", [randn(2, 3, 4)], lambda x: x.mean(2, keepdim=True)),
    case("GlobalMaxPool-2d", [distinct(2, 3, 3, 4)], lambda x: torch.amax(x, (2, 3), keepdim=True)),
    case("GlobalMaxPool-3d", [distinct(1, 2, 2, 3, 2)], lambda x: torch.amax(x, (2, 3, 4), keepdim=True)),
]

# A window whose maxima tie: the gradient goes to the first of them in row-major order, as in torch.
TIES = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 0.0], [5.0, 5.0, 1.0, 2.0], [5.0, 5.0, 2.0, 1.0]]]])
TORCH_ONLY_CASES = [
    case("MaxPool-2d-ties", [TIES], lambda x: F.max_pool2d(x, 2), kernel_shape=[2, 2], strides=[2, 2]),
    case("MaxPool-2d-ties-overlapping", [TIES], lambda x: F.max_pool2d(x, 2, 1), kernel_shape=[2, 2]),
]

MEAN, VAR = Const(randn(3)), Const(positive(3))
CASES += [
    case("BatchNormalization-4d-constant-stats", [randn(2, 3, 4, 5), randn(3), randn(3), MEAN, VAR],
         lambda x, s, b, m, v: F.batch_norm(x, m, v, s, b, training=False, eps=1e-5)),
    case("BatchNormalization-4d-fed-stats-epsilon", [randn(2, 3, 3, 2), randn(3), randn(3), randn(3), positive(3)],
         lambda *args: batch_norm_formula(*args, eps=0.01), epsilon=0.01),
    case("BatchNormalization-2d-momentum-ignored", [randn(4, 3), randn(3), randn(3), randn(3), positive(3)],
         batch_norm_formula, momentum=0.5),
    case("BatchNormalization-3d", [randn(2, 3, 4), randn(3), randn(3), randn(3), positive(3)], batch_norm_formula),
    case("BatchNormalization-training-mode", [randn(2, 3, 4, 5), randn(3), randn(3), randn(3), positive(3)],
         lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, training=True, eps=1e-5), training_mode=1),
    case("BatchNormalization-training-mode-2d", [randn(4, 3), randn(3), randn(3), MEAN, VAR],
         lambda x, s, b, m, v: F.batch_norm(x, None, None, s, b, training=True, eps=0.01), training_mode=1,
         epsilon=0.01),
    # The running statistics, differentiated on their own (torch would update them in place, unbiased).
    Case("BatchNormalization-training-running-mean-output", "BatchNormalization",
         [randn(2, 3, 4), randn(3), randn(3), randn(3), positive(3)],
         lambda x, s, b, m, v: 0.8 * m + 0.2 * x.mean((0, 2)), {"training_mode": 1, "momentum": 0.8},
         output=1, n_outputs=3),
    Case("BatchNormalization-training-running-var-output", "BatchNormalization",
         [randn(2, 3, 4), randn(3), randn(3), randn(3), positive(3)],
         lambda x, s, b, m, v: 0.9 * v + 0.1 * x.var((0, 2), unbiased=False), {"training_mode": 1},
         output=2, n_outputs=3),
    case("InstanceNormalization-4d", [randn(2, 3, 3, 4), randn(3), randn(3)],
         lambda x, s, b: F.instance_norm(x, weight=s, bias=b, eps=1e-5)),
    case("InstanceNormalization-3d-epsilon", [randn(2, 3, 5), randn(3), randn(3)],
         lambda x, s, b: F.instance_norm(x, weight=s, bias=b, eps=0.1), epsilon=0.1),
    case("LayerNormalization-last-axis", [randn(2, 3, 4), randn(4), randn(4)],
         lambda x, w, b: F.layer_norm(x, (4,), w, b, eps=1e-5)),
    case("LayerNormalization-axis1", [randn(2, 3, 4), randn(3, 4), randn(3, 4)],
         lambda x, w, b: F.layer_norm(x, (3, 4), w, b), axis=1),
    case("LayerNormalization-negative-axis-epsilon", [randn(2, 3, 4), randn(3, 4), randn(4)],
         lambda x, w, b: F.layer_norm(x, (3, 4), w, eps=0.01) + b, axis=-2, epsilon=0.01),
    case("LayerNormalization-no-bias", [randn(3, 5), randn(5)], lambda x, w: F.layer_norm(x, (5,), w)),
    case("LayerNormalization-skipped-bias-axis0", [randn(2, 3), randn(2, 3), SKIP],
         lambda x, w, b: F.layer_norm(x, (2, 3), w), axis=0),
    # The optional outputs Mean and InvStdDev, differentiated on their own.
    Case("LayerNormalization-mean-output", "LayerNormalization", [randn(2, 3, 4), randn(3, 4), randn(3, 4)],
         lambda x, w, b: x.mean((1, 2), keepdim=True), {"axis": 1}, output=1, n_outputs=3),
    Case("LayerNormalization-inv-std-dev-output", "LayerNormalization", [randn(2, 3, 4), randn(4)],
         lambda x, w: torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5), output=2, n_outputs=3),
    case("Dropout-default", [randn(3, 4)], torch.clone),
    case("Dropout-ratio-and-training-mode-false", [randn(3, 4), Const(0.3), Const(False)],
         lambda x, r, t: x.clone()),
    case("Dropout-training-mode-true-ratio-zero", [randn(3, 4), Const(0.0), Const(True)],
         lambda x, r, t: x.clone()),
    Case("Dropout-with-mask-output", "Dropout", [randn(3, 4)], torch.clone, output=0, n_outputs=2),
]

NON_FLOAT_OPS: set[str] = set()

LOW_PRECISION_CASES = ["Conv-2d-groups", "Conv-1d-stride-dilation-asymmetric-pads", "MaxPool-2d-pads-strides",
                       "AveragePool-2d-ceil-mode-exclude-pad", "GlobalAveragePool-2d",
                       "BatchNormalization-4d-fed-stats-epsilon", "BatchNormalization-training-mode",
                       "InstanceNormalization-4d",
                       "LayerNormalization-axis1"]
