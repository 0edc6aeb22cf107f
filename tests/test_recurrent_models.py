"""Recurrent language models exported from PyTorch at test time (embedding → 2-layer LSTM or GRU → linear →
cross-entropy): cgtools' forward equals onnxruntime's, and every param's gradient equals PyTorch's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cgtools
from helpers import assert_round_trip

VOCAB = 11


class LanguageModel(nn.Module):
    def __init__(self, kind: str, width: int = 6, hidden: int = 5):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.rnn = getattr(nn, kind)(width, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, tokens, target):
        h, _ = self.rnn(self.embed(tokens))
        return F.cross_entropy(self.head(h).reshape(-1, VOCAB), target.reshape(-1))


@pytest.fixture(scope="module", params=["LSTM", "GRU"])
def language_model(request, tmp_path_factory):
    """The model, a batch (tokens, target) and its ONNX file, exported unfolded so the params stay torch's own
    tensors (sliced into ONNX's gate order inside the graph)."""
    torch.manual_seed(0)
    model = LanguageModel(request.param)
    tokens, target = torch.randint(0, VOCAB, (3, 7)), torch.randint(0, VOCAB, (3, 7))
    path = tmp_path_factory.mktemp("recurrent") / f"{request.param}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (tokens, target), str(path), dynamo=False, opset_version=17,
                          input_names=["tokens", "target"], output_names=["y"], do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE)
    return request.param, model, {"tokens": tokens.numpy(), "target": target.numpy()}, path


def test_the_export_runs_the_recurrent_op(language_model):
    kind, _, _, path = language_model
    ops = [node.op for node in cgtools.load(path).nodes]
    assert ops.count(kind) == 2  # one node per layer


def test_forward_equals_onnxruntime(language_model):
    import onnxruntime as ort

    _, _, feed, path = language_model
    run = cgtools.load(path).run(feed, backward=False)
    (expected,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    np.testing.assert_allclose(run.values["y"], expected, rtol=1e-4, atol=1e-6)


def test_param_gradients_equal_pytorchs(language_model):
    _, model, feed, path = language_model
    run = cgtools.load(path).run(feed)
    model.zero_grad()
    loss = model(*(torch.from_numpy(feed[name]) for name in ("tokens", "target")))
    loss.backward()
    np.testing.assert_allclose(run.values["y"], loss.item(), rtol=1e-5)
    for name, param in model.named_parameters():
        assert name in run.grads, f"no gradient for {name!r}"
        np.testing.assert_allclose(run.grads[name], param.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


# ---- what torch's modules lack, against onnxruntime (forward) and finite differences (backward) --------------

T, N, I, H = 4, 3, 2, 3
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
ATTRIBUTE_CASES = {
    "LSTM-peepholes-clip-sequence-lens": ("LSTM", {"clip": 1.5}, True, True),
    "LSTM-input-forget-bidirectional": ("LSTM", {"input_forget": 1, "direction": "bidirectional"}, False, True),
    "LSTM-activations-reverse": ("LSTM", {"direction": "reverse",
                                          "activations": ["HardSigmoid", "LeakyRelu", "Softsign"],
                                          "activation_alpha": [0.3, 0.2], "activation_beta": [0.4]}, True, False),
    "GRU-reset-before-linear-sequence-lens": ("GRU", {"linear_before_reset": 0}, True, False),
    "GRU-activations-bidirectional": ("GRU", {"direction": "bidirectional", "activations":
                                              ["Sigmoid", "Elu", "HardSigmoid", "Tanh"]}, False, True),
    "RNN-affine-clip-sequence-lens": ("RNN", {"activations": ["Affine"], "activation_alpha": [0.7],
                                              "activation_beta": [0.1], "clip": 0.8}, True, True),
}


def single_node_model(op, attrs, lens: bool, states: bool):
    """The op's node with every optional input but P (LSTM: P too) and Y summed into a scalar loss, and a feed."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    d = 2 if attrs.get("direction") == "bidirectional" else 1
    g = GATES[op]
    feed = {"X": rng.standard_normal((T, N, I)), "W": 0.6 * rng.standard_normal((d, g * H, I)),
            "R": 0.6 * rng.standard_normal((d, g * H, H)), "B": 0.3 * rng.standard_normal((d, 2 * g * H))}
    names = ["X", "W", "R", "B", "sequence_lens" if lens else ""]
    if states or op == "LSTM":
        names += ["initial_h"]
        feed["initial_h"] = rng.standard_normal((d, N, H))
    if op == "LSTM":
        names += ["initial_c", "P"]
        feed |= {"initial_c": rng.standard_normal((d, N, H)), "P": rng.standard_normal((d, 3 * H))}
    feed = {k: v.astype(np.float32) for k, v in feed.items()}
    if lens:
        feed["sequence_lens"] = np.array([4, 2, 3], np.int32)
    inputs = [helper.make_tensor_value_info(k, TensorProto.INT32 if k == "sequence_lens" else TensorProto.FLOAT,
                                            v.shape) for k, v in feed.items()]
    nodes = [helper.make_node(op, names, ["Y", "Y_h"], hidden_size=H, **attrs),
             helper.make_node("ReduceSumSquare", ["Y"], ["loss"], keepdims=0)]
    outputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, shape) for k, shape in
               (("Y", [T, d, N, H]), ("Y_h", [d, N, H]), ("loss", []))]
    model = helper.make_model(helper.make_graph(nodes, op, inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 18)])
    return model, feed


@pytest.mark.parametrize("case", ATTRIBUTE_CASES)
def test_attributes_torch_lacks_against_onnxruntime_and_finite_differences(case, tmp_path):
    import onnxruntime as ort

    from cgtools.gradcheck import gradcheck

    model, feed = single_node_model(*ATTRIBUTE_CASES[case])
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    graph = cgtools.load(path)
    run = graph.run(feed, backward=False)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["Y", "Y_h"], feed)
    for name, value in zip(("Y", "Y_h"), expected, strict=True):
        np.testing.assert_allclose(run.values[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    del model.graph.output[:2]  # the loss alone: the scalar backward starts from
    path.write_bytes(model.SerializeToString())
    report = gradcheck(cgtools.load(path), feed, max_elements=24, rtol=1e-5, atol=1e-7)
    assert report.ok, report


def test_the_language_model_round_trips_through_json(language_model, tmp_path, capsys):
    _, _, feed, path = language_model
    assert_round_trip(path, feed, tmp_path, capsys)
