"""The op registry and every built-in op family (importing a family registers its ops)."""

from cgtools.ops import (  # noqa: F401
    attention,
    bitcast,
    bitwise,
    blocks,
    cast,
    control,
    conv,
    convt,
    det,
    elementwise,
    generate,
    indexing,
    linalg,
    logic,
    loss,
    maths,
    maths_axes,
    nn,
    norm,
    normalize,
    quantize,
    random,
    recurrent,
    reduce,
    resize,
    sample,
    sequence,
    shape,
    signal,
    slicing,
    unary,
)
from cgtools.ops.base import REGISTRY, Context, Operation, get_op, register_op, summary

__all__ = ["REGISTRY", "Context", "Operation", "get_op", "register_op", "summary"]
