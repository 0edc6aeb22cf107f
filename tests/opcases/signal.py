"""The cases of the signal ops: DFT (forward and inverse, real and complex signals, from one side, padded and
cut to dft_length) against torch.fft, STFT against torch.stft, and Det against torch.linalg.det; the windows,
MelWeightMatrix, BitCast and the random ops have nothing to differentiate.

Complex numbers are a last axis of 2 (real, imaginary), a real signal a last axis of 1, as ONNX has them."""

from __future__ import annotations

import numpy as np
import torch

from opcheck import SKIP, Case, case, ints, randn


def complex_of(x):
    return torch.view_as_complex(x) if x.shape[-1] == 2 else x[..., 0]


def pairs(z):
    return torch.view_as_real(z.resolve_conj()) if z.is_complex() else z[..., None]


def fft(kind, dim, n=None):
    """The torch function of a DFT case: torch.fft.<kind> along dim, on and to ONNX's layout."""
    return lambda x, *_: pairs(getattr(torch.fft, kind)(complex_of(x), n=n, dim=dim))


CASES: list[Case] = [
    case("DFT-real-axis1", [randn(2, 6, 3, 1), SKIP, ints(1)], fft("fft", 1)),
    case("DFT-complex-default-axis", [randn(2, 5, 2)], fft("fft", 1)),
    case("DFT-complex-negative-axis", [randn(3, 4, 2, 2), SKIP, ints(-3)], fft("fft", 1)),
    case("DFT-onesided-real", [randn(2, 7, 1)], fft("rfft", 1), onesided=1),
    case("DFT-padded-complex", [randn(2, 5, 2), ints(8)], fft("fft", 1, 8)),
    case("DFT-cut-onesided", [randn(3, 8, 1), ints(6)], fft("rfft", 1, 6), onesided=1),
    case("DFT-inverse-complex-axis2", [randn(2, 3, 6, 2), SKIP, ints(2)], fft("ifft", 2), inverse=1),
    case("DFT-inverse-real-padded", [randn(2, 4, 1), ints(6)], fft("ifft", 1, 6), inverse=1),
    case("DFT-irfft-even", [randn(2, 6, 2)], fft("irfft", 1, 10), inverse=1, onesided=1),
    case("DFT-irfft-odd-length", [randn(2, 4, 3, 2), ints(7), ints(1)], fft("irfft", 1, 7), inverse=1, onesided=1),
    case("DFT-irfft-cut", [randn(5, 2), ints(4), ints(0)], fft("irfft", 0, 4), inverse=1, onesided=1),
]



def stft(n, step, onesided=True):
    """torch.stft of frames of n samples, step apart, in ONNX's layout (batch × frames × bins × 2)."""
    def fn(x, _, window=None, *rest):
        window = torch.ones(n, dtype=x.dtype) if window is None else window
        z = torch.stft(complex_of(x), n, step, window=window, center=False, onesided=onesided,
                       return_complex=True)
        return pairs(z.transpose(1, 2))
    return fn


CASES += [
    case("STFT-real-window", [randn(2, 20, 1), ints(4), randn(6)], stft(6, 4)),
    case("STFT-overlapping-frames", [randn(2, 12, 1), ints(2), SKIP, ints(8)], stft(8, 2)),
    case("STFT-complex-two-sided", [randn(1, 16, 2), ints(3), randn(5), ints(5)], stft(5, 3, False), onesided=0),
]

# Det: matrices kept well away from singular (the identity plus a little noise), one and a batch of them
CASES += [
    case("Det-matrix", [np.eye(3) + 0.3 * randn(3, 3)], torch.linalg.det),
    case("Det-batch", [np.eye(4) + 0.3 * randn(2, 3, 4, 4)], torch.linalg.det),
]

TORCH_ONLY_CASES: list[Case] = []
NON_FLOAT_OPS = {"Bernoulli", "RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal",
                 "BitCast", "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix"}
FLOAT32_CASES = ["DFT-complex-default-axis", "DFT-irfft-even", "STFT-real-window", "Det-batch"]
