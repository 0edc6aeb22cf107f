"""The convolutional-network ops (cgtools/ops/conv.py, norm.py) beyond their case table
(tests/opcases/conv.py): chunked batches, second outputs, refusals; then the forward pass meets ONNX itself:
every ONNX node test case of these ops is runnable (test_onnx_conformance.py runs them), and a few random
attribute combinations agree with onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cgtools
from cgtools import CgError
from cgtools.onnx import conformance
from opcases.conv import CASES, distinct
from opcheck import case, check_against_torch, node_suite, node_suite_cases, randn, run_case

CASE_BY_ID = {c.id: c for c in CASES}


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


@pytest.mark.parametrize("case_id", [c.id for c in CASES if "depthwise" in c.id and "multiplier" not in c.id])
def test_depthwise_convolutions_agree_with_torch_one_row_per_block(monkeypatch, case_id):
    """A depthwise Conv runs on blocks of rows (sample × channel), each offset read as a shift of the flat
    padded input; with one row per block, strided or not, it still agrees with torch."""
    from cgtools.ops import depthwise

    monkeypatch.setattr(depthwise, "GATHERED_ELEMENTS", 1)
    check_against_torch(CASE_BY_ID[case_id])


@pytest.mark.parametrize("kernel", [(2, 2), (3, 1), (2, 2, 2)])
def test_max_pool_over_tiling_windows_sends_the_gradient_to_the_first_maximum_as_torch(monkeypatch, kernel):
    """Windows that tile the input take a faster backward (argmax over each window); ties go to the first
    maximum in both, a NaN to the first NaN, as torch does."""
    from cgtools.ops import conv

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 3, *(4 * k for k in kernel))).astype(np.float64)  # many ties
    attrs = dict(kernel_shape=list(kernel), strides=list(kernel))
    graph = one_node("MaxPool", 1, ["y"], **attrs)
    seed = rng.standard_normal((2, 3, *(4,) * len(kernel)))
    tiled = graph.run({"a": x}, seed=seed).grads["a"]
    pool = {2: F.max_pool2d, 3: F.max_pool3d}[len(kernel)]
    xt = torch.tensor(x, requires_grad=True)
    pool(xt, kernel).backward(torch.tensor(seed))
    np.testing.assert_array_equal(tiled, xt.grad.numpy())
    x[0, 0, 0, 0] = x[1, 2, 1, 0] = np.nan
    tiled = graph.run({"a": x}, seed=seed).grads["a"]
    monkeypatch.setattr(conv, "tiles", lambda xp, win: False)
    np.testing.assert_array_equal(tiled, one_node("MaxPool", 1, ["y"], **attrs).run({"a": x}, seed=seed).grads["a"])
    monkeypatch.undo()
    no_channels = np.zeros((2, 0, *x.shape[2:]))
    assert graph.run({"a": no_channels}, seed=seed[:, :0]).grads["a"].shape == no_channels.shape


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
    ("Conv", [randn(1, 2, 2, 2), randn(2, 2, 3, 3)], {}, "does not fit the input's spatial shape [2, 2]"),
    ("Conv", [randn(2, 5, 5), randn(2, 2, 3, 3)], {}, "of the same rank"),
    ("MaxPool", [randn(1, 1, 4, 4)], {"kernel_shape": [2, 2], "pads": [1, 1]}, "expected pads to be 4 integers"),
    ("LayerNormalization", [randn(2, 3), randn(3)], {"axis": 2}, "expected axis in [-2, 1]"),
])
def test_unsupported_or_invalid_nodes_raise_clear_errors(op, inputs, attrs, message):
    graph = one_node(op, len(inputs), ["y"], **attrs)
    with pytest.raises(CgError, match=message.replace("[", r"\[").replace("]", r"\]")):
        graph.run(dict(zip("abcdefgh", inputs)), backward=False)


@pytest.mark.parametrize("op", ["Conv", "MaxPool", "AveragePool"])
def test_unknown_auto_pad_is_refused_at_load(op):
    with pytest.raises(CgError, match=r"nodes\[0\]\.attrs\.auto_pad: expected one of 'NOTSET', 'SAME_UPPER', "
                                      r"'SAME_LOWER', 'VALID', found 'SAME'"):
        one_node(op, 2 if op == "Conv" else 1, ["y"], auto_pad="SAME", kernel_shape=[3, 3])


def test_max_pool_needs_kernel_shape():
    with pytest.raises(CgError, match="needs attribute 'kernel_shape'"):
        one_node("MaxPool", 1, ["y"])


# ---- ONNX's own node test cases (each runs in test_onnx_conformance.py) -----------------------------------

OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
       "LayerNormalization", "InstanceNormalization", "Dropout"}
NODE_CASES = node_suite_cases(OPS)


@pytest.mark.onnx_suite
def test_every_onnx_node_case_of_these_ops_runs():
    using = {c.name for c in node_suite() if set(c.ops) & OPS and c.status != "unsupported op"}
    assert using == {c.name for c in NODE_CASES}
    assert OPS <= set().union(*(c.ops for c in NODE_CASES))


@pytest.mark.onnx_suite
def test_max_pool_keeps_uint8():
    (case,) = [c for c in node_suite() if c.name == "test_maxpool_2d_uint8"]
    x, expected = (conformance.read_tensor(case.folder / "test_data_set_0" / f"{kind}_0.pb")
                   for kind in ("input", "output"))
    graph = one_node("MaxPool", 1, ["y"], kernel_shape=[5, 5], pads=[2, 2, 2, 2])
    np.testing.assert_array_equal(graph.run({"a": x}, backward=False).values["y"], expected, strict=True)


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
