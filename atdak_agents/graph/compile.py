"""Compiling a validated spec: node runners, routes, ends, and the successor table.

Everything the engine needs per step is precomputed here, once per graph: ``successors[node]`` is
a list of ``(target, join)`` pairs in edge order (``join`` indexes ``joins`` when the edge is one
source of a join), routers become lists of :class:`CompiledRoute`, ends a set of names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import UsageError
from .expressions import Expression
from .nodes import FunctionRunner, HumanRunner, MapRunner, NodeRunner, PolicyRunner, SubgraphRunner
from .spec import FunctionNode, GraphSpec, HumanNode, MapNode, NodeSpec, Route, SubgraphNode

if TYPE_CHECKING:
    from .build import Graph

__all__ = [
    "END",
    "NODE_COMPILERS",
    "CompiledGraph",
    "CompiledRoute",
    "compile_nodes",
    "resolve_import",
    "template_renderer",
]

END = "end"

NodeCompiler = Callable[[str, Any, "Graph"], NodeRunner]


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A router branch ready to evaluate."""

    when: Expression | None
    target: str
    max_iterations: int | None
    exhausted: str

    @property
    def is_otherwise(self) -> bool:
        return self.when is None


@dataclass
class CompiledGraph:
    runners: dict[str, NodeRunner] = field(default_factory=dict)
    routers: dict[str, list[CompiledRoute]] = field(default_factory=dict)
    ends: frozenset[str] = frozenset({END})
    end_status: dict[str, str] = field(default_factory=dict)
    successors: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict)
    joins: list[frozenset[str]] = field(default_factory=list)


def resolve_import(reference: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """``"package.module:function"`` → the function (the workflow's folder is searched first)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"import path {reference!r} must look like 'package.module:function'")
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the module itself is broken (SyntaxError, an error at import)
        raise ValueError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not callable(value):
        raise ValueError(f"{reference!r} is not callable")
    return value  # type: ignore[no-any-return]


def compile_nodes(graph: Graph) -> CompiledGraph:
    """Runners, routes, ends and successors of ``graph.spec`` (already validated)."""
    spec = graph.spec
    out = CompiledGraph()
    ends = {END}
    for name, node in spec.nodes.items():
        if node.router is not None:
            out.routers[name] = [_route(r) for r in node.router]
        elif node.end is not None:
            ends.add(name)
            out.end_status[name] = node.end.status
        else:
            out.runners[name] = compile_node(name, node, graph)
    out.ends = frozenset(ends)
    _link(spec, out)
    return out


def compile_node(name: str, node: NodeSpec, graph: Graph) -> NodeRunner:
    """One node's runner, wrapped in its timeout/retry policy when it has one."""
    compiler = NODE_COMPILERS.get(node.kind)
    if compiler is None:
        raise UsageError(f"node {name!r}: kind {node.kind!r} cannot run yet")
    runner = compiler(name, node.config, graph)
    if node.timeout is None and node.retry is None:
        return runner
    return PolicyRunner(runner, timeout=node.timeout, retry=node.retry)


def _route(route: Route) -> CompiledRoute:
    when = Expression(route.when) if route.when is not None else None
    return CompiledRoute(when, route.target, route.max_iterations, route.exhausted)


def _link(spec: GraphSpec, out: CompiledGraph) -> None:
    successors: dict[str, list[tuple[str, int | None]]] = {name: [] for name in spec.nodes}
    for name, node in spec.nodes.items():
        for target in _as_list(node.next):
            successors[name].append((target, None))
    for edge in spec.edges:
        join: int | None = None
        if len(edge.source) > 1:
            join = len(out.joins)
            out.joins.append(frozenset(edge.source))
        for source in edge.source:
            successors[source].append((edge.target, join))
    out.successors = successors


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# --------------------------------------------------------------------------- node compilers


def template_renderer(source: str, name: str, graph: Graph) -> Callable[[Any], str]:
    """A function rendering ``source`` (jinja2, sandboxed) with the names it is given."""
    from ..templates import PromptTemplate

    search = (str(graph.base_dir),) if graph.base_dir is not None else ()
    template = PromptTemplate(source, name=name, search_path=search)
    return template.render


def _function(name: str, config: FunctionNode, graph: Graph) -> NodeRunner:
    function = config.function
    if isinstance(function, str):
        function = resolve_import(function, graph.base_dir)
    return FunctionRunner(name, function, writes=config.writes, threaded=config.threaded)


def _human(name: str, config: HumanNode, graph: Graph) -> NodeRunner:
    ask = template_renderer(config.ask, f"{graph.name}.nodes.{name}.human.ask", graph)
    return HumanRunner(ask, config.writes, config.choices)


def _map(name: str, config: MapNode, graph: Graph) -> NodeRunner:
    if config.node is not None:
        body = compile_node(name, config.node, graph)
        body_name = config.node.kind
        result_key = _single_write(config.node)
    else:
        item_input = {config.item: config.item}
        subgraph = SubgraphNode(graph=config.graph, inputs=item_input)
        body = _subgraph(name, subgraph, graph, whole_output="output")
        body_name = config.graph.name if isinstance(config.graph, GraphSpec) else name
        result_key = "output"
    return MapRunner(
        Expression(config.over),
        body,
        body_name,
        item_name=config.item,
        concurrency=config.concurrency,
        writes=config.writes,
        result_key=result_key,
    )


def _single_write(node: NodeSpec) -> str | None:
    config = node.config
    writes = getattr(config, "writes", None)
    if isinstance(writes, str):
        return writes
    if isinstance(writes, list) and len(writes) == 1:
        return str(writes[0])
    return None


def _subgraph(
    name: str, config: SubgraphNode, graph: Graph, *, whole_output: str | None = None
) -> NodeRunner:
    from .build import build_graph

    child_spec = config.graph
    if isinstance(child_spec, str):
        raise UsageError(
            f"node {name!r}: subgraph {child_spec!r} is a file reference; load the workflow with "
            "atdak_agents.load_workflow so references are resolved"
        )
    child = build_graph(
        child_spec, tools=graph.tools, base_dir=graph.base_dir, registry=graph.registry
    )
    inputs = [(key, Expression(source)) for key, source in config.inputs.items()]
    return SubgraphRunner(child, inputs, config.outputs, whole_output=whole_output)


def _llm(name: str, config: Any, graph: Graph) -> NodeRunner:
    from .llm_node import LlmRunner

    return LlmRunner(name, config, graph)


def _agent(name: str, config: Any, graph: Graph) -> NodeRunner:
    from .agent_node import AgentRunner

    return AgentRunner(name, config, graph)


def _memory_read(name: str, config: Any, graph: Graph) -> NodeRunner:
    from .memory_nodes import MemoryReadRunner

    return MemoryReadRunner(name, config, graph)


def _memory_write(name: str, config: Any, graph: Graph) -> NodeRunner:
    from .memory_nodes import MemoryWriteRunner

    return MemoryWriteRunner(name, config, graph)


NODE_COMPILERS: dict[str, NodeCompiler] = {
    "llm": _llm,
    "agent": _agent,
    "function": _function,
    "human": _human,
    "map": _map,
    "subgraph": _subgraph,
    "memory_read": _memory_read,
    "memory_write": _memory_write,
}
