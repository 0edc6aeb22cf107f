"""Loading and converting graph files: the format is picked by the file's suffix (.json, .onnx)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgtools.errors import CgError
from cgtools.graph import Graph
from cgtools.onnx.mapping import require_onnx
from cgtools.onnx.read import load_onnx
from cgtools.onnx.write import save_onnx
from cgtools.values import INLINE_LIMIT


def load(source) -> Graph:
    """A checked Graph from a path (.json, or .onnx with the `onnx` extra installed) or a dict."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, dict):
        return Graph.from_dict(source)
    path = Path(source)
    if path.suffix.lower() == ".onnx":
        return load_onnx(path)
    return Graph.read(path)


def convert(source, target) -> list[Path]:
    """model.onnx -> graph.json (arrays over 1,000 elements into graph.npz beside it), or graph.json ->
    model.onnx. Returns the paths written."""
    require_onnx()  # a CgError saying how to install it, before any file is touched
    source, target = Path(source), Path(target)
    kinds = (source.suffix.lower(), target.suffix.lower())
    if kinds not in ((".onnx", ".json"), (".json", ".onnx")):
        raise CgError(f"convert reads model.onnx and writes graph.json, or reads graph.json and writes "
                      f"model.onnx; found {source.name!r} -> {target.name!r}")
    folder = target.parent
    if not folder.resolve().is_dir():
        raise CgError(f"no such folder {str(folder)!r} to write {target.name!r} in")
    if kinds[0] == ".onnx":
        graph = load_onnx(source)
        sidecar = any(leaf.value is not None and np.size(leaf.value) > INLINE_LIMIT for leaf in graph.leaves.values())
        graph.save(target)
        return [target, target.with_suffix(".npz")] if sidecar else [target]
    return [save_onnx(Graph.read(source), target)]
