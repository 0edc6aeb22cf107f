"""cgtools: computation graphs that load from JSON or ONNX, run forward and backward in numpy, and draw
with the value and the gradient on every edge.

    >>> import cgtools
    >>> run = cgtools.load("examples/affine_square.json").run()
    >>> run.values["e"], run.grads["x"]

Attributes load lazily, so `import cgtools` (and `cgtools --help`) stays fast.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load": "cgtools.io",
    "convert": "cgtools.io",
    "Graph": "cgtools.graph",
    "Leaf": "cgtools.graph",
    "Node": "cgtools.graph",
    "Run": "cgtools.runs",
    "CgError": "cgtools.errors",
    "Operation": "cgtools.ops",
    "Context": "cgtools.ops",
    "register_op": "cgtools.ops",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import_module("cgtools.io")  # the formats and the drawing register themselves with the model
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cgtools' has no attribute {name!r}")


def __dir__():
    return __all__
