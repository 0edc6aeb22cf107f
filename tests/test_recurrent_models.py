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
