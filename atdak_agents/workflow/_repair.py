"""Stand-ins for the broken parts of a workflow, so graph validation can still run.

When pydantic rejects part of a file, the rest is still worth checking: a typo in one node should
not hide an unknown node name in another. Each broken node is replaced by a neutral stand-in with
the same name, the same successors and the same writes (read leniently from what was written), so
the graph keeps its shape; other broken entries are reset to their defaults. Problems that graph
validation then finds *inside* a replaced part are dropped: pydantic has already spoken there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ..graph.spec import FunctionNode, GraphSpec, NodeSpec, Route
from ._source import YamlPath

__all__ = ["Repair", "repaired_spec", "stand_in_node"]

_RESET_TO_DEFAULT = frozenset({"inputs", "state"})  # entries replaced by `{}`
_DROP_ENTRY = frozenset({"models", "outputs", "parameters"})


def _stand_in(*_: Any) -> dict[str, Any]:
    """The function of a stand-in node (never run: a repaired spec is only validated)."""
    return {}


class Repair:
    """A repaired spec (None when the file is too broken), the replaced paths, and for each
    edge of the repaired spec the index of the edge it came from."""

    def __init__(self) -> None:
        self.spec: GraphSpec | None = None
        self.replaced: set[YamlPath] = set()
        self.edge_origin: list[int] = []


def repaired_spec(data: dict[str, Any], broken: Iterable[YamlPath]) -> Repair:
    """``data`` with every broken part replaced by a stand-in, validated again."""
    repair = Repair()
    fixed = dict(data)
    broken_edges: set[int] = set()
    for path in broken:
        if len(path) >= 2 and path[0] == "edges" and isinstance(path[1], int):
            broken_edges.add(path[1])
            repair.replaced.add(path[:2])
            continue
        where = _repair(fixed, path)
        if where is None:
            return repair
        repair.replaced.add(where)
    edges = fixed.get("edges")
    if isinstance(edges, list):
        kept = [(i, _lenient_edge(e) if i in broken_edges else e) for i, e in enumerate(edges)]
        fixed["edges"] = [edge for _, edge in kept if edge is not None]
        repair.edge_origin = [i for i, edge in kept if edge is not None]
    elif broken_edges:
        return repair
    try:
        repair.spec = GraphSpec.model_validate(fixed)
    except ValidationError:
        repair.spec = None
    return repair


def _repair(data: dict[str, Any], path: YamlPath) -> YamlPath | None:
    if not path:
        return None
    head = str(path[0])
    if head == "name":
        data["name"] = "workflow"
        return path[:1]
    if head == "nodes":
        return _repair_node(data, path)
    if len(path) >= 2 and isinstance(data.get(head), dict):
        section = dict(data[head])
        data[head] = section
        if head in _RESET_TO_DEFAULT:
            section[path[1]] = {}
        elif head == "tools":
            section[path[1]] = _stand_in
        elif head in _DROP_ENTRY:
            section.pop(path[1], None)
        else:
            data.pop(head, None)
        return path[:2]
    if head in _RESET_TO_DEFAULT or head == "edges":
        return None  # the whole section is unusable: validation would only guess
    data.pop(head, None)
    return path[:1]


def _repair_node(data: dict[str, Any], path: YamlPath) -> YamlPath | None:
    if len(path) < 2 or not isinstance(data.get("nodes"), dict):
        return None
    nodes = dict(data["nodes"])
    nodes[path[1]] = stand_in_node(nodes.get(path[1]))
    data["nodes"] = nodes
    return path[:2]


def stand_in_node(raw: Any) -> NodeSpec:
    """A node with ``raw``'s successors and writes that does nothing."""
    raw = raw if isinstance(raw, dict) else {}
    routes = _lenient_routes(raw.get("router"))
    if routes:
        return NodeSpec(router=routes)
    nexts = raw.get("next")
    if not (isinstance(nexts, str) or _strings(nexts)):
        nexts = None
    return NodeSpec(function=FunctionNode(function=_stand_in, writes=_writes(raw)), next=nexts)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _writes(raw: dict[str, Any]) -> list[str]:
    for kind, config in raw.items():
        if not isinstance(config, dict) or kind in ("retry", "next"):
            continue
        writes = config.get("writes")
        if isinstance(writes, str):
            return [writes]
        if isinstance(writes, list) and _strings(writes):
            return [str(w) for w in writes]
        for key in ("output", "outputs"):
            if isinstance(config.get(key), dict):
                return [k for k in config[key] if isinstance(k, str)]
    return []


def _lenient_routes(raw: Any) -> list[Route]:
    if not isinstance(raw, list):
        return []
    routes: list[Route] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        cap = item.get("max_iterations")
        cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None
        if isinstance(item.get("otherwise"), str):
            routes.append(Route(otherwise=item["otherwise"], max_iterations=cap))
        elif isinstance(item.get("to"), str):
            routes.append(Route(when="true", to=item["to"], max_iterations=cap))
    return routes


def _lenient_edge(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    source, target = raw.get("from"), raw.get("to")
    if isinstance(source, str):
        source = [source]
    if _strings(source) and source and isinstance(target, str):
        return {"from": source, "to": target}
    return None
