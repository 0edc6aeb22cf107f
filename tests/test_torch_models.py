"""Whole graphs against PyTorch autograd: the MLP example end to end."""

import numpy as np
import torch
import torch.nn.functional as F

import cgtools
from helpers import EXAMPLES


def test_mlp_example_matches_pytorch_end_to_end():
    g = cgtools.load(EXAMPLES / "mlp_xent.json")
    run = g.run()
    leaf = {name: torch.tensor(np.asarray(g.leaves[name].value), requires_grad=name != "labels")
            for name in ("X", "W1", "b1", "W2", "b2", "labels")}
    t = {}
    t["XW1"] = leaf["X"] @ leaf["W1"]
    t["z1"] = t["XW1"] + leaf["b1"]
    t["h"] = torch.relu(t["z1"])
    t["hW2"] = t["h"] @ leaf["W2"]
    t["logits"] = t["hW2"] + leaf["b2"]
    loss = F.cross_entropy(t["logits"], leaf["labels"])
    for tensor in t.values():
        tensor.retain_grad()
    loss.backward()
    np.testing.assert_allclose(run.values["L"], loss.item(), rtol=1e-12)
    for name, tensor in {**t, **leaf}.items():
        np.testing.assert_allclose(run.values[name], tensor.detach().numpy(), rtol=1e-12, err_msg=name)
        if name != "labels":
            np.testing.assert_allclose(run.grads[name], tensor.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)
    assert "labels" not in run.grads
