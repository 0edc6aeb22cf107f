"""The op registry and every built-in op family (importing a family registers its ops)."""

from cgtools.ops import (  # noqa: F401
    attention,
    bitwise,
    blocks,
    cast,
    conv,
    detection,
    elementwise,
    generate,
    indexing,
    linalg,
    linear_attention,
    logic,
    loss,
    maths,
    maths_axes,
    nn,
    norm,
    recurrent,
    reduce,
    shape,
    slicing,
    training,
    unary,
)
from cgtools.ops.base import REGISTRY, Context, Operation, get_op, register_op, summary

__all__ = ["REGISTRY", "Context", "Operation", "get_op", "register_op", "summary"]
