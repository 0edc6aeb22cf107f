"""The JSON format, the model's own, read and written: JSON -> JSON Schema validation -> a graph's parts
(Graph.from_dict then checks them), each failure a CgError; and a graph back to JSON, large arrays into an
.npz beside it. The format's reference is generated here from its JSON Schema."""

from __future__ import annotations

import json
import os
import zipfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cgtools import values as tensor_values
from cgtools.errors import CgError, did_you_mean, json_path
from cgtools.files import check_member_names, is_stream, stage, write_npz
from cgtools.limits import (
    MAX_DOCUMENT_BYTES,
    MAX_TOTAL_ELEMENTS,
    check_document,
    checked_json,
    checked_size,
)
from cgtools.parts import LEAF_KINDS, Leaf, Node

if TYPE_CHECKING:
    from cgtools.graph import Graph

FORMAT_VERSION = "1.0"


@cache
def json_schema() -> dict:
    """The published JSON Schema of the format, the single source of truth for its shape."""
    return json.loads(resources.files("cgtools.schemas").joinpath("cgraph.schema.json").read_text())


def schema_markdown() -> str:
    """The format's reference, generated from the JSON Schema so the two cannot drift apart."""
    schema = json_schema()
    defs = schema["$defs"]

    def kind(prop) -> str:
        if "$ref" in prop:
            return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1]})"
        if prop.get("type") == "array" and "items" in prop:
            return f"list of {kind(prop['items'])}"
        if "enum" in prop:
            return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
        return prop.get("type", "value")

    def table(obj) -> list[str]:
        required = set(obj.get("required", []))
        rows = ["| field | type | required | meaning |", "|---|---|---|---|"]
        for name, prop in obj.get("properties", {}).items():
            meaning = prop.get("description", "")
            rows.append(f"| `{name}` | {kind(prop)} | {'yes' if name in required else ''} | {meaning} |")
        return rows

    lines = [f"# {schema['title']}", "", "Generated from `schemas/cgraph.schema.json` by `cgtools schema "
             "--markdown`; do not edit by hand.", "", schema["description"], "", "## graph", "", *table(schema)]
    for name in ("tensor", "node", "value", "nested", "attr", "name", "shape", "dtype"):
        lines += ["", f"## {name}", ""]
        if defs[name].get("description"):
            lines += [defs[name]["description"], ""]
        if "properties" in defs[name]:
            lines += table(defs[name])
        elif "enum" in defs[name]:
            lines += ["One of " + kind(defs[name]) + "."]
    return "\n".join(lines) + "\n"


def read_document(path) -> dict:
    """The JSON document of a graph file, its keys unique, checked within the limits (limits.checked_json)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            stated = os.fstat(f.fileno()).st_size  # a FIFO states 0: then no more than the limit is read
            data = f.read(MAX_DOCUMENT_BYTES + 1) if stated <= MAX_DOCUMENT_BYTES else b""
        if max(stated, len(data)) > MAX_DOCUMENT_BYTES:
            raise CgError(f"expected a graph file of at most {MAX_DOCUMENT_BYTES:,} bytes, found a larger one; "
                          "large arrays belong in an .npz beside it ({\"file\": …, \"key\": …})", file=str(path))
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise CgError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise CgError("expected a graph file, found a folder", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CgError(f"cannot read: {e}", file=str(path)) from None
    try:
        return checked_json(text)
    except CgError as e:
        raise e.located(file=str(path)) from None


def parts_of(doc, file: str | None = None, checked: bool = False) -> dict:
    """Graph(**parts): the leaves, nodes and outputs a document describes, once it fits the JSON Schema; `checked`:
    the document is read_document's, already within the limits."""
    try:
        if not checked:
            check_document(doc)
    except CgError as e:
        raise e.located(file=file) from None
    if not fits_schema(doc):
        refuse_by_schema(doc, file)
    return _parts(doc, Path(file).parent if file else Path.cwd(), file)


def refuse_by_schema(doc, file: str | None) -> None:
    """jsonschema's most relevant error as a CgError, without descending into anyOf branches (_schema_message
    picks the branch)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema())
    error = max(validator.iter_errors(doc), key=jsonschema.exceptions.relevance, default=None)
    if error is not None:
        error = _fitting_branch(error)
        raise CgError(_schema_message(error), file=file, where=json_path(error.absolute_path))


@cache
def _fast_validator():
    import jsonschema_rs

    return jsonschema_rs.validator_for(json_schema())


def fits_schema(doc) -> bool:
    """Whether `doc` fits the JSON Schema, by jsonschema-rs: a 100,000-node graph in 0.02 s, where jsonschema
    takes minutes. jsonschema says why a document does not fit."""
    try:
        return _fast_validator().is_valid(doc)
    except ValueError:  # what JSON cannot hold (a dict given to load with keys that are not strings)
        return False


def _fitting_branch(error):
    """For an object failing every branch of an anyOf, the error within the branch it was meant for: the one
    whose required fields it has and whose type it is."""
    if error.validator not in ("anyOf", "oneOf") or not isinstance(error.instance, dict):
        return error
    branches: dict = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    for errors in branches.values():
        if all(e.relative_path or e.validator not in ("required", "type", "anyOf", "oneOf") for e in errors):
            return _fitting_branch(errors[0])
    return error


def _schema_message(error) -> str:
    """A jsonschema error in the terms of the format: what was expected, what was found."""
    found = json.dumps(error.instance, ensure_ascii=False)
    found = found if len(found) <= 60 else found[:57] + "…"
    described = error.schema.get("description", "")
    kind, wanted = error.validator, error.validator_value
    if kind == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in allowed]
        return (f"unexpected field {extra[0]!r}{did_you_mean(extra[0], allowed)}; "
                f"expected one of: {', '.join(allowed)}")
    if kind == "required":
        return f"missing required field {next(k for k in wanted if k not in error.instance)!r}"
    if kind in ("anyOf", "oneOf", "pattern") and described:
        return f"expected {described[0].lower()}{described[1:].rstrip('.')}, found {found}"
    if kind == "type":
        return f"expected {' or '.join(wanted) if isinstance(wanted, list) else wanted}, found {found}"
    if kind == "enum":
        return f"expected one of {', '.join(map(json.dumps, wanted))}, found {found}"
    if kind == "minLength":
        return "expected a non-empty string, found \"\""
    if kind == "minItems":
        return f"expected at least {wanted} item{'s' * (wanted != 1)}, found {found}"
    return error.message


def _parts(doc: dict, folder: Path, file: str | None) -> dict:
    npz_cache: dict = {}
    leaves, places, total = [], {}, 0
    for plural, kind in (("inputs", "input"), ("params", "param"), ("constants", "constant")):
        for i, entry in enumerate(doc.get(plural, [])):  # places written out only in messages: 100,000 leaves
            name = entry["name"]
            if name in places:
                raise CgError(f"tensor {name!r} is declared twice: already at {'{}[{}]'.format(*places[name])}",
                              file=file, where=f"{plural}[{i}].name")
            places[name] = (plural, i)
            shape = _declared_shape(entry, plural, i, file) if "shape" in entry else None
            try:
                value = None if "value" not in entry else tensor_values.decode(
                    entry["value"], dtype=entry.get("dtype"), shape=shape, folder=folder, npz_cache=npz_cache,
                    budget=MAX_TOTAL_ELEMENTS - total)
            except CgError as e:
                raise e.within(f"{plural}[{i}].value").located(file=file) from None
            if value is not None:
                total += value.size
                if total > MAX_TOTAL_ELEMENTS:
                    raise CgError(f"expected at most {MAX_TOTAL_ELEMENTS:,} elements in all the values of a graph, "
                                  f"found {total:,} by this one", file=file, where=f"{plural}[{i}].value")
            leaves.append(Leaf(name, kind, value, entry.get("dtype"), shape, entry.get("doc", "")))
    nodes = [Node(n["op"], list(n.get("inputs", [])), list(n["outputs"]), dict(n.get("attrs", {})),
                  n.get("name", ""), n.get("doc", ""), tuple(n.get("scope", ()))) for n in doc["nodes"]]
    return dict(leaves=leaves, nodes=nodes, outputs=doc["outputs"], loss=doc.get("loss"), name=doc.get("name", ""),
                doc=doc.get("doc", ""), opset=doc.get("opset"), path=file, outer=doc.get("outer", ()))


def _declared_shape(entry: dict, plural: str, i: int, file: str | None) -> tuple:
    try:
        checked_size(entry["shape"])
    except CgError as e:
        raise e.located(file=file, where=f"{plural}[{i}].shape") from None
    return tuple(entry["shape"])


def to_dict(graph: Graph, sidecar: dict | None = None, sidecar_file: str = "") -> dict:
    """The graph in the JSON format; large arrays go into `sidecar` when one is given."""

    def tensor(leaf: Leaf) -> dict:
        entry = {"name": leaf.name}
        if leaf.value is not None:
            entry["value"] = tensor_values.encode(leaf.value, name=leaf.name, sidecar=sidecar,
                                                  sidecar_file=sidecar_file)
        elif leaf.dtype:
            entry["dtype"] = leaf.dtype
        if leaf.value is None and leaf.shape is not None:
            entry["shape"] = list(leaf.shape)
        if leaf.doc:
            entry["doc"] = leaf.doc
        return entry

    def node(n: Node) -> dict:
        entry = {"op": n.op, "inputs": list(n.inputs), "outputs": list(n.outputs)}
        if n.attrs:  # tensor attributes (ONNX's ConstantOfShape value, say) as {dtype, shape, data}
            entry["attrs"] = {k: tensor_values.encode(v, name=k) if isinstance(v, np.ndarray)
                              else to_dict(v) if hasattr(v, "outer") else v for k, v in n.attrs.items()}
        if n.name != n.outputs[0]:
            entry["name"] = n.name
        if n.doc:
            entry["doc"] = n.doc
        if n.scope:
            entry["scope"] = list(n.scope)
        return entry

    doc = {"cgtools": FORMAT_VERSION}
    doc.update((k, v) for k, v in (("name", graph.name), ("doc", graph.doc), ("opset", graph.opset)) if v)
    for kind, plural in zip(LEAF_KINDS, ("inputs", "params", "constants")):
        entries = [tensor(leaf) for leaf in graph.leaves_of(kind)]
        if entries:
            doc[plural] = entries
    doc["nodes"] = [node(n) for n in graph.nodes]
    doc["outputs"] = list(graph.outputs)
    if graph.loss:
        doc["loss"] = graph.loss
    if graph.outer:
        doc["outer"] = list(graph.outer)
    return doc


def save(graph: Graph, path, *, weights=None, inputs=()) -> Path | None:
    """Write the graph as JSON, arrays over 1,000 elements into `weights` (default: `<name>.npz` beside it). Both
    are written and synced before either replaces anything, the arrays first: a failure never leaves a JSON naming
    arrays that are not there. Refuses to overwrite `inputs` (the files this command reads) and an existing .npz
    holding arrays other than this graph's. Returns the .npz written, if any."""
    path, weights, sidecar, text = _planned(graph, path, weights, inputs)
    staged = []
    try:
        if sidecar:
            staged.append(stage(weights, lambda f: write_npz(f, sidecar)))
        staged.append(stage(path, lambda f: f.write(text.encode())))
        for file in staged:
            file.commit()
    except CgError as e:
        raise e.located(file=str(path)) from None
    finally:
        for file in staged:
            file.discard()
    return weights if sidecar else None


def check_save(graph: Graph, path, *, weights=None, inputs=()) -> None:
    """Refuse now what save(graph, path, ...) would refuse, before a long computation (training) makes the graph."""
    _planned(graph, path, weights, inputs)


def _planned(graph: Graph, path, weights, inputs) -> tuple[Path, Path, dict, str]:
    """The JSON's path, the weights file's, the arrays going there and the JSON text, once checked."""
    path = Path(path)
    weights = Path(weights) if weights is not None else path.with_suffix(".npz")
    sidecar: dict = {}
    text = json.dumps(to_dict(graph, sidecar, _reference(weights, path)), indent=2) + "\n"
    for read in inputs:
        if _same_file(path, read):
            raise CgError(f"the graph would overwrite {str(read)!r}, an input of this command; give another "
                          "output name", file=str(path))
    if sidecar and is_stream(path):
        raise CgError("a graph with arrays over 1,000 elements cannot go into a device or pipe: its .npz must sit "
                      "beside it in a folder; write it to a file", file=str(path))
    if sidecar:
        _check_weights_file(weights, path, set(sidecar), inputs)
    try:
        check_member_names(sidecar)
    except CgError as e:
        raise e.located(file=str(weights)) from None
    return path, weights, sidecar, text


WAY_OUT = "give --weights PATH (where the graph's large arrays go) or another output name"


def _reference(weights: Path, path: Path) -> str:
    """How the JSON names its weights file: relative to its folder, which the reader keeps it inside."""
    relative = Path(os.path.relpath(os.path.abspath(weights), os.path.abspath(path.parent)))
    if relative.parts[:1] == ("..",) or weights.suffix.lower() != ".npz":
        raise CgError(f"expected the weights file to be an .npz inside the graph's folder, found {str(weights)!r}",
                      file=str(path))
    return relative.as_posix()


def _check_weights_file(weights: Path, path: Path, keys: set, inputs) -> None:
    """Refuse to overwrite a file that is not this graph's weights file: an input of the command, or an archive
    holding arrays the graph does not write there (which makes it someone else's file)."""
    for read in (path, *inputs):
        if _same_file(weights, read):
            raise CgError(f"the graph's large arrays would overwrite {str(read)!r}, "
                          f"{'the graph itself' if read is path else 'an input of this command'}; {WAY_OUT}",
                          file=str(weights))
    if not weights.is_file():
        return
    try:
        with zipfile.ZipFile(weights) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        raise CgError(f"expected no file or this graph's weights (.npz), found another kind of file; {WAY_OUT}",
                      file=str(weights)) from None
    other = sorted(n.removesuffix(".npy") for n in names if n.removesuffix(".npy") not in keys or
                   not n.endswith(".npy"))
    if other:
        raise CgError(f"expected no file or this graph's weights, found an .npz holding {len(other)} array(s) the "
                      f"graph does not write there ({', '.join(map(repr, other[:3]))}{', …' * (len(other) > 3)}); "
                      f"overwriting it would lose them: {WAY_OUT}, or remove the file", file=str(weights))


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same name, then
        return os.path.realpath(a) == os.path.realpath(b)
