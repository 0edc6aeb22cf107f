"""The op registry and every built-in op family (importing a family registers its ops)."""

from cgtools.ops import (  # noqa: F401
    cast,
    conv,
    elementwise,
    generate,
    linalg,
    logic,
    loss,
    nn,
    norm,
    recurrent,
    reduce,
    shape,
    slicing,
    unary,
)
from cgtools.ops.base import REGISTRY, Context, Operation, get_op, register_op, summary

__all__ = ["REGISTRY", "Context", "Operation", "get_op", "register_op", "summary"]
