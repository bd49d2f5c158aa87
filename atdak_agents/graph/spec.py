"""A graph as data: what YAML workflows and the Python builder both produce.

These pydantic models *are* the workflow format: the YAML loader validates a file into a
:class:`GraphSpec`, ``atdak-agents schema`` prints their JSON Schema, and the format's reference
page is generated from them. Nothing here runs anything; :mod:`atdak_agents.graph.build` validates a
spec into a runnable :class:`~atdak_agents.graph.build.Graph`.

A node is a mapping with exactly one *kind* key holding its settings, plus settings every node
has (``timeout``, ``retry``, ``next``, ``description``)::

    classify:
      llm: {prompt: "Classify: {{ inputs.question }}", output: {category: {enum: [a, b]}}}
      next: route
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "NODE_KINDS",
    "AgentNode",
    "Edge",
    "EndNode",
    "FunctionNode",
    "GraphSpec",
    "HumanNode",
    "InputSpec",
    "Limits",
    "LlmNode",
    "MapNode",
    "MemoryReadNode",
    "MemoryWriteNode",
    "ModelSpec",
    "NodeSpec",
    "ProviderSpec",
    "RetryPolicy",
    "Route",
    "StateKeySpec",
    "StoreSpec",
    "SubgraphNode",
    "ValueType",
]

ValueType: TypeAlias = Literal["string", "integer", "number", "boolean", "list", "dict", "any"]

# A Python callable in the builder, a "package.module:function" import path in YAML.
CallableRef: TypeAlias = Annotated[
    str | Callable[..., Any],
    WithJsonSchema({"type": "string", "pattern": r"^[\w.]+:[\w.]+$"}),
]
# A pydantic model class in the builder, a field mapping in YAML (see ``LlmNode.output``).
OutputSchema: TypeAlias = Annotated[
    dict[str, Any] | type[BaseModel] | None,
    WithJsonSchema(
        {
            "type": "object",
            "description": "field name -> {type, enum, description, items, required}",
            "additionalProperties": {"type": "object"},
        }
    ),
]


# How a request is fitted into the model's window: a strategy name, {strategy: ..., options},
# or a list of those (see atdak_agents.context.strategies).
ContextSpec: TypeAlias = str | dict[str, Any] | list[str | dict[str, Any]] | None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


# --------------------------------------------------------------------------- declarations


class InputSpec(_Spec):
    """A run input: ``question: {type: string, example: "..."}``."""

    type: ValueType = "string"
    description: str = ""
    default: Any = None
    required: bool = True
    example: Any = None


class StateKeySpec(_Spec):
    """A state key with its reducer: how a node's update combines with the current value.

    ``replace`` (default), ``append`` (add one item to a list), ``extend`` (add items of a list),
    ``merge`` (update a dict), ``add`` (numbers, strings or lists), or a custom function
    ``(current, update) -> new`` given as a callable or an import path.
    """

    type: ValueType = "any"
    reducer: Literal["replace", "append", "extend", "merge", "add"] | CallableRef = "replace"
    default: Any = None
    description: str = ""


class ModelSpec(_Spec):
    """A model profile declared by a workflow (for models beyond the built-in four)."""

    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    native_tools: bool = False
    input_price_per_1k: float | None = None
    output_price_per_1k: float | None = None
    tokenizer: str = "estimate"


class StoreSpec(_Spec):
    """Where memory or checkpoints live: ``{store: sqlite, path: .atdak/agents.db}``."""

    store: Literal["memory", "sqlite"] = "sqlite"
    path: str = ".atdak/agents.db"
    session: str | None = None


class ProviderSpec(_Spec):
    """Where model calls go: ``{base_url: "${ATDAK_BASE_URL}", api_key: "${SHOP_ATDAK_KEY}"}``.

    Unset fields fall back to the client's defaults (``ATDAK_API_KEY``, ``ATDAK_BASE_URL``).
    """

    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    headers: dict[str, str] = Field(default_factory=dict)


class Limits(_Spec):
    """Run-wide limits; reaching one stops the run cleanly and resumably."""

    steps: int | None = Field(default=None, gt=0)
    requests: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    cost: float | None = Field(default=None, gt=0)
    wall_seconds: float | None = Field(default=None, gt=0)


class RetryPolicy(_Spec):
    """Retry a failed node: ``attempts`` in all, waiting ``backoff`` × 2^n seconds between."""

    attempts: int = Field(default=3, ge=1)
    backoff: float = Field(default=0.5, ge=0)
    max_backoff: float = Field(default=30.0, ge=0)


# --------------------------------------------------------------------------- node kinds


class LlmNode(_Spec):
    """One prompt template → one model call; text or structured output into state.

    ``prompt`` renders to a user message (or to several messages with chat blocks); ``system``
    adds a system message; ``history`` names a state key holding earlier messages (``{role,
    content}``) sent before the prompt; ``context`` chooses how the request is fitted into the
    model's window (``drop_oldest``, ``{strategy: summarize, ...}``, a list). With ``output`` (a
    field mapping or a pydantic model) the answer is parsed and each field written to the state
    key of the same name, unless ``writes`` names one key for the whole result.
    """

    prompt: str | None = None
    prompt_file: str | None = None
    system: str | None = None
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    output: OutputSchema = None
    writes: str | None = None
    history: str | None = None
    context: ContextSpec = None

    @model_validator(mode="after")
    def _one_prompt(self) -> LlmNode:
        if (self.prompt is None) == (self.prompt_file is None):
            raise ValueError("give exactly one of `prompt` or `prompt_file`")
        return self


class AgentNode(_Spec):
    """The tool-using agent loop: instructions, tools by name, a step cap."""

    instructions: str | None = None
    instructions_file: str | None = None
    input: str | None = None
    tools: list[str] = Field(default_factory=list)
    max_steps: int = Field(default=10, gt=0)
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    tool_protocol: Literal["auto", "prompt", "native"] = "auto"
    output: OutputSchema = None
    writes: str | None = None
    history: str | None = None
    context: ContextSpec = None
    memory: bool = False


class FunctionNode(_Spec):
    """A Python callable on state: receives the state (and ``inputs``/``item`` if it asks) and
    returns a dict of updates for the keys listed in ``writes``."""

    function: CallableRef
    writes: list[str] = Field(default_factory=list)
    reads: list[str] = Field(default_factory=list)
    threaded: bool = False


class Route(_Spec):
    """One branch of a router: ``{when: "state.x > 3", to: node}`` or ``{otherwise: node}``.

    ``max_iterations`` caps how often this branch may be taken in a run; once exhausted the branch
    is skipped (for ``otherwise``: the run goes to ``exhausted``, by default ``end``).
    """

    when: str | None = None
    to: str | None = None
    otherwise: str | None = None
    max_iterations: int | None = Field(default=None, gt=0)
    exhausted: str = "end"

    @model_validator(mode="after")
    def _shape(self) -> Route:
        if self.otherwise is not None and (self.when is not None or self.to is not None):
            raise ValueError("a route is either `{when, to}` or `{otherwise}`, not both")
        if self.otherwise is None and (self.when is None or self.to is None):
            raise ValueError("a route needs `when` and `to` (or just `otherwise`)")
        return self

    @property
    def target(self) -> str:
        return self.otherwise if self.otherwise is not None else self.to  # type: ignore[return-value]


class MapNode(_Spec):
    """Fan out over a list in state, run ``node`` (or ``graph``) per item concurrently, gather
    the results in input order into ``writes``."""

    over: str
    node: NodeSpec | None = None
    graph: GraphSpec | str | None = None
    item: str = "item"
    concurrency: int = Field(default=8, gt=0)
    writes: str

    @model_validator(mode="after")
    def _one_body(self) -> MapNode:
        if (self.node is None) == (self.graph is None):
            raise ValueError("give exactly one of `node` or `graph` to run per item")
        return self


class SubgraphNode(_Spec):
    """Run another graph as one node: ``inputs`` maps its inputs from expressions here,
    ``outputs`` maps state keys here to its output names."""

    graph: GraphSpec | str
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)


class HumanNode(_Spec):
    """Pause the run with a question; ``resume(run_id, answer)`` continues and writes the answer."""

    ask: str
    writes: str
    choices: list[str] | None = None


class MemoryReadNode(_Spec):
    """Load a conversation's messages (the last ``last`` of them, or those matching ``query``)."""

    session: str | None = None
    last: int | None = Field(default=None, gt=0)
    query: str | None = None
    writes: str


class MemoryWriteNode(_Spec):
    """Append messages to a conversation: a list of ``{role, content}`` templates."""

    session: str | None = None
    messages: list[dict[str, str]]


class EndNode(_Spec):
    """An explicit, named end of the run (the reserved name ``end`` needs no declaration);
    ``status: failed`` makes reaching it end the run as failed (e.g. ``gave_up``)."""

    status: Literal["done", "failed"] = "done"


NODE_KINDS: tuple[str, ...] = (
    "llm",
    "agent",
    "function",
    "router",
    "map",
    "subgraph",
    "human",
    "memory_read",
    "memory_write",
    "end",
)


class NodeSpec(_Spec):
    """One node: exactly one kind (``llm``, ``agent``, ``function``/``tool``, ``router``, ``map``,
    ``subgraph``, ``human``, ``memory_read``, ``memory_write``, ``end``) and common settings."""

    llm: LlmNode | None = None
    agent: AgentNode | None = None
    function: FunctionNode | None = None
    router: list[Route] | None = None  # the first route whose ``when`` is true is taken
    map: MapNode | None = None
    subgraph: SubgraphNode | None = None
    human: HumanNode | None = None
    memory_read: MemoryReadNode | None = None
    memory_write: MemoryWriteNode | None = None
    end: EndNode | None = None
    description: str = ""
    next: str | list[str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    retry: RetryPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _tool_is_function(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tool" in data and "function" not in data:
            data = {("function" if k == "tool" else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> NodeSpec:
        kinds = [k for k in NODE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a node has exactly one kind ({', '.join(NODE_KINDS)}); found: {found}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in NODE_KINDS if getattr(self, k) is not None)

    @property
    def config(self) -> Any:
        return getattr(self, self.kind)


class Edge(_Spec):
    """``source -> target``; several sources make a join: the target waits for all of them."""

    source: list[str] = Field(alias="from")
    target: str = Field(alias="to")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("from"), str):
            return {**data, "from": [data["from"]]}
        return data


class GraphSpec(_Spec):
    """A whole graph (a workflow): declarations, nodes and edges.

    ``edges`` accepts ``"a -> b -> c"`` chains and ``{from: [a, b], to: c}`` joins; the graph
    starts at ``entry`` (default: the first node).
    """

    name: str
    version: int | str = 1
    description: str = ""
    model: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    provider: ProviderSpec | None = None
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    state: dict[str, StateKeySpec] = Field(default_factory=dict)
    tools: dict[str, CallableRef] = Field(default_factory=dict)
    memory: StoreSpec | None = None
    checkpointer: StoreSpec | None = None
    limits: Limits = Field(default_factory=Limits)
    entry: str | None = None
    nodes: dict[str, NodeSpec]
    edges: list[Edge] = Field(default_factory=list)

    @field_validator("edges", mode="before")
    @classmethod
    def _parse_edges(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        edges: list[Any] = []
        for item in value:
            edges.extend(_parse_chain(item) if isinstance(item, str) else [item])
        return edges

    @property
    def entry_node(self) -> str:
        return self.entry or next(iter(self.nodes), "end")


def _parse_chain(text: str) -> list[dict[str, Any]]:
    """``"a -> b -> c"``: two edges; ``"a -> b & c"``: fan-out to both; ``"b & c -> d"``: a join
    (``d`` waits for both)."""
    parts = [[name.strip() for name in part.split("&")] for part in text.split("->")]
    if len(parts) < 2 or not all(all(part) for part in parts):
        raise ValueError(f"an edge reads 'source -> target' (got {text!r})")
    return [
        {"from": sources, "to": target}
        for sources, targets in itertools.pairwise(parts)
        for target in targets
    ]


MapNode.model_rebuild()
SubgraphNode.model_rebuild()
