"""Real models, exported from PyTorch and torchvision at test time: resnet18, mobilenet_v2, densenet121, a
transformer encoder layer and a GPT-style block with a causal mask.

torchvision's registry wheel is a CUDA build whose compiled ops do not load on a CPU-only machine, and its
package `__init__` imports them. Its model code is plain PyTorch, so `torchvision` and `torchvision.models` are
entered as bare packages (their `__path__` only) and the model modules imported from them directly.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import math
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

TORCHVISION = {"resnet18": ("resnet", "resnet18"), "mobilenet_v2": ("mobilenetv2", "mobilenet_v2"),
               "densenet121": ("densenet", "densenet121"), "swin_t": ("swin_transformer", "swin_t"),
               "mobilenet_v3_small": ("mobilenetv3", "mobilenet_v3_small"),
               "efficientnet_b0": ("efficientnet", "efficientnet_b0"), "convnext_tiny": ("convnext", "convnext_tiny"),
               "vgg11": ("vgg", "vgg11")}
IMAGE = (1, 3, 32, 32)  # small inputs: every stage of these networks still runs, in milliseconds


def torchvision_module(name: str) -> types.ModuleType:
    """A module of torchvision ("models.resnet", "ops.roi_align"), imported without its compiled ops: the
    packages above it are entered bare."""
    if "torchvision" not in sys.modules:
        root = Path(importlib.util.find_spec("torchvision").submodule_search_locations[0])
    else:
        root = Path(sys.modules["torchvision"].__path__[0])
    for package in ("torchvision", "torchvision." + name.rpartition(".")[0]):
        if package not in sys.modules:
            bare = types.ModuleType(package)
            bare.__path__ = [str(root / package.partition(".")[2])]
            bare.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
            sys.modules[package] = bare
    return importlib.import_module(f"torchvision.{name}")


def torchvision_model(name: str) -> nn.Module:
    """An untrained torchvision model (seeded), built without loading torchvision's compiled ops."""
    module, builder = TORCHVISION[name]
    torch.manual_seed(0)
    return getattr(torchvision_module(f"models.{module}"), builder)().eval()


class GPTBlock(nn.Module):
    """One pre-norm decoder block: causal self-attention (masked_fill with -inf before Softmax) and an MLP."""

    def __init__(self, width: int = 32, heads: int = 4, length: int = 8):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.register_buffer("mask", torch.tril(torch.ones(length, length, dtype=torch.bool)))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
        attended = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(attended)
        return x + self.mlp(self.ln2(x))


def transformer_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True).eval()


def gpt_block() -> nn.Module:
    torch.manual_seed(0)
    return GPTBlock().eval()


class UNet(nn.Module):
    """A two-level U-Net: Conv down, MaxPool, up-sampling by ConvTranspose on one path and by bilinear
    interpolation (Resize) on the other, skip connections concatenated."""

    def __init__(self, width: int = 8):
        super().__init__()
        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
        self.down1, self.down2, self.bottom = block(3, width), block(width, 2 * width), block(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2, self.dec1 = block(4 * width, 2 * width), block(3 * width, width)
        self.head = nn.Conv2d(width, 2, 1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(nn.functional.max_pool2d(d1, 2))
        b = self.bottom(nn.functional.max_pool2d(d2, 2))
        u2 = self.dec2(torch.cat([self.up2(b), d2], 1))
        u1 = nn.functional.interpolate(u2, scale_factor=2, mode="bilinear", align_corners=False)
        return self.head(self.dec1(torch.cat([u1, d1], 1)))


def unet() -> nn.Module:
    torch.manual_seed(0)
    return UNet().eval()


BUILDERS = {**{name: (lambda name=name: torchvision_model(name)) for name in TORCHVISION},
            "transformer_encoder": transformer_encoder, "gpt_block": gpt_block, "unet": unet}
# the models every debugging tool is tested on (Swin-T, slower to export, only where its import is the point)
REAL_MODELS = ("resnet18", "mobilenet_v2", "densenet121", "transformer_encoder", "gpt_block")
SHAPES = {**dict.fromkeys(TORCHVISION, IMAGE), "transformer_encoder": (2, 8, 32), "gpt_block": (2, 8, 32),
          "unet": (2, 3, 16, 16)}


@dataclass
class Exported:
    """A model, the input it was exported with, and its ONNX file (input `x`, output `y`)."""

    name: str
    model: nn.Module
    x: torch.Tensor
    path: Path


# torch's TorchScript exporter cannot trace nn.MultiheadAttention (is_causal arrives as a tensor); its dynamo
# exporter can, and records the module scopes as node metadata instead of in node names
# nor export Swin's shifted windows in ops cgtools runs (their padding arithmetic becomes Mod); dynamo folds it away
DYNAMO = {"transformer_encoder", "swin_t"}


def export(name: str, folder: Path, *, trainable: bool = False, batch: int | None = None,
           shape: tuple | None = None, **options) -> Exported:
    """Export `name` at opset 17 (18 through dynamo): the TorchScript exporter's node names carry the module
    scopes (`/layer1/layer1.0/conv1/Conv`), the dynamo exporter's metadata does (`pkg.torch.onnx.name_scopes`).

    `trainable` exports the model as it trains: every param nudged, as training would, so no two are equal
    (exporters merge equal tensors: an untrained network's BatchNorm and LayerNorm weights are all ones), and
    BatchNorm kept as its own op rather than folded into the Conv before it. `batch` changes the batch size,
    `shape` the whole input shape; `options` go to torch.onnx.export (dynamic_axes …)."""
    model = BUILDERS[name]()
    torch.manual_seed(1)
    shape = shape or SHAPES[name]
    shape = shape if batch is None else (batch, *shape[1:])
    x = torch.randn(*shape)
    dynamo = name in DYNAMO
    if trainable:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.01 * torch.randn_like(param))
        if not dynamo:
            options = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False, **options}
    path = Path(folder) / f"{name}{'-trainable' if trainable else ''}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (x,), str(path), dynamo=dynamo, opset_version=18 if dynamo else 17,
                          input_names=["x"], output_names=["y"], verbose=False, **options)
    return Exported(name, model, x, path)
