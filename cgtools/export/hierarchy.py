"""The model's own hierarchy, for drawing big graphs by module: every op's scope (the modules it belongs to, as
the exporter recorded them: Node.scope) and every leaf's, the scope its readers share.

DOT (`render --collapse`) and the HTML page (groups that open and close) group nodes by these paths.
"""

from __future__ import annotations

Scope = tuple[str, ...]


def common_prefix(scopes) -> Scope:
    """The longest scope every one of `scopes` starts with (() when they have none in common, or are none)."""
    scopes = list(scopes)
    if not scopes:
        return ()
    first, last = min(scopes), max(scopes)  # the common prefix of all is that of the two extremes
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def scopes(graph) -> dict[str, Scope]:
    """The scope of every op (by node name) and of every leaf (by tensor name): a weight lives where all its
    readers do (a conv's weight inside the conv's module; one read across modules at their common root). So
    does an exporter's unscoped Identity copy of a leaf, and the leaf is read where its copies are. The graph's
    inputs stay at the root: what flows into the model is drawn outside every module."""
    found: dict[str, Scope] = {node.name: tuple(node.scope) for node in graph.nodes}
    copies = {node.outputs[0]: node for node in graph.nodes
              if node.op == "Identity" and not node.scope and node.inputs and node.inputs[0] in graph.leaves}
    readers: dict[str, list[Scope]] = {}
    for node in graph.nodes:
        if node.outputs and node.outputs[0] in copies:
            continue
        for tensor in node.inputs:
            if tensor in copies:
                readers.setdefault(copies[tensor].name, []).append(found[node.name])
                tensor = copies[tensor].inputs[0]
            if tensor in graph.leaves:
                readers.setdefault(tensor, []).append(found[node.name])
    for name in [*graph.leaves, *(copy.name for copy in copies.values())]:
        found[name] = common_prefix(readers.get(name, ()))
    found.update((leaf.name, ()) for leaf in graph.leaves_of("input"))
    return found


def group_at(scope: Scope, depth: int) -> Scope:
    """The group a node with `scope` is drawn in when the hierarchy is cut at `depth` levels."""
    return scope[:depth]


def has_hierarchy(graph) -> bool:
    """Whether any op records a scope: only then can a diagram group by module."""
    return any(node.scope for node in graph.nodes)
