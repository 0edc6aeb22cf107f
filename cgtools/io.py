"""Loading and converting graph files: the format is picked by the file's suffix (.json, .onnx)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cgtools.errors import CgError, did_you_mean
from cgtools.files import usable_path
from cgtools.graph import Graph
from cgtools.json_format import save
from cgtools.onnx.mapping import require_onnx
from cgtools.onnx.read import load_onnx


def load(source, *, params=(), constants=()) -> Graph:
    """A checked Graph from a path (.json, or .onnx with the `onnx` extra installed) or a dict. `params` and
    `constants` name leaves to make trainable or fixed, overriding the file (and the ONNX reader's choice)."""
    if isinstance(source, Graph):
        graph = source
    elif isinstance(source, dict):
        graph = Graph.from_dict(source)
    elif usable_path(source).suffix.lower() == ".onnx":
        graph = load_onnx(Path(source))
    else:
        graph = Graph.read(Path(source))
    return with_kinds(graph, params, constants) if params or constants else graph


def with_kinds(graph: Graph, params=(), constants=()) -> Graph:
    """The graph with the leaves named in `params` made params and those in `constants` made constants."""
    both = set(params) & set(constants)
    if both:
        raise CgError(f"{sorted(both)[0]!r} is named as both a param and a constant")
    kinds = {**dict.fromkeys(params, "param"), **dict.fromkeys(constants, "constant")}
    leaves = dict(graph.leaves)
    for name, kind in kinds.items():
        option = "--params" if kind == "param" else "--constants"
        leaf = leaves.get(name)
        if leaf is None:
            raise CgError(f"the graph has no leaf named {name!r}{did_you_mean(name, leaves)}", where=option)
        if leaf.value is None:
            raise CgError(f"{name!r} is an input without a value; only leaves holding a value can be params or "
                          "constants", where=option)
        leaves[name] = replace(leaf, kind=kind)
    return Graph(list(leaves.values()), graph.nodes, graph.outputs, loss=graph.loss, name=graph.name,
                 doc=graph.doc, opset=graph.opset, path=graph.path)


def convert(source, target, *, params=(), constants=(), weights=None) -> list[Path]:
    """model.onnx -> graph.json (arrays over 1,000 elements into `weights`, by default graph.npz beside it), or
    graph.json -> model.onnx. Returns the paths written."""
    require_onnx()  # a CgError saying how to install it, before any file is touched
    source, target = usable_path(source), usable_path(target)
    kinds = (source.suffix.lower(), target.suffix.lower())
    if kinds not in ((".onnx", ".json"), (".json", ".onnx")):
        raise CgError(f"convert reads model.onnx and writes graph.json, or reads graph.json and writes "
                      f"model.onnx; found {source.name!r} -> {target.name!r}")
    if weights is not None and kinds[1] != ".json":
        raise CgError("--weights names where a graph.json's large arrays go; an ONNX model holds its own")
    folder = target.parent
    if not folder.resolve().is_dir():
        raise CgError(f"no such folder {str(folder)!r} to write {target.name!r} in")
    if kinds[0] == ".onnx":
        graph = load(source, params=params, constants=constants)
        written = save(graph, target, weights=weights, inputs=(source,))
        return [target, written] if written else [target]
    from cgtools.onnx.write import save_onnx  # here: loading a model never needs the writer

    return [save_onnx(load(source, params=params, constants=constants), target)]
