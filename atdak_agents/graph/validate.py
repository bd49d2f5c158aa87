"""Static validation of a graph spec: every problem, at once, each with where it is.

Checked before anything runs: node names; references (edges, ``next``, routes, entry) to nodes
that do not exist; unreachable nodes; nodes with no path to an end; cycles with neither an exit
condition nor an iteration cap; routers without ``otherwise``; writes to undeclared state keys;
parallel branches writing one key with no reducer to merge them; template variables and
expressions reading names nothing provides; state keys read but never written; tools that are not
registered; function import paths that do not resolve. Subgraphs and map bodies are checked too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel

from ..exceptions import Problem, TemplateError
from ..output import output_problems
from .compile import END, resolve_import
from .spec import GraphSpec, NodeSpec
from .state import BUILTIN_REDUCERS

__all__ = ["node_writes", "validate_spec"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_RESERVED = frozenset({END, "__start__"})


def validate_spec(
    spec: GraphSpec, *, tool_names: set[str], base_dir: Path | None = None, prefix: str = ""
) -> list[Problem]:
    """All problems of ``spec``; locations are dotted paths (``nodes.route.router[1].to``)."""
    problems = [*_names(spec, prefix), *_references(spec, prefix)]
    if not problems:
        problems += _structure(spec, prefix)
    problems += _routers(spec, prefix)
    problems += _writes(spec, prefix)
    problems += _variables(spec, prefix, base_dir)
    problems += _model_node_settings(spec, prefix)
    problems += _tools(spec, tool_names, prefix)
    problems += _functions(spec, base_dir, prefix)
    problems += _nested(spec, tool_names, base_dir, prefix)
    return problems


def _close(name: str, known: Any) -> str | None:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {match[0]!r}?" if match else None


# --------------------------------------------------------------------------- names, references


def _names(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    if not spec.nodes:
        yield Problem(f"{prefix}nodes", "the graph has no nodes", "add at least one node")
    for name in spec.nodes:
        if name in _RESERVED:
            yield Problem(f"{prefix}nodes.{name}", f"{name!r} is a reserved name", "rename it")
        elif not _NAME.match(name):
            yield Problem(
                f"{prefix}nodes.{name}",
                f"node name {name!r} is not valid",
                "use letters, digits, '_' and '-', starting with a letter",
            )


def _targets(spec: GraphSpec) -> Iterator[tuple[str, str]]:
    """(location, node name) of every reference to a node."""
    if spec.entry is not None:
        yield "entry", spec.entry
    for index, edge in enumerate(spec.edges):
        for source in edge.source:
            yield f"edges[{index}].from", source
        yield f"edges[{index}].to", edge.target
    for name, node in spec.nodes.items():
        nexts = [node.next] if isinstance(node.next, str) else node.next or []
        for target in nexts:
            yield f"nodes.{name}.next", target
        for index, route in enumerate(node.router or []):
            yield f"nodes.{name}.router[{index}]", route.target
            if route.max_iterations is not None and route.exhausted != END:
                yield f"nodes.{name}.router[{index}].exhausted", route.exhausted


def _references(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    known = set(spec.nodes) | {END}
    for location, target in _targets(spec):
        if target not in known:
            yield Problem(f"{prefix}{location}", f"unknown node {target!r}", _close(target, known))
        elif location.endswith(".from") and target == END:
            yield Problem(f"{prefix}{location}", "`end` has no outgoing edges")
        elif location == "entry" and (target == END or spec.nodes[target].end is not None):
            yield Problem(f"{prefix}entry", "the graph cannot start at an end")


# --------------------------------------------------------------------------- structure


def to_networkx(spec: GraphSpec) -> nx.DiGraph:
    """The graph as networkx sees it: every possible transition is an edge."""
    graph = nx.DiGraph()
    graph.add_nodes_from([*spec.nodes, END])
    for location, target in _targets(spec):
        if location == "entry" or location.endswith((".to", ".next")):
            continue
        if ".router[" in location:
            source = location.split(".")[1]
            graph.add_edge(source, target, kind="route")
    for name, node in spec.nodes.items():
        nexts = [node.next] if isinstance(node.next, str) else node.next or []
        for target in nexts:
            graph.add_edge(name, target, kind="static")
    for edge in spec.edges:
        for source in edge.source:
            graph.add_edge(source, edge.target, kind="static")
    return graph


def _structure(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    graph = to_networkx(spec)
    entry = spec.entry_node
    reachable = nx.descendants(graph, entry) | {entry}
    for name in spec.nodes:
        if name not in reachable:
            yield Problem(
                f"{prefix}nodes.{name}",
                f"is unreachable from the entry node {entry!r}",
                "connect it with an edge, or remove it",
            )
    ends = {END} | {n for n, node in spec.nodes.items() if node.end is not None}
    for name in spec.nodes:
        if name in reachable and name not in ends and graph.out_degree(name) == 0:
            yield Problem(
                f"{prefix}nodes.{name}",
                "is a dead end: no edge leaves it, so the run has no path to an end",
                f"add an edge `{name} -> end` (or to the node that should follow it)",
            )
    yield from _cycles(spec, graph, prefix)


def _cycles(spec: GraphSpec, graph: nx.DiGraph, prefix: str) -> Iterator[Problem]:
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (only,) = component
            if not graph.has_edge(only, only):
                continue
        if _has_exit(spec, component):
            continue
        members = sorted(component)
        yield Problem(
            f"{prefix}nodes.{members[0]}",
            f"nodes {' → '.join(members)} form a cycle with no exit condition or iteration cap",
            "route out of the cycle from a router (`when: ... to: <outside>`), "
            "or give the looping route `max_iterations`",
        )


def _has_exit(spec: GraphSpec, component: set[str]) -> bool:
    for name in component:
        for route in spec.nodes[name].router or []:
            if route.max_iterations is not None:
                return True
            if route.target not in component:
                return True
    return False


def _routers(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    for name, node in spec.nodes.items():
        routes = node.router
        if routes is None:
            continue
        location = f"{prefix}nodes.{name}.router"
        if not routes:
            yield Problem(location, "a router needs at least one route")
        elif not any(r.otherwise is not None for r in routes):
            yield Problem(
                location,
                "has no `otherwise` route: when no condition matches the run cannot go on",
                "add `- otherwise: <node>` as the last route",
            )
        elif routes[-1].otherwise is None:
            yield Problem(location, "`otherwise` must be the last route")
        if node.next is not None:
            yield Problem(f"{prefix}nodes.{name}.next", "a router routes by its routes, not `next`")


# --------------------------------------------------------------------------- state


def node_writes(node: NodeSpec) -> list[str]:
    """The state keys a node writes."""
    config = node.config
    if node.kind in ("llm", "agent"):
        if config.writes is not None:
            return [config.writes]
        return _output_fields(config.output)
    if node.kind == "function":
        return list(config.writes)
    if node.kind == "subgraph":
        return list(config.outputs)
    if node.kind in ("map", "human", "memory_read"):
        return [config.writes]
    return []


def _output_fields(output: Any) -> list[str]:
    if output is None:
        return []
    if isinstance(output, type) and issubclass(output, BaseModel):
        return list(output.model_fields)
    return list(output)


def _writes(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    declared = spec.state
    for name, node in spec.nodes.items():
        if node.kind in ("llm", "agent") and not node_writes(node):
            yield Problem(
                f"{prefix}nodes.{name}.{node.kind}",
                "writes its answer nowhere",
                "give `writes: <state key>` (or an `output` schema whose fields are state keys)",
            )
        for key in node_writes(node):
            if key not in declared:
                yield Problem(
                    f"{prefix}nodes.{name}.{node.kind}",
                    f"writes state key {key!r}, which is not declared under `state:`",
                    _close(key, declared) or "declare it with a type and reducer",
                )
    yield from _parallel_conflicts(spec, prefix)


def _parallel_conflicts(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    graph = to_networkx(spec)
    reported: set[tuple[str, str, str]] = set()
    for fan_out in spec.nodes:
        branches = [t for _, t, k in graph.out_edges(fan_out, data="kind") if k == "static"]
        if len(branches) < 2:
            continue
        reach = {b: nx.descendants(graph, b) | {b} for b in branches}
        for i, left in enumerate(branches):
            for right in branches[i + 1 :]:
                only_left = reach[left] - reach[right]
                only_right = reach[right] - reach[left]
                yield from _conflicts(spec, only_left, only_right, reported, prefix)


def _conflicts(
    spec: GraphSpec,
    left: set[str],
    right: set[str],
    reported: set[tuple[str, str, str]],
    prefix: str,
) -> Iterator[Problem]:
    for a in sorted(left & set(spec.nodes)):
        for b in sorted(right & set(spec.nodes)):
            for key in set(node_writes(spec.nodes[a])) & set(node_writes(spec.nodes[b])):
                state_key = spec.state.get(key)
                if state_key is None or state_key.reducer != "replace":
                    continue
                pair = (min(a, b), max(a, b), key)
                if pair in reported:
                    continue
                reported.add(pair)
                yield Problem(
                    f"{prefix}state.{key}",
                    f"parallel nodes {pair[0]!r} and {pair[1]!r} both write {key!r}, "
                    "which has no reducer to merge them",
                    "give the key a reducer (append, merge, add, ...) or write different keys",
                )


# --------------------------------------------------------------------------- variables


def _available(spec: GraphSpec, local: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"inputs": list(spec.inputs), "state": list(spec.state), **(local or {})}


def _texts(name: str, node: NodeSpec, base_dir: Path | None) -> Iterator[tuple[str, str, bool]]:
    """(location, source, is_expression) of every template and expression in a node."""
    where = f"nodes.{name}.{node.kind}"
    config = node.config
    if node.kind == "router":
        for index, route in enumerate(config):
            if route.when is not None:
                yield f"nodes.{name}.router[{index}].when", route.when, True
        return
    yield from _template_fields(where, config, _TEMPLATE_FIELDS.get(node.kind, ()))
    for field in _EXPRESSION_FIELDS.get(node.kind, ()):
        yield f"{where}.{field}", getattr(config, field), True
    for field in ("prompt_file", "instructions_file"):
        file = getattr(config, field, None)
        if file:
            yield from _file_template(f"{where}.{field}", file, base_dir)
    if node.kind == "subgraph":
        for key, source in config.inputs.items():
            yield f"{where}.inputs.{key}", source, True
    for index, message in enumerate(getattr(config, "messages", None) or []):
        for field, source in message.items():
            yield f"{where}.messages[{index}].{field}", source, False


_TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "llm": ("prompt", "system"),
    "agent": ("instructions", "input"),
    "human": ("ask",),
    "memory_read": ("session", "query"),
    "memory_write": ("session",),
}
_EXPRESSION_FIELDS: dict[str, tuple[str, ...]] = {"map": ("over",)}


def _template_fields(
    where: str, config: Any, fields: tuple[str, ...]
) -> Iterator[tuple[str, str, bool]]:
    for field in fields:
        source = getattr(config, field, None)
        if source:
            yield f"{where}.{field}", source, False


def _file_template(
    location: str, file: str, base_dir: Path | None
) -> Iterator[tuple[str, str, bool]]:
    path = (base_dir or Path.cwd()) / file
    try:
        yield location, path.read_text(encoding="utf-8"), False
    except OSError as exc:
        yield location, f"{{% error {exc.strerror} %}}", False


def _variables(spec: GraphSpec, prefix: str, base_dir: Path | None) -> Iterator[Problem]:
    available = _available(spec)
    written = {key for node in spec.nodes.values() for key in node_writes(node)}
    texts = [t for name, node in spec.nodes.items() for t in _texts(name, node, base_dir)]
    texts += [(f"outputs.{k}", v, True) for k, v in spec.outputs.items()]
    for location, source, is_expression in texts:
        problems, reads = check_text(source, location, available, is_expression)
        yield from (_prefixed(p, prefix) for p in problems)
        for key in reads:
            default = spec.state[key].default if key in spec.state else None
            if key in spec.state and key not in written and default is None:
                yield Problem(
                    f"{prefix}{location}",
                    f"reads state key {key!r}, which no node writes and which has no default",
                    "write it from a node or give it a default",
                )


def check_text(
    source: str, location: str, available: Mapping[str, Any], is_expression: bool
) -> tuple[list[Problem], set[str]]:
    """Problems of one template or expression, and the state keys it reads."""
    from ..templates import PromptTemplate

    text = "{{ " + source + " }}" if is_expression else source
    multiline = "\n" in text.strip()
    try:
        template = PromptTemplate(text, name=location)
    except TemplateError as exc:
        return [Problem(location, str(exc), line=exc.line if multiline else None)], set()
    problems = [
        Problem(location, p.message, p.hint, line=p.line if multiline else None)
        for p in template.check(available)
    ]
    reads = {
        str(v.segments[1])
        for v in template.variables()
        if v.name == "state" and len(v.segments) > 1
    }
    return problems, reads


def _prefixed(problem: Problem, prefix: str) -> Problem:
    if not prefix:
        return problem
    return Problem(prefix + problem.location, problem.message, problem.hint, line=problem.line)


# --------------------------------------------------------------------------- llm / agent settings


def _model_node_settings(spec: GraphSpec, prefix: str) -> Iterator[Problem]:
    for name, node in spec.nodes.items():
        config = node.llm or node.agent
        if config is None:
            continue
        where = f"{prefix}nodes.{name}.{node.kind}"
        if config.history is not None and config.history not in spec.state:
            yield Problem(
                f"{where}.history",
                f"history names state key {config.history!r}, which is not declared",
                _close(config.history, spec.state) or "declare it as a list of messages",
            )
        if config.context:
            yield from _context_problems(f"{where}.context", config.context)
        if isinstance(config.output, Mapping):
            yield from output_problems(f"{where}.output", config.output)


def _context_problems(where: str, context: Any) -> Iterator[Problem]:
    from ..calls import CURRENT_MODEL
    from ..context.strategies import strategies_from_config
    from ..exceptions import InvalidParameterError

    try:
        strategies_from_config(context, chat_model=CURRENT_MODEL)
    except (InvalidParameterError, TypeError, ValueError) as exc:
        yield Problem(where, str(exc))


# --------------------------------------------------------------------------- tools, functions


def _tools(spec: GraphSpec, tool_names: set[str], prefix: str) -> Iterator[Problem]:
    for name, node in spec.nodes.items():
        if node.agent is None:
            continue
        for index, tool in enumerate(node.agent.tools):
            if tool not in tool_names:
                available = ", ".join(sorted(tool_names)) or "none registered"
                yield Problem(
                    f"{prefix}nodes.{name}.agent.tools[{index}]",
                    f"tool {tool!r} is not registered (available: {available})",
                    _close(tool, tool_names) or "list it under `tools:` with its import path",
                )


def _functions(spec: GraphSpec, base_dir: Path | None, prefix: str) -> Iterator[Problem]:
    for name, node in spec.nodes.items():
        function = node.function.function if node.function is not None else None
        if isinstance(function, str):
            try:
                resolve_import(function, base_dir)
            except ValueError as exc:
                yield Problem(f"{prefix}nodes.{name}.function.function", str(exc))
    for key, state in spec.state.items():
        reducer = state.reducer
        if not isinstance(reducer, str) or reducer in BUILTIN_REDUCERS:
            continue
        where = f"{prefix}state.{key}.reducer"
        if ":" not in reducer:
            names = ", ".join(BUILTIN_REDUCERS)
            message = (
                f"unknown reducer {reducer!r}: use {names}, or an import path 'module:function'"
            )
            yield Problem(where, message, _close(reducer, BUILTIN_REDUCERS))
            continue
        try:
            resolve_import(reducer, base_dir)
        except ValueError as exc:
            yield Problem(where, str(exc))


# --------------------------------------------------------------------------- nesting


def _nested(
    spec: GraphSpec, tool_names: set[str], base_dir: Path | None, prefix: str
) -> Iterator[Problem]:
    for name, node in spec.nodes.items():
        if node.map is not None and node.map.node is not None:
            yield from _map_body(spec, name, node.map.node, node.map.item, base_dir, prefix)
        child = _child_spec(node)
        if child is not None:
            where = f"{prefix}nodes.{name}.{node.kind}.graph."
            names = tool_names | set(child.tools)
            yield from validate_spec(child, tool_names=names, base_dir=base_dir, prefix=where)
            if node.subgraph is not None:
                yield from _subgraph_io(name, node, child, prefix)


def _child_spec(node: NodeSpec) -> GraphSpec | None:
    graph = node.subgraph.graph if node.subgraph is not None else None
    if node.map is not None:
        graph = node.map.graph
    return graph if isinstance(graph, GraphSpec) else None


def _map_body(
    spec: GraphSpec, name: str, body: NodeSpec, item: str, base_dir: Path | None, prefix: str
) -> Iterator[Problem]:
    where = f"{prefix}nodes.{name}.map.node"
    if body.kind in ("router", "human", "end", "map"):
        yield Problem(where, f"a map cannot run a {body.kind} node per item")
        return
    if body.kind in ("llm", "agent") and body.config.model is None and spec.model is None:
        yield Problem(f"{where}.{body.kind}", "has no model", "set `model:` on the graph or here")
    if body.kind in ("llm", "agent") and not node_writes(body):
        yield Problem(
            f"{where}.{body.kind}",
            "writes its answer nowhere",
            "give it `writes: <name>`: each item's result is that value",
        )
    available = _available(spec, {item: None, "index": None})
    for location, source, is_expression in _texts(f"{name}.map.node", body, base_dir):
        problems, _ = check_text(source, location, available, is_expression)
        yield from (_prefixed(p, prefix) for p in problems)


def _subgraph_io(name: str, node: NodeSpec, child: GraphSpec, prefix: str) -> Iterator[Problem]:
    assert node.subgraph is not None
    where = f"{prefix}nodes.{name}.subgraph"
    for key in node.subgraph.inputs:
        if key not in child.inputs:
            hint = _close(key, child.inputs)
            yield Problem(f"{where}.inputs.{key}", f"subgraph has no input {key!r}", hint)
    for key, spec in child.inputs.items():
        if spec.required and spec.default is None and key not in node.subgraph.inputs:
            yield Problem(f"{where}.inputs", f"subgraph input {key!r} is required but not given")
    names = child.outputs or child.state
    for key, output in node.subgraph.outputs.items():
        if output not in names:
            yield Problem(
                f"{where}.outputs.{key}",
                f"subgraph has no output {output!r}",
                _close(output, names),
            )
