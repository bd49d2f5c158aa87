"""What every tool protocol gives the agent loop, so the loop never knows which one runs.

One model turn, as the loop sees it::

    prepared = protocol.prepare(messages, tools)      # system prompt, or the `tools` parameter
    fitted = fit(prepared.messages, reserve=prepared.overhead_tokens(model))
    request = ChatCompletionRequest(model=model, messages=fitted, **prepared.params)
    parser = protocol.parser(tools)
    async for chunk in stream:                         # (not streaming: protocol.parse(message))
        visible = parser.feed(chunk.choices[0].delta)  # text for the user, never markup
    turn = parser.finish()                             # a ParsedTurn
    if turn.kind == "final":                           # stream parser.remainder(turn) too
        history.append(protocol.answer_message(turn))
    elif turn.kind == "tool_calls":
        results = await registry.run_all(turn.calls)   # ToolResult records, in call order
        history += protocol.tool_messages(turn, results)
    else:                                              # "unreadable": bounded retries
        history += protocol.correction_messages(turn)

Every message of one exchange (the assistant turn and what answers it) carries the same
``metadata["exchange"]`` id and a ``metadata["kind"]`` (``tool_call``, ``tool_result``,
``correction``), so history fitting keeps or drops the exchange as a whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from ..context.tokens import count_tokens
from ..messages import EXCHANGE, KIND, Message
from ..messages import ToolCall as WireToolCall
from ..providers._wire import Delta
from ..tools import Tool, ToolCall, ToolResult
from ._shapes import ToolIndex

__all__ = [
    "ParsedTurn",
    "PreparedRequest",
    "ToolProtocol",
    "ToolsLike",
    "TurnKind",
    "TurnParser",
    "new_call_id",
    "new_exchange_id",
    "tag",
    "tool_index",
]

TurnKind: TypeAlias = Literal["final", "tool_calls", "unreadable"]
ToolsLike: TypeAlias = "Iterable[Tool[Any, Any]] | ToolIndex"


@dataclass(frozen=True)
class ParsedTurn:
    """One assistant turn, read.

    ``kind``: ``"final"`` (``text`` is the answer), ``"tool_calls"`` (``calls`` to run; ``text``
    is prose the model wrote before them, which may already have been streamed), or
    ``"unreadable"`` (``problems`` says why; ``correction`` is what to tell the model).
    ``raw`` is what the model wrote; ``format`` names the format the turn was read in
    (``"text"``, ``"json"``, ``"hermes"``, ``"react"``, ``"native"``, ...).
    """

    kind: TurnKind
    text: str = ""
    calls: tuple[ToolCall, ...] = ()
    problems: tuple[str, ...] = ()
    correction: str | None = None
    raw: str = ""
    format: str | None = None
    native_calls: tuple[WireToolCall, ...] = field(default=(), repr=False)
    call_problems: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PreparedRequest:
    """The messages to send and the extra request fields (``{"tools": [...]}`` for native)."""

    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)

    def overhead_tokens(self, model: str | None = None) -> int:
        """Tokens the extra fields add to the prompt (not counted in ``messages``)."""
        if not self.params:
            return 0
        return count_tokens(json.dumps(self.params, ensure_ascii=False), model)


@runtime_checkable
class TurnParser(Protocol):
    """Reads one assistant turn as it streams."""

    def feed(self, delta: str | Delta) -> str:
        """Take a text delta (or a native stream delta); return the new text the user may see."""
        ...

    def finish(self) -> ParsedTurn:
        """The turn, once the stream has ended (call once)."""
        ...

    def remainder(self, turn: ParsedTurn) -> str:
        """The part of a final answer that :meth:`feed` has not returned (stream it last)."""
        ...


@runtime_checkable
class ToolProtocol(Protocol):
    """How tools travel between the agent and the model."""

    name: str

    def prepare(
        self, messages: Sequence[Message], tools: Iterable[Tool[Any, Any]]
    ) -> PreparedRequest: ...

    def parser(self, tools: ToolsLike) -> TurnParser: ...

    def parse(self, message: Message, tools: ToolsLike) -> ParsedTurn: ...

    def answer_message(self, turn: ParsedTurn) -> Message: ...

    def tool_messages(self, turn: ParsedTurn, results: Sequence[ToolResult]) -> list[Message]: ...

    def correction_messages(self, turn: ParsedTurn) -> list[Message]: ...


def tool_index(tools: ToolsLike) -> ToolIndex:
    """The parser's view of the tools (names and parameter names)."""
    return tools if isinstance(tools, ToolIndex) else ToolIndex.of(tools)


def new_call_id() -> str:
    return f"call_{os.urandom(8).hex()}"  # 16 random hex digits (a third of a uuid4's cost)


def new_exchange_id() -> str:
    return f"ex_{os.urandom(8).hex()}"


def tag(message: Message, exchange: str, kind: str) -> Message:
    """``message`` with its exchange id and kind set in metadata."""
    message.metadata[EXCHANGE] = exchange
    message.metadata[KIND] = kind
    return message
