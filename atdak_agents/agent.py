"""The tool-using agent loop: ``Agent(...)`` and ``await agent.run(input)``.

::

    agent = Agent("atdak-gpt-4-mini", "You help customers with orders.", tools=[lookup_order])
    result = await agent.run("Where is order 10423?", provider=client)
    print(result.output, result.usage.total_tokens)

Each turn: the conversation goes through the tool protocol (tools in the system prompt, or the
native ``tools`` parameter), the context budget and the model
(:func:`~atdak_agents.calls.call_model`); the answer is read as a final answer, tool calls, or
something unreadable. Tool calls of one turn run concurrently (journaled, so a resumed run never
repeats them); tool errors go back to the model as results it can correct; unreadable output gets a
correction request. A structured ``output_type`` is validated and repaired. Everything is bounded:
``max_steps`` model calls, ``max_retries`` corrections and failing tool rounds in a row, optional
usage limits — reaching a bound ends the run with a result that says so (``status="cut_off"``),
never a hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from .providers.client import AsyncAtdakClient

from ._ids import new_run_id
from .calls import CURRENT_MODEL, ModelSettings, call_model
from .context.history import HistoryFitter
from .exceptions import InvalidParameterError, UsageError, UsageLimitExceeded
from .graph.journal import current_journal, journaled
from .messages import EXCHANGE, KIND, Message, MessageLike, as_message
from .output import OutputSpec
from .providers._wire import Delta
from .providers.base import ChatModel
from .providers.profiles import ModelRegistry, default_registry
from .templates import PromptTemplate
from .tool_protocols import ParsedTurn, ToolIndex, ToolProtocol, TurnParser, get_protocol
from .tool_protocols.base import new_exchange_id, tool_index
from .tools import RunContext, Tool, ToolCall, ToolRegistry, ToolResult
from .tracing.bus import EventBus, Scope, Sink, current_scope, new_span_id, scope, span
from .tracing.events import (
    EventBase,
    RunFailed,
    RunFinished,
    RunStarted,
    TokenDelta,
    ToolCalled,
    ToolReturned,
)
from .usage import RunUsage, UsageLimits

__all__ = ["Agent", "AgentResult", "AgentStream"]

Status = Literal["done", "cut_off", "failed"]


@dataclass
class AgentResult:
    """How an agent run ended.

    ``status``: ``done`` (``output`` is the answer: text, or an ``output_type`` instance),
    ``cut_off`` (a bound was reached: ``max_steps``, a usage limit — ``reason`` says which;
    ``output`` is the last text the model wrote) or ``failed`` (the model kept producing output
    that could not be used, or tools kept failing; ``reason`` says how).
    """

    output: Any
    status: Status
    messages: list[Message]
    usage: RunUsage
    steps: int
    reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The answer as text (structured output as JSON)."""
        if isinstance(self.output, BaseModel):
            return self.output.model_dump_json()
        return "" if self.output is None else str(self.output)


class Agent:
    """An LLM with instructions and tools, run as a loop until it gives a final answer.

    ``model``: a model name with a profile (``atdak-gpt-4`` … or one registered).
    ``instructions``: the system prompt (a jinja2 template rendered with ``variables``).
    ``tools``: ``@tool`` functions (or plain functions); the agent can call only these.
    ``tool_protocol``: ``"auto"`` (native when the model's profile supports tools, else
    ``"prompt"``), ``"prompt"``, ``"native"``. ``output_type``: a pydantic model (or a field
    mapping) the final answer must match. ``context``: how the conversation is fitted into the
    model's window (strategies, see :mod:`atdak_agents.context.strategies`; default: drop the
    oldest turns). ``memory``: a memory store or view that keeps the
    conversation per ``session_id``. ``parameters``: request parameters (``temperature``,
    ``max_tokens``, ...). ``usage_limits``: stop cleanly past these.
    """

    def __init__(
        self,
        model: str,
        instructions: str | PromptTemplate = "",
        *,
        tools: Sequence[Tool[Any, Any] | Any] = (),
        memory: Any = None,
        max_steps: int = 10,
        tool_protocol: str | ToolProtocol = "auto",
        output_type: type[BaseModel] | Mapping[str, Any] | None = None,
        context: Any = None,
        parameters: Mapping[str, Any] | None = None,
        usage_limits: UsageLimits | None = None,
        provider: ChatModel | None = None,
        max_retries: int = 2,
        name: str = "agent",
        registry: ModelRegistry | None = None,
    ) -> None:
        if max_steps < 1:
            raise InvalidParameterError("max_steps", max_steps, "at least 1")
        if max_retries < 0:
            raise InvalidParameterError("max_retries", max_retries, "0 or more")
        self.name = name
        self.profile = (registry or default_registry).get(model)
        self.model = model
        self.instructions = _as_template(instructions, f"{name}.instructions")
        self.tools = ToolRegistry(tools)
        self.memory = memory
        self.max_steps = max_steps
        self.max_retries = max_retries
        self.protocol = get_protocol(tool_protocol, profile=self.profile)  # type: ignore[arg-type]
        self.output = OutputSpec(output_type, name=f"{name}_output") if output_type else None
        self.usage_limits = usage_limits or UsageLimits()
        self.provider = provider
        self._index: ToolIndex = tool_index(self.tools)
        self._static_system: tuple[PromptTemplate | None, str] | None = None
        self._system_message: Message | None = None
        fitter = (
            HistoryFitter.from_config(self.profile, context, chat_model=CURRENT_MODEL)
            if context
            else None
        )
        self.settings = ModelSettings(
            model=model,
            parameters=dict(parameters or {}),
            fitter=fitter or HistoryFitter(self.profile),
            profile=self.profile,
        )

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, model={self.model!r}, tools={self.tools.names()})"

    # ------------------------------------------------------------------ running

    async def run(
        self,
        input: str | Sequence[MessageLike],
        *,
        session_id: str | None = None,
        provider: ChatModel | None = None,
        variables: Mapping[str, Any] | None = None,
        deps: Any = None,
        usage: RunUsage | None = None,
        sinks: Sequence[Sink] = (),
        memory: Any = None,
        run_id: str | None = None,
    ) -> AgentResult:
        """Run the loop to a final answer (or a bound) and return the result.

        ``session_id`` with a ``memory`` (given here or to the agent) continues that
        conversation and stores this run's messages in it. ``variables`` render the
        instructions; ``deps`` reach tools through their ``RunContext``; ``usage`` accumulates
        into a caller's record; ``sinks`` trace a standalone run. ``run_id`` is the id tools
        see as ``RunContext.run_id`` (a graph passes its own; by default the trace's, or a new
        one per run).
        """
        if memory is not None:
            return await self._with_memory(memory).run(
                input,
                session_id=session_id,
                provider=provider,
                variables=variables,
                deps=deps,
                usage=usage,
                sinks=sinks,
                run_id=run_id,
            )
        if not sinks:  # inside a traced run its scope is current; else nobody listens
            return await self._run(input, session_id, provider, variables, deps, usage, run_id)
        bus = EventBus(run_id or new_run_id(), sinks)
        try:
            return await self._run_traced(bus, input, session_id, provider, variables, deps, usage)
        finally:
            bus.close()

    def _with_memory(self, memory: Any) -> Agent:
        clone = object.__new__(Agent)
        clone.__dict__.update(self.__dict__)
        clone.memory = memory
        return clone

    def run_sync(
        self,
        input: str | Sequence[MessageLike],
        **options: Any,
    ) -> AgentResult:
        """:meth:`run` for code that is not async (not from inside a running event loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run_and_close(input, **options))
        raise UsageError(
            "run_sync() was called inside a running event loop; use `await agent.run(...)`"
        )

    def stream(
        self,
        input: str | Sequence[MessageLike],
        *,
        include: Collection[str] | None = None,
        exclude: Collection[str] = (),
        **options: Any,
    ) -> AgentStream:
        """Run the agent while iterating its events (tokens, tool calls, results, the end)::

        stream = agent.stream("...", provider=client, exclude={"model_request"})
        async for event in stream:
            ...
        print(stream.result.output)
        """
        return AgentStream(self, input, include, exclude, options)

    async def _run_and_close(self, input: Any, **options: Any) -> AgentResult:
        own = options.get("provider") is None and self.provider is None
        if own:
            options["provider"] = _default_client()
        try:
            return await self.run(input, **options)
        finally:
            if own:
                await options["provider"].close()

    async def _run_traced(
        self,
        bus: EventBus,
        input: Any,
        session_id: str | None,
        provider: ChatModel | None,
        variables: Mapping[str, Any] | None,
        deps: Any,
        usage: RunUsage | None = None,
    ) -> AgentResult:
        root = Scope(bus, bus.run_id, new_span_id(), None, 1, self.name)
        with scope(root):
            root.emit(RunStarted, graph=self.name, inputs={"input": _describe(input)})
            try:
                result = await self._run(input, session_id, provider, variables, deps, usage)
            except BaseException as exc:
                root.emit(RunFailed, error=str(exc), error_type=type(exc).__name__)
                raise
            root.emit(
                RunFinished,
                status=result.status,
                output={"output": result.text, "reason": result.reason},
                usage={
                    "requests": result.usage.requests,
                    "total_tokens": result.usage.total_tokens,
                },
            )
        return result

    async def _run(
        self,
        input: Any,
        session_id: str | None,
        provider: ChatModel | None,
        variables: Mapping[str, Any] | None,
        deps: Any,
        usage: RunUsage | None,
        run_id: str | None = None,
    ) -> AgentResult:
        client = provider or self.provider
        if client is None:
            raise UsageError(
                f"agent {self.name!r} has no model endpoint: pass provider=AsyncAtdakClient() "
                "(or any ChatModel) to Agent(...) or to run(...)"
            )
        remembered = self.memory is not None and session_id is not None
        history = await self._load(session_id) if remembered else []
        start = [*self._system(variables or {}), *history]
        new = _input_messages(input)
        loop = _Loop(self, client, usage or RunUsage(), deps, run_id)
        result = await loop.run(start, new)
        if remembered:
            await self._save(session_id, result.messages)
        return result

    # ------------------------------------------------------------------ prompt and memory

    def _system(self, variables: Mapping[str, Any]) -> list[Message]:
        text = self._system_text(variables)
        if not text:
            return []
        # The same text as last run (static instructions): the same message, as the tool
        # protocol's system copy is (messages are never edited in place: see HistoryFitter).
        last = self._system_message
        if last is None or last.content is not text:
            last = self._system_message = Message(role="system", content=text)
        return [last]

    def _system_text(self, variables: Mapping[str, Any]) -> str:
        # Instructions without template syntax render to the same text every time: keep it
        # (for as long as they are the same instructions).
        cached = self._static_system
        if cached is not None and cached[0] is self.instructions and self.output is None:
            return cached[1]
        parts = []
        if self.instructions is not None:
            parts.append(self.instructions.render(variables))
        if self.output is not None:
            parts.append(self.output.instructions())
        text = "\n\n".join(p for p in parts if p)
        if self.output is None and (
            self.instructions is None or "{" not in self.instructions.source
        ):
            self._static_system = (self.instructions, text)
        return text

    # (only for a run with a memory and a session: most runs make no coroutine for either)

    async def _load(self, session_id: str | None) -> list[Message]:
        return list(await self.memory.load(session_id))

    async def _save(self, session_id: str | None, messages: list[Message]) -> None:
        keep = _without_corrections(messages)
        if keep:
            await self.memory.append(session_id, keep)


class _Loop:
    """One run of the loop (its conversation, counters and usage)."""

    def __init__(
        self, agent: Agent, client: ChatModel, usage: RunUsage, deps: Any, run_id: str | None
    ) -> None:
        self.agent = agent
        self.client = client
        self.usage = usage
        self.deps = deps
        self.calls: list[ToolCall] = []
        self.retries = 0
        self.last_text = ""
        self._run_id = run_id or ""

    async def run(self, start: list[Message], new: list[Message]) -> AgentResult:
        conversation = [*start, *new]
        steps = 0
        while steps < self.agent.max_steps:
            steps += 1
            turn = await self._turn(conversation)
            outcome = await self._handle(turn, conversation, steps)
            if outcome is not None:
                return self._result(outcome, conversation, len(start), steps)
            limited = self._over_limits()
            if limited is not None:
                stop: tuple[Status, Any, str | None] = ("cut_off", self.last_text, limited)
                return self._result(stop, conversation, len(start), steps)
        reason = (
            f"stopped after max_steps={self.agent.max_steps} model calls without a final answer; "
            "raise max_steps or simplify the task"
        )
        return self._result(("cut_off", self.last_text, reason), conversation, len(start), steps)

    async def _turn(self, conversation: list[Message]) -> ParsedTurn:
        agent = self.agent
        prepared = agent.protocol.prepare(conversation, agent.tools)
        # Streamed only when someone listens for tokens (as call_model decides)
        here = current_scope()
        listened = here is not None and here.bus.wants_tokens
        reader = _StreamReader(agent.protocol, agent._index) if listened else None
        call = await call_model(
            self.client,
            agent.settings,
            prepared.messages,
            usage=self.usage,
            extra=prepared.params,
            on_delta=reader.feed if reader is not None else None,
        )
        if not call.streamed or reader is None:
            return agent.protocol.parse(call.message, agent._index)
        parser = reader.parser()
        turn = parser.finish()
        rest = parser.remainder(turn) if turn.kind == "final" else ""
        if rest and here is not None:
            here.emit(TokenDelta, text=rest, size=len(rest))
        return turn

    async def _handle(
        self, turn: ParsedTurn, conversation: list[Message], steps: int
    ) -> tuple[Status, Any, str | None] | None:
        protocol = self.agent.protocol
        if turn.text:
            self.last_text = turn.text
        if turn.kind == "final":
            return self._final(turn, conversation)
        if turn.kind == "tool_calls":
            results = await self._run_tools(turn, steps)
            conversation.extend(protocol.tool_messages(turn, results))
            if all(r.is_error for r in results):
                return self._retry("the tools kept failing: " + results[0].content[:200])
            self.retries = 0
            return None
        conversation.extend(protocol.correction_messages(turn))
        return self._retry("the model's output could not be read: " + "; ".join(turn.problems))

    def _final(
        self, turn: ParsedTurn, conversation: list[Message]
    ) -> tuple[Status, Any, str | None] | None:
        protocol = self.agent.protocol
        answer = protocol.answer_message(turn)
        conversation.append(answer)
        spec = self.agent.output
        if spec is None:
            return ("done", turn.text, None)
        value, problem = spec.parse(turn.text)
        if value is not None:
            return ("done", value, None)
        exchange = new_exchange_id()
        answer.metadata.update({EXCHANGE: exchange, KIND: "tool_call"})
        correction = Message(role="user", content=spec.correction(problem or "invalid"))
        correction.metadata.update({EXCHANGE: exchange, KIND: "correction"})
        conversation.append(correction)
        return self._retry(f"the final answer did not match the output schema: {problem}")

    def _retry(self, why: str) -> tuple[Status, Any, str | None] | None:
        self.retries += 1
        if self.retries > self.agent.max_retries:
            return ("failed", self.last_text, f"{why} (after {self.agent.max_retries} retries)")
        return None

    async def _run_tools(self, turn: ParsedTurn, steps: int) -> list[ToolResult]:
        calls = turn.calls
        self.calls.extend(calls)
        self.usage.tool_calls += len(calls)
        if len(calls) == 1:  # nothing to run alongside: no task to gather
            return [await self._run_tool(calls[0], steps, 0)]
        return list(
            await asyncio.gather(*(self._run_tool(c, steps, i) for i, c in enumerate(calls)))
        )

    def run_id(self) -> str:
        """The run's id for tools: its trace's, else the one it was given, else one made when
        first asked."""
        here = current_scope()
        if here is not None:
            return here.run_id
        if not self._run_id:
            self._run_id = new_run_id()
        return self._run_id

    def _context(self, call: ToolCall, steps: int) -> RunContext[Any] | None:
        """The ``RunContext`` for ``call``; ``None`` when its tool would not read it (a plain
        :class:`Tool` without a ``RunContext`` parameter, in a plain registry), so no run id
        is made for a run whose tools never ask for it."""
        tools = self.agent.tools
        if type(tools) is ToolRegistry:
            found = tools.get(call.name)
            if type(found) is Tool and not found.takes_context:
                return None
        return RunContext(deps=self.deps, run_id=self.run_id(), step=steps, call=call)

    async def _run_tool(self, call: ToolCall, steps: int, index: int) -> ToolResult:
        context = self._context(call, steps)
        tools = self.agent.tools
        here = current_scope()
        if (here is None or not here.bus.active) and current_journal() is None:
            return await tools.run(call, context)  # nobody listens, nothing to replay
        with span() as tool_scope:
            if tool_scope is not None:
                arguments = call.arguments
                size = len(str(arguments))
                tool_scope.emit(
                    ToolCalled, tool=call.name, call_id=call.id, arguments=arguments, size=size
                )

            async def invoke() -> ToolResult:
                return await tools.run(call, context)

            result = await journaled(
                "tool", invoke, dump=_dump_result, load=_load_result, key=f"{steps}.{index}"
            )
            if tool_scope is not None:
                tool_scope.emit(
                    ToolReturned,
                    tool=call.name,
                    call_id=call.id,
                    content=result.content,
                    is_error=result.is_error,
                    duration=result.duration,
                    size=len(result.content),
                )
        return result

    def _over_limits(self) -> str | None:
        try:
            self.agent.usage_limits.check(self.usage)
        except UsageLimitExceeded as exc:
            return str(exc)
        return None

    def _result(
        self,
        outcome: tuple[Status, Any, str | None],
        conversation: list[Message],
        first_new: int,
        steps: int,
    ) -> AgentResult:
        status, output, reason = outcome
        return AgentResult(
            output=output,
            status=status,
            messages=conversation[first_new:],
            usage=self.usage,
            steps=steps,
            reason=reason,
            tool_calls=list(self.calls),
        )


class _StreamReader:
    """Feeds streamed deltas to the protocol's turn parser, made on the first delta: a call
    that is not streamed never needs one."""

    __slots__ = ("_index", "_parser", "_protocol")

    def __init__(self, protocol: ToolProtocol, index: ToolIndex) -> None:
        self._protocol = protocol
        self._index = index
        self._parser: TurnParser | None = None

    def parser(self) -> TurnParser:
        if self._parser is None:
            self._parser = self._protocol.parser(self._index)
        return self._parser

    def feed(self, delta: Delta) -> str:
        return self.parser().feed(delta)


class AgentStream:
    """An agent run seen as its live events; ``result`` once iteration has ended."""

    def __init__(
        self,
        agent: Agent,
        input: Any,
        include: Collection[str] | None,
        exclude: Collection[str],
        options: Mapping[str, Any],
    ) -> None:
        self._agent = agent
        self._input = input
        self._options = dict(options)
        self._bus = EventBus(new_run_id(), self._options.pop("sinks", ()))
        self._subscription = self._bus.subscribe(include=include, exclude=exclude)
        self.result: AgentResult | None = None

    def __aiter__(self) -> AsyncIterator[EventBase]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[EventBase]:
        options = self._options
        task = asyncio.ensure_future(
            self._agent._run_traced(
                self._bus,
                self._input,
                options.get("session_id"),
                options.get("provider"),
                options.get("variables"),
                options.get("deps"),
            )
        )
        task.add_done_callback(lambda _: self._bus.close())
        try:
            async for event in self._subscription:
                yield event
        finally:
            if not task.done():
                task.cancel()
        self.result = await task


# --------------------------------------------------------------------------- helpers


def _as_template(instructions: str | PromptTemplate, name: str) -> PromptTemplate | None:
    if isinstance(instructions, PromptTemplate):
        return instructions
    if not instructions:
        return None
    return PromptTemplate(instructions, name=name, role="system")


def _input_messages(input: str | Sequence[MessageLike]) -> list[Message]:
    if isinstance(input, str):
        return [Message(role="user", content=input)]
    messages = [as_message(m) for m in input]
    if not messages:
        raise InvalidParameterError("input", input, "a text or a non-empty list of messages")
    return messages


def _describe(input: Any) -> Any:
    return input if isinstance(input, str) else [as_message(m).to_wire() for m in input]


def _without_corrections(messages: list[Message]) -> list[Message]:
    corrected = {m.metadata[EXCHANGE] for m in messages if m.metadata.get(KIND) == "correction"}
    return [m for m in messages if m.metadata.get(EXCHANGE, None) not in corrected]


def _dump_result(result: ToolResult) -> dict[str, Any]:
    return {
        "call_id": result.call_id,
        "name": result.name,
        "content": result.content,
        "is_error": result.is_error,
        "error_kind": result.error_kind,
        "truncated": result.truncated,
        "duration": result.duration,
    }


def _load_result(data: Any) -> ToolResult:
    return ToolResult(**data)


def _default_client() -> AsyncAtdakClient:
    from .providers.client import AsyncAtdakClient

    return AsyncAtdakClient()
