"""The ``native`` tool protocol: OpenAI-style ``tools``, ``tool_calls`` and ``role: "tool"``.

For endpoints whose model profile says ``native_tools=True``. Streamed ``tool_calls`` deltas are
assembled by index; the message text still goes through the text parser, so a model that writes
its call as text (``<tool_call>`` in ``content``, a common server misconfiguration) is still
understood and its markup never reaches the user. Arguments that are not valid JSON, or an
unknown tool name, make the turn ``"unreadable"``; the correction answers every call with a
``tool`` message saying what to fix, as the API requires.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..messages import FunctionCall, Message
from ..messages import ToolCall as WireToolCall
from ..providers._wire import Delta
from ..tools import Tool, ToolCall, ToolResult
from . import _json
from ._shapes import RawCall, ToolIndex
from .base import (
    ParsedTurn,
    PreparedRequest,
    ToolsLike,
    new_call_id,
    new_exchange_id,
    tag,
    tool_index,
)
from .parsing import Corrector, TextTurnParser, default_correction, resolve_calls

__all__ = ["NativeProtocol", "NativeTurnParser"]


@dataclass
class _Pending:
    id: str | None = None
    name: str = ""
    arguments: str = ""


class NativeTurnParser:
    """Assembles native ``tool_calls`` deltas; message text goes through the text parser."""

    def __init__(self, tools: ToolsLike, *, correct: Corrector = default_correction) -> None:
        self.tools = tool_index(tools)
        self._correct = correct
        self._text = TextTurnParser(self.tools, correct=correct)
        self._pending: dict[int, _Pending] = {}

    def feed(self, delta: str | Delta) -> str:
        if isinstance(delta, str):
            return self._text.feed(delta)
        for part in delta.tool_calls or ():
            pending = self._pending.setdefault(part.index, _Pending())
            pending.id = part.id or pending.id
            if part.function is not None:
                pending.name += part.function.name or ""
                pending.arguments += part.function.arguments or ""
        return self._text.feed(delta.content or "")

    def add_message(self, message: Message) -> None:
        """Take a whole (non-streamed) assistant message."""
        self._text.feed(message.text)
        for index, call in enumerate(message.tool_calls or ()):
            self._pending[index] = _Pending(call.id, call.function.name, call.function.arguments)

    def remainder(self, turn: ParsedTurn) -> str:
        return self._text.remainder(turn)

    def finish(self) -> ParsedTurn:
        text_turn = self._text.finish()
        if not self._pending:
            return text_turn
        wire = [
            WireToolCall(
                id=p.id or new_call_id(), function=FunctionCall(name=p.name, arguments=p.arguments)
            )
            for _, p in sorted(self._pending.items())
        ]
        calls, problems = self._read(wire)
        raw = text_turn.raw
        if problems:
            listed = tuple(problems.values())
            return ParsedTurn(
                "unreadable",
                text_turn.text,
                problems=listed,
                correction=self._correct(listed, self.tools),
                raw=raw,
                format="native",
                native_calls=tuple(wire),
                call_problems=problems,
            )
        return ParsedTurn(
            "tool_calls",
            text_turn.text,
            tuple(calls),
            raw=raw,
            format="native",
            native_calls=tuple(wire),
        )

    def _read(self, wire: list[WireToolCall]) -> tuple[list[ToolCall], dict[str, str]]:
        calls: list[ToolCall] = []
        problems: dict[str, str] = {}
        for item in wire:
            name, text = item.function.name, item.function.arguments
            try:
                arguments: Any = _json.loads(text) if text.strip() else {}
            except ValueError as exc:
                problems[item.id] = f"the arguments of {name!r} are not valid JSON ({exc})"
                continue
            found, trouble = resolve_calls(
                [RawCall(name, arguments, item.id)], self.tools, keep_ids=True
            )
            if trouble:
                problems[item.id] = trouble[0]
            calls.extend(found)
        return calls, problems


def _native_correction(problems: Sequence[str], tools: ToolIndex) -> str:
    return (
        f"The tool calls could not be run: {'; '.join(problems)}. The tools are: "
        f"{', '.join(tools.names) or '(none)'}. Call them again with a JSON object of arguments."
    )


class NativeProtocol:
    """Tools through the OpenAI-style ``tools`` request parameter."""

    name = "native"

    def __init__(self, *, tool_choice: str | dict[str, Any] | None = None) -> None:
        self.tool_choice = tool_choice

    def prepare(
        self, messages: Sequence[Message], tools: Iterable[Tool[Any, Any]]
    ) -> PreparedRequest:
        """The messages as they are (never edited) and the tools as the ``tools`` parameter."""
        items = [t.openai_schema() for t in tools]
        out = list(messages)
        if not items:
            return PreparedRequest(out)
        params: dict[str, Any] = {"tools": items}
        if self.tool_choice is not None:
            params["tool_choice"] = self.tool_choice
        return PreparedRequest(out, params)

    def parser(self, tools: ToolsLike) -> NativeTurnParser:
        return NativeTurnParser(tools, correct=_native_correction)

    def parse(self, message: Message, tools: ToolsLike) -> ParsedTurn:
        parser = self.parser(tools)
        parser.add_message(message)
        return parser.finish()

    def answer_message(self, turn: ParsedTurn) -> Message:
        return Message(role="assistant", content=turn.text)

    def tool_messages(self, turn: ParsedTurn, results: Sequence[ToolResult]) -> list[Message]:
        exchange = new_exchange_id()
        wire = [
            WireToolCall(
                id=c.id,
                function=FunctionCall(
                    name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False, default=str)
                ),
            )
            for c in turn.calls
        ]
        call = Message(role="assistant", content=turn.text or None, tool_calls=wire)
        call.metadata["raw"] = turn.raw
        out = [tag(call, exchange, "tool_call")]
        for result in results:
            answer = Message(role="tool", tool_call_id=result.call_id, content=result.content)
            out.append(tag(answer, exchange, "tool_result"))
        return out

    def correction_messages(self, turn: ParsedTurn) -> list[Message]:
        exchange = new_exchange_id()
        if not turn.native_calls:  # the model wrote something unusable as text
            said = Message(role="assistant", content=turn.raw)
            fix = Message(role="user", content=turn.correction or "Please reply again.")
            return [tag(said, exchange, "correction"), tag(fix, exchange, "correction")]
        said = Message(
            role="assistant", content=turn.text or None, tool_calls=list(turn.native_calls)
        )
        out = [tag(said, exchange, "correction")]
        for call in turn.native_calls:
            problem = turn.call_problems.get(call.id)
            content = (
                f"Error: {problem}. Fix it and call again."
                if problem
                else "Not run: another call in the same reply was invalid. Call it again "
                "together with the corrected ones."
            )
            answer = Message(role="tool", tool_call_id=call.id, content=content)
            out.append(tag(answer, exchange, "correction"))
        return out
