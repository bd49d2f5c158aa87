"""Node runners: what each kind of node does when the engine runs it.

A runner has a ``kind`` and ``async run(ctx) -> NodeOutcome``. Runners are compiled once per graph
(:mod:`atdak_agents.graph.build`) and shared by all its runs; everything run-specific arrives in the
:class:`NodeContext`. Routers and ends are not runners: the engine resolves them while routing.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import NodeError, RunError, ToolSignal, UsageError
from ..providers.base import ChatModel
from ..providers.profiles import ModelRegistry, default_registry
from ..tracing.bus import EventBus, emit
from ..tracing.events import MapStarted
from ..usage import RunUsage, UsageLimits
from ._stepping import Resumed, first_step
from .expressions import Expression
from .journal import Journal, current_journal, task_journal
from .spec import RetryPolicy

if TYPE_CHECKING:
    from .build import Graph

__all__ = [
    "FunctionRunner",
    "HumanRunner",
    "MapRunner",
    "NodeContext",
    "NodeOutcome",
    "NodeRunner",
    "PolicyRunner",
    "RunEnv",
    "SubgraphRunner",
    "Task",
    "run_node",
]


@dataclass(slots=True)
class Task:
    """One node to run in a step; ``path`` names it in events and the journal."""

    node: str
    path: str


@dataclass(slots=True)
class NodeOutcome:
    """What a node produced: state updates, or a question that suspends the run."""

    updates: Mapping[str, Any] | None = None
    interrupt: str | None = None


@dataclass(slots=True)
class RunEnv:
    """Everything a run's nodes share: inputs, the model endpoint, tools, memory, usage."""

    run_id: str
    inputs: Mapping[str, Any]
    bus: EventBus
    usage: RunUsage = field(default_factory=RunUsage)
    usage_limits: UsageLimits = field(default_factory=UsageLimits)
    session_id: str | None = None
    provider: ChatModel | None = None
    registry: ModelRegistry = field(default_factory=lambda: default_registry)
    tools: Mapping[str, Any] = field(default_factory=dict)
    memory: Any = None
    base_dir: Path | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    provider_factory: Callable[[], ChatModel] | None = None
    owns_provider: bool = False

    def check_usage(self) -> None:
        """Raise :class:`~atdak_agents.exceptions.UsageLimitExceeded` when over a limit."""
        self.usage_limits.check(self.usage)

    def model_client(self) -> ChatModel:
        """The chat model endpoint for this run (created on first use)."""
        if self.provider is None:
            if self.provider_factory is None:
                raise UsageError(
                    "this run makes model calls but has no model endpoint: pass provider=... "
                    "(an AsyncAtdakClient or any ChatModel) to graph.start/run"
                )
            self.provider = self.provider_factory()
            self.owns_provider = True
        return self.provider

    async def close_owned(self) -> None:
        """Close the model endpoint this run created itself (a caller's is the caller's)."""
        if self.owns_provider and self.provider is not None:
            close = getattr(self.provider, "close", None)
            self.provider, self.owns_provider = None, False
            if close is not None:
                await close()

    def child(self, inputs: Mapping[str, Any]) -> RunEnv:
        """The environment of a subgraph run: its own inputs, everything else shared."""
        return RunEnv(
            run_id=self.run_id,
            inputs=inputs,
            bus=self.bus,
            usage=self.usage,
            usage_limits=self.usage_limits,
            session_id=self.session_id,
            provider=self.provider,
            registry=self.registry,
            tools=self.tools,
            memory=self.memory,
            base_dir=self.base_dir,
            provider_factory=self.provider_factory,
        )


@dataclass(slots=True)
class NodeContext:
    """What a running node sees: the run's environment, the state at step start, its path."""

    env: RunEnv
    state: Mapping[str, Any]
    path: str
    step: int
    names: dict[str, Any] = field(default_factory=dict)

    def expression_names(self) -> dict[str, Any]:
        """Names for expressions and templates: ``state``, ``inputs`` and locals like ``item``."""
        return {"state": self.state, "inputs": self.env.inputs, **self.names}


class NodeRunner(Protocol):
    kind: str

    async def run(self, ctx: NodeContext) -> NodeOutcome: ...


async def run_node(runner: NodeRunner, ctx: NodeContext, journal: Journal | None) -> NodeOutcome:
    """Run one node: journal its calls under its path and, when someone listens, trace it in
    its own span (what it emits hangs under it; its ``node_finished`` says when it started and
    what it wrote, or the error it raised)."""
    bus = ctx.env.bus
    node = bus.enter_node(ctx.path, ctx.step, runner.kind) if bus.active else None
    try:
        if journal is None:
            outcome = await runner.run(ctx)
        else:
            with task_journal(journal, ctx.path):
                outcome = await runner.run(ctx)
    except BaseException as exc:
        if node is not None:
            bus.leave_node(node, None, exc)
        if isinstance(exc, RunError | UsageError | ToolSignal) or not isinstance(exc, Exception):
            raise
        raise NodeError(ctx.path, f"failed: {type(exc).__name__}: {exc}") from exc
    if node is not None:
        bus.leave_node(node, outcome.updates)
    return outcome


# --------------------------------------------------------------------------- function


class FunctionRunner:
    """A Python callable on state. It receives ``state`` (read-only) and, if its signature asks
    for them by name, ``inputs``, ``context`` (the :class:`NodeContext`) and local names such as a
    map's ``item``; it returns a dict of updates (or ``None``)."""

    kind = "function"

    def __init__(
        self,
        name: str,
        function: Callable[..., Any],
        *,
        writes: Sequence[str] = (),
        threaded: bool = False,
    ) -> None:
        self.name = name
        self.function = function
        self.writes = frozenset(writes)
        self.threaded = threaded
        self.is_async = inspect.iscoroutinefunction(function)
        self.params = _parameter_names(function)

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        kwargs = self._arguments(ctx)
        if self.is_async:
            result = await self.function(**kwargs)
        elif self.threaded:
            result = await asyncio.to_thread(self.function, **kwargs)
        else:
            result = self.function(**kwargs)
            # (e.g. a callable object wrapping an async function; a dict is never awaitable)
            if type(result) is not dict and inspect.isawaitable(result):
                result = await result
        return NodeOutcome(self._updates(ctx.path, result))

    def _arguments(self, ctx: NodeContext) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        names = ctx.names
        for param in self.params:
            if param in names:  # local names (a map's ``item``) win over the run's own
                arguments[param] = names[param]
            elif param == "state":
                arguments[param] = ctx.state
            elif param == "inputs":
                arguments[param] = ctx.env.inputs
            elif param == "context":
                arguments[param] = ctx
        return arguments

    def _updates(self, path: str, result: Any) -> Mapping[str, Any] | None:
        if result is None:
            return None
        if type(result) is not dict and not isinstance(result, Mapping):
            raise NodeError(
                path,
                f"function {self.name!r} returned {type(result).__name__}; return a dict of "
                f"state updates (keys: {', '.join(sorted(self.writes)) or 'declared state keys'})",
            )
        if self.writes and not self.writes.issuperset(result):
            extra = [k for k in result if k not in self.writes]
            raise NodeError(
                path,
                f"function {self.name!r} wrote {', '.join(map(repr, extra))}, which it does "
                f"not declare in `writes` ({', '.join(sorted(self.writes))})",
            )
        return result


def _parameter_names(function: Callable[..., Any]) -> tuple[str, ...]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return ("state",)
    names = tuple(
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    return names or ()


# --------------------------------------------------------------------------- policies


class PolicyRunner:
    """Wraps a runner with a per-node timeout and retry policy."""

    def __init__(
        self, inner: NodeRunner, *, timeout: float | None, retry: RetryPolicy | None
    ) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.timeout = timeout
        self.retry = retry or RetryPolicy(attempts=1)

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        retry = self.retry
        for attempt in range(1, retry.attempts + 1):
            try:
                return await self._attempt(ctx)
            except (ToolSignal, UsageError):
                raise
            except Exception as exc:
                if attempt >= retry.attempts:
                    raise _as_node_error(ctx.path, exc, attempt) from exc
                await asyncio.sleep(min(retry.max_backoff, retry.backoff * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, ctx: NodeContext) -> NodeOutcome:
        if self.timeout is None:
            return await self.inner.run(ctx)
        try:
            return await asyncio.wait_for(self.inner.run(ctx), self.timeout)
        except asyncio.TimeoutError:
            raise NodeError(
                ctx.path, f"timed out after {self.timeout:g} s (raise the node's `timeout`)"
            ) from None


def _as_node_error(path: str, exc: Exception, attempts: int) -> RunError:
    if isinstance(exc, RunError):
        return exc
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return NodeError(path, f"failed{tries}: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- human


class HumanRunner:
    """Suspends the run with a question until ``answer``/``resume`` supplies the answer."""

    kind = "human"

    def __init__(
        self,
        ask: Callable[[Mapping[str, Any]], str],
        writes: str,
        choices: Sequence[str] | None = None,
    ) -> None:
        self.ask = ask
        self.writes = writes
        self.choices = list(choices) if choices else None

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        answers = ctx.env.answers
        if ctx.path not in answers:
            return NodeOutcome(interrupt=self.ask(ctx.expression_names()))
        return NodeOutcome({self.writes: answers.pop(ctx.path)})

    def check_answer(self, path: str, answer: Any) -> None:
        """Refuse an answer that is not one of the node's ``choices``."""
        if self.choices is not None and answer not in self.choices:
            raise UsageError(
                f"answer {answer!r} for {path!r} is not one of: {', '.join(self.choices)}"
            )


# --------------------------------------------------------------------------- map


class MapRunner:
    """Runs ``body`` once per item of a list in state, concurrently (bounded), and gathers the
    results in input order. Each item's run sees ``item`` (or the configured name) and ``index``.

    A body that never waits (a plain function) gains nothing from running concurrently, and a
    Task per item costs more than the item: once a map has seen its body finish every item
    without waiting (``waits`` is False), it runs the items one after another in its own task.
    An item that waits after all is carried on where it is, and the rest run concurrently again.
    """

    kind = "map"

    def __init__(
        self,
        over: Expression,
        body: NodeRunner,
        body_name: str,
        *,
        item_name: str,
        concurrency: int,
        writes: str,
        result_key: str | None,
    ) -> None:
        self.over = over
        self.body = body
        self.body_name = body_name
        self.item_name = item_name
        self.concurrency = concurrency
        self.writes = writes
        self.result_key = result_key
        self.waits: bool | None = None  # whether the body was ever seen waiting (None: unknown)

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        items = self.over.evaluate(ctx.expression_names(), where=ctx.path)
        if not isinstance(items, list | tuple):
            raise NodeError(
                ctx.path,
                f"`over: {self.over.source}` gave {type(items).__name__}; it must give a list",
            )
        emit(MapStarted, items=len(items), concurrency=self.concurrency)  # for progress bars
        journal = current_journal()
        if self.waits is False:
            results = await self._one_by_one(ctx, items, journal)
        else:
            results = await self._concurrently(ctx, items, journal, 0)
            if self.waits is None and items:
                self.waits = False
        return NodeOutcome({self.writes: results})

    async def _concurrently(
        self, ctx: NodeContext, items: Sequence[Any], journal: Journal | None, start: int
    ) -> list[Any]:
        limit = asyncio.Semaphore(self.concurrency)
        return list(
            await asyncio.gather(
                *(self._one(ctx, start + i, item, limit, journal) for i, item in enumerate(items))
            )
        )

    async def _one_by_one(
        self, ctx: NodeContext, items: Sequence[Any], journal: Journal | None
    ) -> list[Any]:
        results: list[Any] = []
        for index, item in enumerate(items):
            if self.waits:  # an item waited after all: the rest run concurrently
                rest = await self._concurrently(ctx, items[index:], journal, index)
                return [*results, *rest]
            results.append(await self._one(ctx, index, item, None, journal))
        return results

    async def _one(
        self,
        ctx: NodeContext,
        index: int,
        item: Any,
        limit: asyncio.Semaphore | None,
        journal: Journal | None,
    ) -> Any:
        names = {**ctx.names, self.item_name: item, "index": index}
        path = f"{ctx.path}[{index}]/{self.body_name}"
        body_ctx = NodeContext(ctx.env, ctx.state, path, ctx.step, names)
        if limit is None:
            outcome = await self._body(body_ctx, journal)
        else:
            async with limit:
                outcome = await self._body(body_ctx, journal)
        if outcome.interrupt is not None:
            raise NodeError(path, "human nodes cannot run inside a map")
        updates = dict(outcome.updates or {})
        if self.result_key is not None:
            return updates.get(self.result_key)
        return updates

    async def _body(self, ctx: NodeContext, journal: Journal | None) -> NodeOutcome:
        """Run the body on one item, noting whether it had to wait."""
        body = run_node(self.body, ctx, journal)
        finished, value = first_step(body)
        if finished:
            outcome: NodeOutcome = value
            return outcome
        self.waits = True
        return await Resumed(body, value)


# --------------------------------------------------------------------------- subgraph


class SubgraphRunner:
    """Runs another graph to completion as one node of this one."""

    kind = "subgraph"

    def __init__(
        self,
        graph: Graph,
        inputs: Sequence[tuple[str, Expression]],
        outputs: Mapping[str, str],
        *,
        whole_output: str | None = None,
    ) -> None:
        self.graph = graph
        self.inputs = list(inputs)
        self.outputs = dict(outputs)
        self.whole_output = whole_output

    async def run(self, ctx: NodeContext) -> NodeOutcome:
        names = ctx.expression_names()
        child_inputs = {name: expr.evaluate(names, where=ctx.path) for name, expr in self.inputs}
        run = self.graph.start_nested(ctx.env.child(child_inputs), ctx.path, current_journal())
        result = await run.until_done()
        if result.status == "waiting":
            raise NodeError(ctx.path, "human nodes inside a subgraph are not supported")
        if result.status != "done":
            why = result.error or result.reason
            raise NodeError(ctx.path, f"subgraph {self.graph.name!r} {result.status}: {why}")
        if self.whole_output is not None:
            return NodeOutcome({self.whole_output: result.output})
        missing = [name for name in self.outputs.values() if name not in result.output]
        if missing:
            raise NodeError(ctx.path, f"subgraph {self.graph.name!r} has no output {missing[0]!r}")
        return NodeOutcome({key: result.output[name] for key, name in self.outputs.items()})
