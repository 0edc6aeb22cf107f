"""cgtools: computation graphs that load from JSON or ONNX, run forward and backward in numpy, and draw
with the value and the gradient on every edge.

    >>> import cgtools
    >>> run = cgtools.load("examples/affine_square.json").run()
    >>> run.values["e"], run.grads["x"]

Attributes load lazily, so `import cgtools` (and `cgtools --help`) stays fast.
"""

from importlib import import_module

from cgtools import notebook

__version__ = "0.1.0"

_EXPORTS = {
    "load": "cgtools.io",
    "convert": "cgtools.io",
    "Graph": "cgtools.graph",
    "Leaf": "cgtools.parts",
    "Node": "cgtools.parts",
    "Run": "cgtools.runs",
    "CgError": "cgtools.errors",
    "Operation": "cgtools.ops",
    "Context": "cgtools.ops",
    "register_op": "cgtools.ops",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cgtools' has no attribute {name!r}")


def __dir__():
    return __all__


def _diagram(graph, run=None) -> str | None:
    """What a notebook shows for a graph or a run: its SVG diagram (the drawing code loads on first use)."""
    from cgtools.export import notebook_svg

    return notebook_svg(graph, run)


notebook.drawing = _diagram  # the model and the engine sit below the drawing code: this is where they meet
