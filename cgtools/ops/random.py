"""Random ops: Bernoulli, RandomUniform(Like), RandomNormal(Like). With a seed, a node draws the same numbers on
every run, the ones onnx's ReferenceEvaluator draws (numpy's RandomState of that seed); without, new ones each
run. The draws do not depend smoothly on any input: no gradient."""

from __future__ import annotations

import numpy as np

from cgtools.ops.base import NoGradient, register_op
from cgtools.ops.signal import output_dtype


def drawn(values, dtype, scale: float, shift: float):
    """values·scale + shift, computed in dtype as onnx's reference does (cast first)."""
    out = values.astype(dtype)
    return (out * np.asarray(scale, dtype) + np.asarray(shift, dtype)).astype(dtype)


def generator(seed):
    return np.random.RandomState() if seed is None or np.isnan(seed) else np.random.RandomState(int(seed))


class _Random(NoGradient):
    """Shared backward: the draws pass nothing back."""


@register_op("Bernoulli")
class Bernoulli(_Random):
    """1 with probability input, else 0, for each element (of type dtype, else input's); no gradient"""

    symbol = "bernoulli"

    @staticmethod
    def forward(ctx, input, *, dtype: int = None, seed: float = None):  # noqa: A002 - ONNX's name
        out = generator(seed).binomial(1, p=input)
        return out.astype(input.dtype if dtype is None else output_dtype(dtype))


@register_op("RandomUniformLike")
class RandomUniformLike(_Random):
    """numbers drawn uniformly from [low, high), of input's shape (and type, unless dtype); no gradient"""

    symbol = "uniform"

    @staticmethod
    def forward(ctx, input, *, dtype: int = None, high: float = 1.0, low: float = 0.0, seed: float = None):  # noqa: A002
        dtype = input.dtype if dtype is None else output_dtype(dtype)
        return drawn(generator(seed).rand(*input.shape), dtype, high - low, low)


@register_op("RandomNormalLike")
class RandomNormalLike(_Random):
    """numbers drawn from a normal distribution (mean, scale), of input's shape (and type, unless dtype)"""

    symbol = "normal"

    @staticmethod
    def forward(ctx, input, *, dtype: int = None, mean: float = 0.0, scale: float = 1.0, seed: float = None):  # noqa: A002
        dtype = input.dtype if dtype is None else output_dtype(dtype)
        return drawn(generator(seed).randn(*input.shape), dtype, scale, mean)


@register_op("RandomUniform")
class RandomUniform(_Random):
    """numbers drawn uniformly from [low, high), of the given shape and dtype (float32 by default)"""

    symbol = "uniform"

    @staticmethod
    def forward(ctx, *, shape: list[int], dtype: int = 1, high: float = 1.0, low: float = 0.0, seed: float = None):
        return drawn(generator(seed).rand(*shape), output_dtype(dtype), high - low, low)


@register_op("RandomNormal")
class RandomNormal(_Random):
    """numbers drawn from a normal distribution (mean, scale), of the given shape and dtype (float32 by default)"""

    symbol = "normal"

    @staticmethod
    def forward(ctx, *, shape: list[int], dtype: int = 1, mean: float = 0.0, scale: float = 1.0, seed: float = None):
        return drawn(generator(seed).randn(*shape), output_dtype(dtype), scale, mean)
