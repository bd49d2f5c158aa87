"""Pictures of a graph: Mermaid and Graphviz DOT text, drawn offline from the spec.

Only real transitions are drawn: static edges as solid arrows, router branches as dashed arrows
labelled with their condition, joins as one arrow per source into the join target.
"""

from __future__ import annotations

from .spec import GraphSpec

__all__ = ["to_dot", "to_mermaid"]

_MERMAID_SHAPES = {
    "router": ("{", "}"),
    "human": ("[/", "/]"),
    "end": ("([", "])"),
    "map": ("[[", "]]"),
    "subgraph": ("[[", "]]"),
}
_DOT_SHAPES = {"router": "diamond", "human": "parallelogram", "end": "doublecircle"}


def _edges(spec: GraphSpec) -> list[tuple[str, str, str | None, bool]]:
    """(source, target, label, is_route) for every transition."""
    out: list[tuple[str, str, str | None, bool]] = []
    for name, node in spec.nodes.items():
        nexts = [node.next] if isinstance(node.next, str) else node.next or []
        out.extend((name, target, None, False) for target in nexts)
        for route in node.router or []:
            condition = route.when if route.when is not None else "otherwise"
            if route.max_iterations is not None:
                condition += f" (≤{route.max_iterations})"
            out.append((name, route.target, condition, True))
    for edge in spec.edges:
        label = "all of " + ", ".join(edge.source) if len(edge.source) > 1 else None
        out.extend((source, edge.target, label, False) for source in edge.source)
    return out


def _mermaid_id(name: str) -> str:
    return name.replace("-", "_")


def _quote(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(spec: GraphSpec) -> str:
    """A Mermaid flowchart (renders on GitHub and in most Markdown viewers)."""
    lines = ["flowchart TD", f"    __start__((start)) --> {_mermaid_id(spec.entry_node)}"]
    for name, node in spec.nodes.items():
        left, right = _MERMAID_SHAPES.get(node.kind, ("[", "]"))
        title = _quote(f"{name} ({node.kind})")
        lines.append(f'    {_mermaid_id(name)}{left}"{title}"{right}')
    lines.append("    end_node([end])")
    for source, target, label, is_route in _edges(spec):
        target_id = "end_node" if target == "end" else _mermaid_id(target)
        arrow = "-.->" if is_route else "-->"
        text = f'|"{_quote(label)}"|' if label else ""
        lines.append(f"    {_mermaid_id(source)} {arrow}{text} {target_id}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(spec: GraphSpec) -> str:
    """A Graphviz DOT digraph (``dot -Tsvg`` draws it)."""
    lines = [f"digraph {_dot_quote(spec.name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    lines.append('  "__start__" [shape=circle, label="start"];')
    lines.append(f'  "__start__" -> {_dot_quote(spec.entry_node)};')
    for name, node in spec.nodes.items():
        shape = _DOT_SHAPES.get(node.kind, "box")
        lines.append(
            f"  {_dot_quote(name)} [shape={shape}, label={_dot_quote(f'{name} ({node.kind})')}];"
        )
    lines.append('  "end" [shape=doublecircle];')
    for source, target, label, is_route in _edges(spec):
        attrs = []
        if is_route:
            attrs.append("style=dashed")
        if label:
            attrs.append(f"label={_dot_quote(label)}")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_quote(source)} -> {_dot_quote(target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
