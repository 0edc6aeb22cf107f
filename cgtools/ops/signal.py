"""Signal processing: DFT and STFT (complex numbers as a last axis of 2: real, imaginary; a real signal has a
last axis of 1), the Hann, Hamming and Blackman windows, MelWeightMatrix.

DFT and STFT are linear maps, so their gradients are the adjoint maps: the DFT's adjoint is the inverse DFT
times the length, the inverse DFT's is the DFT over the length; padding and cutting swap places. The windows
and the Mel matrix are made from sizes and numbers alone: nothing to differentiate."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, described
from cgtools.ops.base import NoGradient, Operation, ints_of, register_op


def as_complex(x):
    """The complex signal of a last axis of 1 (real) or 2 (real, imaginary)."""
    if x.shape[-1] not in (1, 2):
        raise CgError(f"expected a last axis of 1 (real) or 2 (real, imaginary), found {x.shape[-1]}")
    return x[..., 0] if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]


def as_pairs(z, real: bool = False):
    """z as a last axis of 2 (real, imaginary), or of 1 when `real`."""
    return np.real(z)[..., None] if real else np.stack([np.real(z), np.imag(z)], -1)


def fit(z, n: int, axis: int):
    """z cut, or padded with zeros, to length n along axis."""
    m = z.shape[axis]
    if m >= n:
        return np.take(z, np.arange(n), axis=axis)
    pad = [(0, 0)] * z.ndim
    pad[axis] = (0, n - m)
    return np.pad(z, pad)


def onesided_weights(n: int, axis: int, ndim: int):
    """How often each of the n//2 + 1 kept bins counts in an inverse DFT of length n from one side: the bins
    between 0 and n/2 stand for their mirror images too."""
    w = np.ones(n // 2 + 1)
    w[1:(n + 1) // 2] = 2
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


def dft(z, n: int, axis: int, inverse: bool, onesided: bool):
    """The (inverse) DFT of length n of complex z along axis; from one side: the first n//2 + 1 bins forward,
    a real signal from those bins inverse."""
    if not inverse:
        y = np.fft.fft(z, n, axis)
        return np.take(y, np.arange(n // 2 + 1), axis=axis) if onesided else y
    return np.fft.irfft(z, n, axis) if onesided else np.fft.ifft(z, n, axis)


def dft_adjoint(g, m: int, n: int, axis: int, inverse: bool, onesided: bool):
    """The adjoint of `dft` (for input length m) applied to the complex gradient g of its output."""
    if not inverse:
        gz = n * np.fft.ifft(fit(g, n, axis) if onesided else g, axis=axis)
    elif onesided:
        gz = np.take(np.fft.fft(g, axis=axis), np.arange(n // 2 + 1), axis=axis)
        gz = gz * onesided_weights(n, axis, g.ndim) / n
    else:
        gz = np.fft.fft(g, axis=axis) / n
    return fit(gz, m, axis)


@register_op("DFT")
class DFT(Operation):
    """the discrete Fourier transform along an axis (inverse, of length dft_length, from one side: onesided)"""

    symbol = "DFT"
    attribute_forms = {"axis": ("axis", "int")}  # an attribute (default 1) before opset 20

    @staticmethod
    def forward(ctx, input, dft_length=None, axis=None, *, inverse: int = 0, onesided: int = 0):  # noqa: A002
        rank = input.ndim
        axis = -2 if axis is None else int(np.ravel(axis)[0])
        if not -rank <= axis < rank or axis % rank == rank - 1:
            raise CgError(f"expected a DFT axis among the signal's axes (input of rank {rank}, its last axis "
                          f"holding real and imaginary parts), found {axis}")
        axis %= rank
        m = input.shape[axis]
        n = ints_of(dft_length)[0] if dft_length is not None else 2 * (m - 1) if inverse and onesided else m
        if n < 1:
            raise CgError(f"DFT length must be at least 1, found {n}")
        ctx.save(input.shape, m, n, axis, bool(inverse), bool(onesided))
        y = dft(as_complex(input), n, axis, bool(inverse), bool(onesided))
        return as_pairs(y, real=bool(inverse and onesided)).astype(input.dtype)

    @staticmethod
    def backward(ctx, grad):
        shape, m, n, axis, inverse, onesided = ctx
        g = grad[..., 0] if grad.shape[-1] == 1 else grad[..., 0] + 1j * grad[..., 1]
        gz = dft_adjoint(g, m, n, axis, inverse, onesided)
        return as_pairs(gz, real=shape[-1] == 1).astype(grad.dtype), None, None


def frame_starts(length: int, frame_length: int, step: int):
    if step < 1 or frame_length < 1 or frame_length > length:
        raise CgError(f"STFT needs a frame_step of at least 1 and frames of 1 to {length} samples (the signal's "
                      f"length), found frame_step {step} and frame_length {frame_length}")
    return np.arange(1 + (length - frame_length) // step) * step


@register_op("STFT")
class STFT(Operation):
    """the DFT of each frame of frame_length samples, frame_step apart, times the window (batch × frames × bins
    × 2; from one side by default)"""

    symbol = "STFT"

    @staticmethod
    def forward(ctx, signal, frame_step, window=None, frame_length=None, *, onesided: int = 1):
        n = ints_of(frame_length)[0] if frame_length is not None else len(window) if window is not None else None
        if n is None or (window is not None and len(window) != n):
            raise CgError(f"STFT needs a window or a frame_length, of one length; found a window of "
                          f"{None if window is None else len(window)} and frame_length {n}")
        w = np.ones(n) if window is None else window
        frames = frame_starts(signal.shape[1], n, ints_of(frame_step)[0])[:, None] + np.arange(n)
        z = as_complex(signal)[:, frames]  # batch × frames × n
        ctx.save(signal.shape, frames, z, w, bool(onesided))
        return as_pairs(dft(z * w, n, 2, False, bool(onesided))).astype(signal.dtype)

    @staticmethod
    def backward(ctx, grad):
        shape, frames, z, w, onesided = ctx
        n = len(w)
        g = dft_adjoint(grad[..., 0] + 1j * grad[..., 1], n, n, 2, False, onesided)  # of the windowed frames
        gz = np.zeros(shape[:2], g.dtype)
        np.add.at(gz, (slice(None), frames), g * w)  # overlapping frames add up
        gw = np.real(g * np.conj(z)).sum((0, 1)) if ctx.needs_grad[2] else None
        return as_pairs(gz, real=shape[-1] == 1).astype(grad.dtype), None, gw, None


def output_dtype(code: int):
    if code not in NUMPY_TYPES:
        raise CgError(f"expected an ONNX type code for output_datatype, found {code}; supported: "
                      f"{described(NUMPY_TYPES)}", where="output_datatype")
    return NUMPY_TYPES[code]


def cosine_window(size, periodic: int, output_datatype: int, *coefficients):
    """Σₖ (−1)ᵏ·aₖ·cos(2πkn/N) for n < size, N = size (periodic) or size − 1 (symmetric)."""
    size = ints_of(size)[0]
    n = np.arange(size)
    big_n = size if periodic else size - 1
    w = sum((-1) ** k * a * np.cos(2 * np.pi * k * n / big_n) for k, a in enumerate(coefficients))
    return np.asarray(w, np.float64).astype(output_dtype(output_datatype))


@register_op("HannWindow")
class HannWindow(Operation):
    """the Hann window of `size` samples: 0.5 − 0.5·cos(2πn/N) (N = size if periodic, else size − 1)"""

    symbol = "hann"

    @staticmethod
    def forward(ctx, size, *, output_datatype: int = 1, periodic: int = 1):
        return cosine_window(size, periodic, output_datatype, 0.5, 0.5)


@register_op("HammingWindow")
class HammingWindow(Operation):
    """the Hamming window of `size` samples: 25/46 − 21/46·cos(2πn/N) (N = size if periodic, else size − 1)"""

    symbol = "hamming"

    @staticmethod
    def forward(ctx, size, *, output_datatype: int = 1, periodic: int = 1):
        return cosine_window(size, periodic, output_datatype, 25 / 46, 21 / 46)


@register_op("BlackmanWindow")
class BlackmanWindow(Operation):
    """the Blackman window of `size` samples: 0.42 − 0.5·cos(2πn/N) + 0.08·cos(4πn/N)"""

    symbol = "blackman"

    @staticmethod
    def forward(ctx, size, *, output_datatype: int = 1, periodic: int = 1):
        return cosine_window(size, periodic, output_datatype, 0.42, 0.5, 0.08)


def hertz_to_mel(f):
    return 2595 * np.log10(1 + f / 700)


@register_op("MelWeightMatrix")
class MelWeightMatrix(NoGradient):  # the triangles' corners are whole bins: small moves of the edges change nothing
    """the weights (dft_length//2 + 1 bins × num_mel_bins) that turn a spectrum into a mel spectrum: one triangle
    per mel bin, evenly spaced in mel between the edge frequencies; no gradient"""

    symbol = "mel"

    @staticmethod
    def forward(ctx, num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *,
                output_datatype: int = 1):
        mels, n = ints_of(num_mel_bins)[0], ints_of(dft_length)[0]
        low, high = (hertz_to_mel(float(np.ravel(f)[0])) for f in (lower_edge_hertz, upper_edge_hertz))
        points = low + np.arange(mels + 2) * (high - low) / (mels + 2)  # as onnx's reference spaces them
        hertz = 700 * (10 ** (points / 2595) - 1)
        bins = (((n + 1) * hertz) // ints_of(sample_rate)[0]).astype(int)
        out = np.zeros((n // 2 + 1, mels))
        for i, (left, centre, right) in enumerate(zip(bins, bins[1:], bins[2:])):
            if centre == left:
                out[centre, i] = 1
            else:
                out[left:centre + 1, i] = (np.arange(left, centre + 1) - left) / (centre - left)
            if right > centre:
                out[centre:right, i] = (right - np.arange(centre, right)) / (right - centre)
        return out.astype(output_dtype(output_datatype))
