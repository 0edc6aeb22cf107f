"""Reading a graph: JSON -> JSON Schema validation -> Graph -> semantic checks, each failure a CgError."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from cgtools import values as tensor_values
from cgtools.errors import CgError, did_you_mean
from cgtools.graph import Graph, Leaf, Node
from cgtools.ops import get_op
from cgtools.ops.base import check_attrs


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


def json_path(parts) -> str:
    """('nodes', 2, 'inputs', 1) -> 'nodes[2].inputs[1]'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "top level"


def load(source) -> Graph:
    """A checked Graph from a path (.json, or .onnx with the `onnx` extra installed) or a dict."""
    if isinstance(source, Graph):
        return source
    if isinstance(source, dict):
        return from_dict(source)
    path = Path(source)
    if path.suffix.lower() == ".onnx":
        from cgtools.onnx_io import load_onnx

        return load_onnx(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CgError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise CgError("expected a graph file, found a folder", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CgError(f"cannot read: {e}", file=str(path)) from None
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except CgError as e:
        raise e.located(file=str(path)) from None
    except json.JSONDecodeError as e:
        raise CgError(f"line {e.lineno} column {e.colno}: invalid JSON: {e.msg}", file=str(path)) from None
    return from_dict(doc, file=str(path))


def _unique_keys(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise CgError(f"the field {key!r} appears twice in one object; JSON would silently keep the last")
        seen.add(key)
    return dict(pairs)


def from_dict(doc, *, file: str | None = None) -> Graph:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema())
    # The most relevant error, without descending into anyOf branches: _schema_message picks the branch.
    error = max(validator.iter_errors(doc), key=jsonschema.exceptions.relevance, default=None)
    if error is not None:
        error = _fitting_branch(error)
        raise CgError(_schema_message(error), file=file, where=json_path(error.absolute_path))
    folder = Path(file).parent if file else Path.cwd()
    try:
        graph = _build(doc, folder, file)
        check(graph)
    except CgError as e:
        raise e.located(file=file) from None
    return graph


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


def _build(doc: dict, folder: Path, file: str | None) -> Graph:
    npz_cache: dict = {}
    leaves, places = [], {}
    for plural, kind in (("inputs", "input"), ("params", "param"), ("constants", "constant")):
        for i, entry in enumerate(doc.get(plural, [])):
            if entry["name"] in places:
                raise CgError(f"tensor {entry['name']!r} is declared twice: already at {places[entry['name']]}",
                              file=file, where=f"{plural}[{i}].name")
            places[entry["name"]] = f"{plural}[{i}]"
            value = None
            if "value" in entry:
                try:
                    value = tensor_values.decode(entry["value"], dtype=entry.get("dtype"), shape=entry.get("shape"),
                                                 folder=folder, npz_cache=npz_cache)
                except CgError as e:
                    where = f"{plural}[{i}].value" + (f".{e.where}" if e.where else "")
                    raise CgError(e.detail, file=file, where=where) from None
            shape = tuple(entry["shape"]) if "shape" in entry else None
            leaves.append(Leaf(entry["name"], kind, value, entry.get("dtype"), shape, entry.get("doc", "")))
    nodes = [Node(n["op"], list(n.get("inputs", [])), list(n["outputs"]), dict(n.get("attrs", {})),
                  n.get("name", ""), n.get("doc", "")) for n in doc["nodes"]]
    return Graph(leaves, nodes, doc["outputs"], loss=doc.get("loss"), name=doc.get("name", ""),
                 doc=doc.get("doc", ""), opset=doc.get("opset"), path=file)


def node_place(index: int, node: Node) -> str:
    return f"nodes[{index}] ({node.op} {node.name!r})"


def check(graph: Graph) -> None:
    """The semantic checks: names, references, ops, attributes, arity and cycles."""
    made_by: dict[str, str] = {}
    for leaf in graph.leaves.values():
        made_by[leaf.name] = f"the {leaf.kind} {leaf.name!r}"
    node_names: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for j, out in enumerate(node.outputs):
            if out in made_by:
                raise CgError(f"tensor {out!r} is made twice: already by {made_by[out]}",
                              where=f"nodes[{i}].outputs[{j}]")
            made_by[out] = f"nodes[{i}]"
        if node.name in node_names or node.name in graph.leaves:
            other = (f"nodes[{node_names[node.name]}]" if node.name in node_names
                     else f"the {graph.leaves[node.name].kind} {node.name!r}")
            raise CgError(f"node name {node.name!r} is already taken by {other}; give the node its own \"name\"",
                          where=f"nodes[{i}].name")
        node_names[node.name] = i
    for i, node in enumerate(graph.nodes):
        for j, tensor in enumerate(node.inputs):
            if tensor and tensor not in made_by:
                raise CgError(f"unknown tensor {tensor!r}{did_you_mean(tensor, made_by)}",
                              where=f"nodes[{i}].inputs[{j}]")
        try:
            op = get_op(node.op)
        except CgError as e:
            raise e.located(where=f"nodes[{i}].op") from None
        _check_arity(op, node, i)
        try:
            node.attrs = check_attrs(op, node.attrs)
        except CgError as e:
            raise CgError(e.detail, where=f"nodes[{i}].{e.where}") from None
    for j, out in enumerate(graph.outputs):
        if out not in made_by:
            raise CgError(f"unknown tensor {out!r}{did_you_mean(out, made_by)}", where=f"outputs[{j}]")
    if graph.loss is not None and graph.loss not in made_by:
        raise CgError(f"unknown tensor {graph.loss!r}{did_you_mean(graph.loss, made_by)}", where="loss")
    graph.topological_order()  # raises on a cycle, naming it


def _check_arity(op, node: Node, index: int) -> None:
    spec, given = op.spec, len(node.inputs)
    missing = [spec.inputs[k] for k in range(min(spec.required, given)) if not node.inputs[k]]
    if given < spec.required or (given > len(spec.inputs) and not spec.variadic) or missing:
        names = ", ".join(spec.inputs) + ("…" if spec.variadic else "")
        found = f"{given}" + (f" (input {missing[0]!r} left empty)" if missing else "")
        raise CgError(f"{node.op} takes {spec.arity} inputs ({names}), found {found}",
                      where=f"{node_place(index, node)}.inputs")


def check_shapes(graph: Graph) -> None:
    """A forward pass on zeros wherever a leaf has no value but declares its shape; shape errors name the
    node. Skipped when some input has neither a value nor a shape."""
    feed = {}
    for leaf in graph.leaves.values():
        if leaf.value is None:
            if leaf.shape is None:
                return
            feed[leaf.name] = np.zeros(leaf.shape, leaf.dtype or np.float64)
    graph.run(feed, backward=False)

