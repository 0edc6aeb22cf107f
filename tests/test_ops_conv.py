"""The convolutional-network ops (cgtools/ops/conv.py): Conv, the pools, the normalisations and Dropout.

CASES are checked like every op family's (finite differences, then torch autograd, see opcheck.py). Then
the forward pass meets ONNX itself: every official ONNX node test case of these ops (onnx's backend test
suite) either passes or is refused with a CgError for a stated reason (Dropout in training), and a few random
attribute combinations agree with onnxruntime. Max pooling's inputs are `distinct` so that no window has
tied maxima, where finite differences mean nothing; TIE_CASES check torch's convention there.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from opcheck import SKIP, Case, Const, case, check_against_torch, check_finite_differences, params, randn, rng, run_case

import cgtools
from cgtools import CgError


def distinct(*shape):
    """Values at least 0.1 apart: no window has tied maxima."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * 0.1 + 0.01).reshape(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


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
TIE_CASES = [
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

CASE_BY_ID = {c.id: c for c in CASES + TIE_CASES}
assert len(CASE_BY_ID) == len(CASES) + len(TIE_CASES), "case ids must be unique"


@pytest.mark.parametrize("c", params(CASES))
def test_gradient_matches_finite_differences(c):
    check_finite_differences(c)


@pytest.mark.parametrize("c", params(CASES))
def test_matches_torch(c):
    check_against_torch(c)


@pytest.mark.parametrize("c", params(TIE_CASES))
def test_ties_follow_torch(c):
    check_against_torch(c)


# ---- dtypes --------------------------------------------------------------------------------------------

LOW_PRECISION_CASES = ["Conv-2d-groups", "Conv-1d-stride-dilation-asymmetric-pads", "MaxPool-2d-pads-strides",
                       "AveragePool-2d-ceil-mode-exclude-pad", "GlobalAveragePool-2d",
                       "BatchNormalization-4d-fed-stats-epsilon", "BatchNormalization-training-mode",
                       "InstanceNormalization-4d",
                       "LayerNormalization-axis1"]


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float16, 1e-2)], ids=["float32", "float16"])
@pytest.mark.parametrize("case_id", LOW_PRECISION_CASES)
def test_lower_precision_keeps_its_dtype(case_id, dtype, tol):
    c = CASE_BY_ID[case_id]
    _, feed64, out, _, run64 = run_case(c)
    _, feed, _, _, run = run_case(c, {name: x.astype(dtype) for name, x in feed64.items()})
    assert run.values[out].dtype == dtype
    np.testing.assert_allclose(run.values[out], run64.values[out], rtol=tol, atol=tol)
    for name in feed:
        assert run.grads[name].dtype == dtype, f"gradient of {name!r}"
        np.testing.assert_allclose(run.grads[name], run64.grads[name], rtol=10 * tol, atol=10 * tol)


def test_big_batches_are_convolved_in_chunks(monkeypatch):
    """Batches whose columns would exceed COLUMNS_PER_PRODUCT run a chunk of samples at a time: same result."""
    from cgtools.ops import conv

    c = CASE_BY_ID["Conv-2d-groups"]
    c = case("Conv-2d-groups-batch5", [randn(5, *c.args[0].shape[1:]), *c.args[1:]], c.torch_fn, **c.attrs)
    _, _, out, _, whole = run_case(c)
    monkeypatch.setattr(conv, "COLUMNS_PER_PRODUCT", 1200)  # 2 samples of 4 channels · 9 taps · 16 outputs
    assert len(conv.sample_chunks(c.args[0], c.args[1], conv.window((4, 4), (3, 3), pads=[1, 1, 1, 1]))) == 3
    _, _, _, _, chunked = run_case(c)
    np.testing.assert_allclose(chunked.values[out], whole.values[out], rtol=1e-12)
    for name in "abc":
        np.testing.assert_allclose(chunked.grads[name], whole.grads[name], rtol=1e-12, atol=1e-12)
    check_against_torch(c)


# ---- the second outputs and the refusals ---------------------------------------------------------------

def one_node(op, n_inputs, outputs, **attrs):
    names = "abcdefgh"[:n_inputs]
    return cgtools.load({"cgtools": "1.0", "inputs": [{"name": n} for n in names],
                         "nodes": [{"op": op, "inputs": list(names), "outputs": outputs, "attrs": attrs}],
                         "outputs": outputs})


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices_match_torch(storage_order):
    """Indices count in the whole flattened input (torch counts within each N×C plane), row-major over the
    spatial axes, or column-major with storage_order=1."""
    x = distinct(2, 3, 5, 6)
    graph = one_node("MaxPool", 1, ["y", "i"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1],
                     storage_order=storage_order)
    indices = graph.run({"a": x}, backward=False).values["i"]
    _, expected = F.max_pool2d(F.pad(torch.tensor(x), (0, 1), value=-np.inf), (3, 2), (2, 1), (1, 0),
                               return_indices=True)
    h, w = np.divmod(expected.numpy(), 7)  # positions in the width-padded input: drop the padding
    assert w.max() < 6
    within = h * 6 + w if storage_order == 0 else w * 5 + h
    planes = np.arange(6).reshape(2, 3, 1, 1) * 30
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, planes + within)


def test_training_dropout_draws_as_onnx_does_and_backpropagates_through_the_mask():
    x = randn(4, 5)
    graph = one_node("Dropout", 3, ["y", "mask"], seed=7)
    feed = {"a": x, "b": np.array(0.4), "c": np.array(True)}
    run = graph.run(feed, backward=False)
    keep = np.random.RandomState(7).uniform(0, 1.0, x.shape) >= 0.4
    np.testing.assert_array_equal(run.values["mask"], keep)
    np.testing.assert_allclose(run.values["y"], x * keep / 0.6)
    one = one_node("Dropout", 3, ["y"], seed=7)
    seed = randn(4, 5)
    grads = one.run(feed, seed=seed).grads
    np.testing.assert_allclose(grads["a"], seed * keep / 0.6)


def test_dropout_mask_is_all_true():
    mask = one_node("Dropout", 1, ["y", "mask"]).run({"a": randn(3, 4)}, backward=False).values["mask"]
    assert mask.dtype == bool and mask.shape == (3, 4) and mask.all()


@pytest.mark.parametrize("op, inputs, attrs, message", [
    ("Conv", [randn(1, 4, 5, 5), randn(2, 3, 3, 3)], {}, "group=1, X's 4 channels"),
    ("Conv", [randn(1, 4, 5, 5), randn(3, 2, 3, 3)], {"group": 2}, "W's 3 filters must split into 2 groups"),
    ("Conv", [randn(1, 2, 5, 5), randn(2, 2, 3, 3)], {"strides": [1, 1, 1]}, "expected strides to be 2 integers"),
    ("Conv", [randn(1, 2, 5, 5), randn(2, 2, 3, 3)], {"kernel_shape": [2, 2]}, "kernel_shape [2, 2] differs"),
    ("Conv", [randn(1, 2, 5, 5), randn(2, 2, 3, 3)], {"auto_pad": "SAME"}, "expected auto_pad to be one of"),
    ("Conv", [randn(1, 2, 2, 2), randn(2, 2, 3, 3)], {}, "does not fit the input's spatial shape [2, 2]"),
    ("Conv", [randn(2, 5, 5), randn(2, 2, 3, 3)], {}, "of the same rank"),
    ("MaxPool", [randn(1, 1, 4, 4)], {"kernel_shape": [2, 2], "pads": [1, 1]}, "expected pads to be 4 integers"),
    ("LayerNormalization", [randn(2, 3), randn(3)], {"axis": 2}, "expected axis in [-2, 1]"),
])
def test_unsupported_or_invalid_nodes_raise_clear_errors(op, inputs, attrs, message):
    graph = one_node(op, len(inputs), ["y"], **attrs)
    with pytest.raises(CgError, match=message.replace("[", r"\[").replace("]", r"\]")):
        graph.run(dict(zip("abcdefgh", inputs)), backward=False)


def test_max_pool_needs_kernel_shape():
    with pytest.raises(CgError, match="needs attribute 'kernel_shape'"):
        one_node("MaxPool", 1, ["y"])


# ---- ONNX's own node test cases ------------------------------------------------------------------------

OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
       "LayerNormalization", "InstanceNormalization", "Dropout"}
REFUSED: dict[str, str] = {}  # official cases refused on purpose, with the words of the CgError: none
# The expected output is written with 4 significant digits in onnx's source; ONNX's suite allows rtol 1e-3.
LOOSER = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-3}
OFFICIAL_CASES = [  # the single-node cases of onnx 1.23's backend suite for OPS (checked below)
    "test_basic_conv_with_padding", "test_basic_conv_without_padding", "test_conv_with_autopad_same",
    "test_conv_with_strides_and_asymmetric_padding", "test_conv_with_strides_no_padding",
    "test_conv_with_strides_padding",
    "test_maxpool_1d_default", "test_maxpool_2d_ceil", "test_maxpool_2d_ceil_output_size_reduce_by_one",
    "test_maxpool_2d_default", "test_maxpool_2d_dilations", "test_maxpool_2d_pads", "test_maxpool_2d_precomputed_pads",
    "test_maxpool_2d_precomputed_same_upper", "test_maxpool_2d_precomputed_strides", "test_maxpool_2d_same_lower",
    "test_maxpool_2d_same_upper", "test_maxpool_2d_strides", "test_maxpool_2d_uint8", "test_maxpool_3d_default",
    "test_maxpool_3d_dilations", "test_maxpool_3d_dilations_use_ref_impl",
    "test_maxpool_3d_dilations_use_ref_impl_large", "test_maxpool_with_argmax_2d_precomputed_pads",
    "test_maxpool_with_argmax_2d_precomputed_strides",
    "test_averagepool_1d_default", "test_averagepool_2d_ceil", "test_averagepool_2d_ceil_last_window_starts_on_pad",
    "test_averagepool_2d_default", "test_averagepool_2d_dilations", "test_averagepool_2d_pads",
    "test_averagepool_2d_pads_count_include_pad", "test_averagepool_2d_precomputed_pads",
    "test_averagepool_2d_precomputed_pads_count_include_pad", "test_averagepool_2d_precomputed_same_upper",
    "test_averagepool_2d_precomputed_strides", "test_averagepool_2d_same_lower", "test_averagepool_2d_same_upper",
    "test_averagepool_2d_strides", "test_averagepool_3d_default",
    "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False",
    "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
    "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
    "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True",
    "test_averagepool_3d_dilations_small",
    "test_globalaveragepool", "test_globalaveragepool_precomputed", "test_globalmaxpool",
    "test_globalmaxpool_precomputed",
    "test_batchnorm_example", "test_batchnorm_epsilon", "test_batchnorm_example_training_mode",
    "test_batchnorm_epsilon_training_mode",
    "test_instancenorm_example", "test_instancenorm_epsilon",
    *(f"test_layer_normalization_{shape}_{axis}" for shape, axes in (
        ("2d", ("axis0", "axis1", "axis_negative_1", "axis_negative_2")),
        ("3d", ("axis0_epsilon", "axis1_epsilon", "axis2_epsilon", "axis_negative_1_epsilon",
                "axis_negative_2_epsilon", "axis_negative_3_epsilon")),
        ("4d", ("axis0", "axis1", "axis2", "axis3", "axis_negative_1", "axis_negative_2", "axis_negative_3",
                "axis_negative_4"))) for axis in axes),
    "test_layer_normalization_default_axis",
    "test_dropout_default", "test_dropout_default_mask", "test_dropout_default_mask_ratio", "test_dropout_default_old",
    "test_dropout_default_ratio", "test_dropout_random_old", "test_training_dropout",
    "test_training_dropout_default", "test_training_dropout_default_mask", "test_training_dropout_mask",
    "test_training_dropout_zero_ratio", "test_training_dropout_zero_ratio_mask",
]


@cache
def official_cases() -> dict:
    """onnx's single-node backend test cases of OPS, by name (collecting them all takes a few seconds)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some other ops' cases overflow casts on purpose
        cases = collect_testcases()
    return {c.name: c for c in cases
            if len(c.model.graph.node) == 1 and c.model.graph.node[0].op_type in OPS}


def attribute_value(attribute):
    import onnx

    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode()
    return [v.decode() if isinstance(v, bytes) else v for v in value] if isinstance(value, list) else value


def run_official(c):
    """The case's one node as a cgtools graph, run on the case's inputs: its outputs, by name."""
    (node,) = c.model.graph.node
    names = [i.name for i in c.model.graph.input]
    graph = cgtools.load({
        "cgtools": "1.0", "inputs": [{"name": n} for n in names],
        "nodes": [{"op": node.op_type, "inputs": list(node.input), "outputs": list(node.output),
                   "attrs": {a.name: attribute_value(a) for a in node.attribute}}],
        "outputs": list(node.output)})
    inputs, _ = c.data_sets[0]
    return graph.run(dict(zip(names, inputs)), backward=False).values


def test_official_case_list_is_complete():
    assert sorted(official_cases()) == sorted(OFFICIAL_CASES)


@pytest.mark.parametrize("name", OFFICIAL_CASES)
def test_official_onnx_node_case(name):
    c = official_cases()[name]
    if name in REFUSED:
        with pytest.raises(CgError, match=REFUSED[name]):
            run_official(c)
        return
    values = run_official(c)
    (node,) = c.model.graph.node
    for output, expected in zip(node.output, c.data_sets[0][1], strict=True):
        rtol, atol = (1e-3, 1e-3) if expected.dtype == np.float16 else (LOOSER.get(name, 1e-4), 1e-5)
        np.testing.assert_allclose(values[output], expected, rtol=rtol, atol=atol, strict=True, err_msg=output)


# ---- random attribute combinations against onnxruntime -------------------------------------------------

ORT_NODES = [
    ("Conv", [(2, 4, 7, 6), (6, 2, 3, 2), (6,)], dict(group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 2, 1])),
    ("Conv", [(1, 3, 7, 8), (4, 3, 3, 3)], dict(auto_pad="SAME_LOWER", strides=[2, 3])),
    ("Conv", [(1, 6, 5, 5), (6, 1, 3, 3)], dict(group=6, auto_pad="SAME_UPPER")),
    ("Conv", [(2, 2, 4, 5, 6), (3, 2, 2, 3, 2), (3,)], dict(strides=[1, 2, 2], pads=[0, 1, 1, 1, 0, 0])),
    ("Conv", [(2, 3, 9), (4, 3, 4)], dict(dilations=[2], pads=[0, 3])),
    ("MaxPool", [(2, 3, 8, 7)], dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1)),
    ("MaxPool", [(1, 2, 9, 9)], dict(kernel_shape=[3, 3], dilations=[2, 2], strides=[2, 1], ceil_mode=1)),
    ("AveragePool", [(2, 3, 8, 7)], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1,
                                         count_include_pad=1)),
    ("AveragePool", [(2, 3, 8, 7)], dict(kernel_shape=[3, 2], strides=[3, 2], pads=[2, 1, 0, 1], ceil_mode=1)),
    ("AveragePool", [(1, 2, 7, 6)], dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_LOWER")),
    ("BatchNormalization", [(2, 3, 4, 5), (3,), (3,), (3,), (3,)], dict(epsilon=1e-3)),
    ("BatchNormalization", [(2, 3, 4, 5), (3,), (3,), (3,), (3,)], dict(training_mode=1, momentum=0.7)),
    ("LayerNormalization", [(2, 3, 4), (3, 4), (3, 4)], dict(axis=-2)),
    ("InstanceNormalization", [(2, 3, 4, 5), (3,), (3,)], dict(epsilon=1e-4)),
]


@pytest.mark.parametrize("op, shapes, attrs", ORT_NODES, ids=[f"{op}-{i}" for i, (op, _, _) in enumerate(ORT_NODES)])
def test_forward_matches_onnxruntime(op, shapes, attrs):
    import onnx
    import onnxruntime

    inputs = [np.abs(randn(*s)).astype(np.float32) + 0.1 if k == 4 and op == "BatchNormalization"
              else randn(*s).astype(np.float32) for k, s in enumerate(shapes)]
    names = list("abcdefgh"[:len(inputs)])
    n_outputs = 3 if op == "LayerNormalization" or attrs.get("training_mode") else 1
    outputs = [f"y{i}" for i in range(n_outputs)]
    helper = onnx.helper
    model = helper.make_model(
        helper.make_graph([helper.make_node(op, names, outputs, **attrs)], "one_node",
                          [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, x.shape)
                           for n, x in zip(names, inputs)],
                          [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs]),
        opset_imports=[helper.make_opsetid("", 22)])
    expected = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, dict(zip(names, inputs)))
    values = one_node(op, len(inputs), outputs, **attrs).run(dict(zip(names, inputs)), backward=False).values
    for output, want in zip(outputs, expected):
        np.testing.assert_allclose(values[output], want, rtol=1e-4, atol=1e-5, strict=True, err_msg=output)
