"""The Python way to define a graph; it produces the same :class:`GraphSpec` as a YAML file.

::

    g = GraphBuilder("triage", model="atdak-gpt-4-mini")
    g.input("question", str)
    g.state("category", str)
    g.llm("classify", "Classify: {{ inputs.question }}", output={"category": {"enum": ["a", "b"]}})
    g.router("route", [("state.category == 'a'", "answer_a")], otherwise="answer_b")
    g.chain("classify", "route")
    graph = g.build()

Every method returns the builder, so calls can be chained; :meth:`build` validates everything
at once. Adding a node name twice is an error on the spot.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ..exceptions import InvalidParameterError, UsageError
from ..providers.profiles import ModelRegistry
from .build import Graph, build_graph, tool_name
from .spec import (
    AgentNode,
    Edge,
    EndNode,
    FunctionNode,
    GraphSpec,
    HumanNode,
    InputSpec,
    Limits,
    LlmNode,
    MapNode,
    MemoryReadNode,
    MemoryWriteNode,
    NodeSpec,
    RetryPolicy,
    Route,
    StateKeySpec,
    SubgraphNode,
)

__all__ = ["GraphBuilder"]

_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "dict",
    Any: "any",
    None: "any",
}


def _type_name(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value in _TYPE_NAMES:
        return _TYPE_NAMES[value]
    raise InvalidParameterError("type", value, "str, int, float, bool, list, dict or a type name")


class GraphBuilder:
    """Builds a :class:`GraphSpec` node by node (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        model: str | None = None,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        version: int | str = 1,
    ) -> None:
        self._spec: dict[str, Any] = {
            "name": name,
            "version": version,
            "description": description,
            "model": model,
            "parameters": dict(parameters or {}),
            "inputs": {},
            "outputs": {},
            "state": {},
            "tools": {},
            "nodes": {},
            "edges": [],
        }

    # ------------------------------------------------------------------ declarations

    def input(
        self,
        name: str,
        type: Any = "string",
        *,
        default: Any = None,
        example: Any = None,
        description: str = "",
        required: bool | None = None,
    ) -> GraphBuilder:
        """Declare a run input (required unless it has a default)."""
        self._spec["inputs"][name] = InputSpec(
            type=_type_name(type),
            default=default,
            example=example,
            description=description,
            required=default is None if required is None else required,
        )
        return self

    def state(
        self,
        name: str,
        type: Any = "any",
        *,
        reducer: str | Callable[[Any, Any], Any] = "replace",
        default: Any = None,
        description: str = "",
    ) -> GraphBuilder:
        """Declare a state key with its reducer (``replace``, ``append``, ``extend``, ``merge``,
        ``add`` or a function ``(current, update) -> new``)."""
        self._spec["state"][name] = StateKeySpec(
            type=_type_name(type),
            reducer=reducer,
            default=default,
            description=description,
        )
        return self

    def output(self, name: str, expression: str) -> GraphBuilder:
        """A run output computed from state at the end (``"state.drafts[-1]"``)."""
        self._spec["outputs"][name] = expression
        return self

    def tool(self, function: Any, name: str | None = None) -> GraphBuilder:
        """Register a tool that agent nodes may use (a ``@tool`` or a plain function)."""
        self._spec["tools"][name or tool_name(function)] = function
        return self

    def limits(self, **limits: Any) -> GraphBuilder:
        """Run-wide limits: ``steps``, ``requests``, ``tokens``, ``cost``, ``wall_seconds``."""
        self._spec["limits"] = Limits(**limits)
        return self

    def entry(self, name: str) -> GraphBuilder:
        self._spec["entry"] = name
        return self

    # ------------------------------------------------------------------ nodes

    def node(self, name: str, node: NodeSpec) -> GraphBuilder:
        """Add a node given as a :class:`NodeSpec` (the other methods are shortcuts)."""
        if name in self._spec["nodes"]:
            raise UsageError(f"graph {self._spec['name']!r} already has a node named {name!r}")
        self._spec["nodes"][name] = node
        return self

    def llm(
        self,
        name: str,
        prompt: str,
        *,
        system: str | None = None,
        model: str | None = None,
        output: Mapping[str, Any] | type[BaseModel] | None = None,
        writes: str | None = None,
        history: str | Mapping[str, Any] | None = None,
        **common: Any,
    ) -> GraphBuilder:
        """One prompt → one model call; ``parameters=``, ``next=``, ``timeout=``, ``retry=``."""
        parameters = common.pop("parameters", {})
        config = LlmNode(
            prompt=prompt,
            system=system,
            model=model,
            parameters=parameters,
            output=output,
            writes=writes,
            history=history,
        )
        return self.node(name, NodeSpec(llm=config, **_common(common)))

    def agent(
        self,
        name: str,
        instructions: str,
        *,
        tools: Sequence[str | Any] = (),
        input: str | None = None,
        max_steps: int = 10,
        model: str | None = None,
        output: Mapping[str, Any] | type[BaseModel] | None = None,
        writes: str | None = None,
        tool_protocol: str = "auto",
        memory: bool = False,
        **common: Any,
    ) -> GraphBuilder:
        """The tool-using agent loop as a node; tools are names or tool objects."""
        names = []
        for tool in tools:
            if isinstance(tool, str):
                names.append(tool)
            else:
                self.tool(tool)
                names.append(tool_name(tool))
        config = AgentNode(
            instructions=instructions,
            tools=names,
            input=input,
            max_steps=max_steps,
            model=model,
            parameters=common.pop("parameters", {}),
            output=output,
            writes=writes,
            tool_protocol=tool_protocol,
            memory=memory,
            history=common.pop("history", None),
        )
        return self.node(name, NodeSpec(agent=config, **_common(common)))

    def function(
        self,
        name: str,
        function: Callable[..., Any] | str,
        *,
        writes: Iterable[str] = (),
        reads: Iterable[str] = (),
        threaded: bool = False,
        **common: Any,
    ) -> GraphBuilder:
        """A Python function on state returning a dict of updates to ``writes``."""
        config = FunctionNode(
            function=function, writes=list(writes), reads=list(reads), threaded=threaded
        )
        return self.node(name, NodeSpec(function=config, **_common(common)))

    def router(
        self,
        name: str,
        routes: Sequence[tuple[str, str] | Route | Mapping[str, Any]],
        *,
        otherwise: str,
        max_iterations: int | None = None,
    ) -> GraphBuilder:
        """Conditional edges: ``[(condition, target), ...]``, then ``otherwise``."""
        compiled = [_route(r) for r in routes]
        compiled.append(Route(otherwise=otherwise, max_iterations=max_iterations))
        return self.node(name, NodeSpec(router=compiled))

    def map(
        self,
        name: str,
        over: str,
        body: NodeSpec | Callable[..., Any] | Graph | GraphSpec,
        *,
        writes: str,
        item: str = "item",
        concurrency: int = 8,
        **common: Any,
    ) -> GraphBuilder:
        """Run ``body`` for each item of the list ``over`` evaluates to; results go to ``writes``.

        ``body`` is a node, a function ``(item) -> value``, or a graph taking input ``item``.
        """
        node, graph = _map_body(body, item)
        config = MapNode(
            over=over, node=node, graph=graph, item=item, concurrency=concurrency, writes=writes
        )
        return self.node(name, NodeSpec(map=config, **_common(common)))

    def subgraph(
        self,
        name: str,
        graph: Graph | GraphSpec | GraphBuilder,
        *,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        **common: Any,
    ) -> GraphBuilder:
        """Another graph as one node: ``inputs`` {its input: expression here}, ``outputs``
        {state key here: its output}."""
        config = SubgraphNode(
            graph=_as_spec(graph), inputs=dict(inputs or {}), outputs=dict(outputs or {})
        )
        return self.node(name, NodeSpec(subgraph=config, **_common(common)))

    def human(
        self,
        name: str,
        ask: str,
        *,
        writes: str,
        choices: Sequence[str] | None = None,
        **common: Any,
    ) -> GraphBuilder:
        """Pause the run with ``ask`` until an answer is given; the answer goes to ``writes``."""
        config = HumanNode(ask=ask, writes=writes, choices=list(choices) if choices else None)
        return self.node(name, NodeSpec(human=config, **_common(common)))

    def memory_read(
        self,
        name: str,
        *,
        writes: str,
        last: int | None = None,
        query: str | None = None,
        session: str | None = None,
        **common: Any,
    ) -> GraphBuilder:
        config = MemoryReadNode(writes=writes, last=last, query=query, session=session)
        return self.node(name, NodeSpec(memory_read=config, **_common(common)))

    def memory_write(
        self,
        name: str,
        messages: Sequence[Mapping[str, str]],
        *,
        session: str | None = None,
        **common: Any,
    ) -> GraphBuilder:
        config = MemoryWriteNode(messages=[dict(m) for m in messages], session=session)
        return self.node(name, NodeSpec(memory_write=config, **_common(common)))

    def end(self, name: str, *, status: Literal["done", "failed"] = "done") -> GraphBuilder:
        """A named end (the name ``end`` always exists and needs no declaration); with
        ``status="failed"`` a run that reaches it ends as failed."""
        return self.node(name, NodeSpec(end=EndNode(status=status)))

    # ------------------------------------------------------------------ edges

    def edge(self, source: str | Sequence[str], target: str) -> GraphBuilder:
        """``source -> target``; a list of sources is a join (``target`` waits for all)."""
        sources = [source] if isinstance(source, str) else list(source)
        self._spec["edges"].append(Edge(source=sources, target=target))
        return self

    def chain(self, *names: str) -> GraphBuilder:
        """Edges ``a -> b -> c ...``."""
        for source, target in itertools.pairwise(names):
            self.edge(source, target)
        return self

    # ------------------------------------------------------------------ result

    def spec(self) -> GraphSpec:
        """The graph as data (what a YAML file would hold)."""
        return GraphSpec.model_validate(self._spec)

    def build(
        self, *, base_dir: str | Path | None = None, registry: ModelRegistry | None = None
    ) -> Graph:
        """Validate (every problem at once) and compile."""
        return build_graph(self.spec(), base_dir=base_dir, registry=registry)


def _common(options: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {"next", "timeout", "retry", "description"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidParameterError(unknown[0], options[unknown[0]], f"one of {sorted(allowed)}")
    common = dict(options)
    if isinstance(common.get("retry"), int):
        common["retry"] = RetryPolicy(attempts=common["retry"])
    return common


def _route(route: tuple[str, str] | Route | Mapping[str, Any]) -> Route:
    if isinstance(route, Route):
        return route
    if isinstance(route, tuple):
        when, to = route
        return Route(when=when, to=to)
    return Route.model_validate(route)


def _as_spec(graph: Graph | GraphSpec | GraphBuilder) -> GraphSpec:
    if isinstance(graph, GraphSpec):
        return graph
    if isinstance(graph, GraphBuilder):
        return graph.spec()
    return graph.spec


def _map_body(
    body: NodeSpec | Callable[..., Any] | Graph | GraphSpec, item: str
) -> tuple[NodeSpec | None, GraphSpec | None]:
    if isinstance(body, NodeSpec):
        return body, None
    if isinstance(body, Graph | GraphSpec):
        return None, _as_spec(body)
    caller = _ItemCaller(body, item)
    return NodeSpec(function=FunctionNode(function=caller, writes=["result"])), None


class _ItemCaller:
    """Calls ``function(item)`` for a map over a plain function."""

    def __init__(self, function: Callable[..., Any], item: str) -> None:
        self.function = function
        self.item = item
        self.__qualname__ = getattr(function, "__qualname__", "item")
        self.__module__ = getattr(function, "__module__", __name__)

    def __call__(self, state: Any, context: Any) -> Any:
        value = self.function(context.names[self.item])
        if inspect.isawaitable(value):
            return self._awaited(value)
        return {"result": value}

    @staticmethod
    async def _awaited(value: Awaitable[Any]) -> dict[str, Any]:
        return {"result": await value}
