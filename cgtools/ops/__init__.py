"""The op registry and every built-in op family (importing a family registers its ops)."""

from cgtools.ops import conv, elementwise, linalg, logic, loss, math, nn, reduce, shape, slicing  # noqa: F401
from cgtools.ops.base import REGISTRY, Context, Operation, get_op, register_op, summary

__all__ = ["REGISTRY", "Context", "Operation", "get_op", "register_op", "summary"]
