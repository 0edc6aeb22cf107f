"""Signal processing: DFT and STFT (complex numbers as a last axis of 2: real, imaginary; a real signal has a
last axis of 1), the Hann, Hamming and Blackman windows, MelWeightMatrix.

DFT and STFT are linear maps, so their gradients are the adjoint maps: the DFT's adjoint is the inverse DFT
times the length, the inverse DFT's is the DFT over the length; padding and cutting swap places. The windows
and the Mel matrix are made from sizes and numbers alone: nothing to differentiate."""

from __future__ import annotations

import numpy as np

from cgtools.errors import CgError
from cgtools.onnx.mapping import NUMPY_TYPES, described
from cgtools.ops.base import Operation, ints_of, register_op


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
