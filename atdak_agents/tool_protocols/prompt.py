"""The ``prompt`` tool protocol: tools described in the system prompt, calls read from text.

For endpoints without a ``tools`` parameter (the four Atdak models). The system prompt lists each
tool with its JSON schema and asks for calls as one JSON action block::

    ```json
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    ```

and for the final answer as plain text. Results go back as one user-role message clearly marked
``[tool results]``; the assistant turn is kept in history in that canonical form, whatever
format the model actually used, which nudges a drifting model back to the protocol.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..messages import Message
from ..tools import Tool, ToolResult
from ._shapes import ToolIndex
from .base import ParsedTurn, PreparedRequest, ToolsLike, new_exchange_id, tag
from .parsing import TextTurnParser, parse_text

__all__ = ["RESULTS_HEADER", "PromptProtocol"]

RESULTS_HEADER = "[tool results]"

_HOW_TO = """\
## How to use the tools

To call tools, reply with only a JSON block like this one, and nothing after it:

```json
{example}
```

Put several calls in "tool_calls" to run them at once. Use the tool names and argument names \
exactly as listed; no other tools exist. The results will come back in a message that starts \
with "{header}" (written by the tools, not by the user); then call more tools or answer.

When you can answer, reply to the user in plain text, without any JSON block."""

# json.dumps(value, ensure_ascii=False, default=str), without making an encoder every call
_CALL_JSON = json.JSONEncoder(ensure_ascii=False, default=str)

_PLACEHOLDERS: dict[str, Any] = {
    "string": "...",
    "integer": 1,
    "number": 1.0,
    "boolean": True,
    "array": [],
    "object": {},
}


def _example_arguments(tool: Tool[Any, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = tool.parameters.get("properties", {})
    names = tool.required_parameters or list(properties)[:1]
    return {n: _PLACEHOLDERS.get(str(properties.get(n, {}).get("type")), "...") for n in names}


def _compact(schema: dict[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def _with_content(message: Message, content: str) -> Message:
    """A copy of ``message`` with other content (its metadata copied too; a fresh token cache)."""
    fields = message.model_dump()
    fields["content"] = content
    return Message(**fields, metadata=copy.deepcopy(message.metadata))


class PromptProtocol:
    """Tools through the prompt; ``instructions`` replaces the "how to use the tools" part."""

    name = "prompt"

    def __init__(self, *, instructions: str | None = None) -> None:
        self.instructions = instructions
        self._rendered: tuple[tuple[object, ...], str] | None = None  # (key, text)
        self._system: tuple[str, str, Message] | None = None  # (instructions, block, message)

    # ------------------------------------------------------------------ request

    def render_tools(self, tools: Iterable[Tool[Any, Any]]) -> str:
        """The text added to the system prompt: each tool, then how to call them.

        The last text is kept and given again for the same tools (the same objects, names,
        descriptions and parameter schemas) and instructions, since an agent sends it every turn:
        treat a tool's schema as immutable (replace it rather than editing it in place).
        """
        items = list(tools)
        # What the text is made of (compared by value: a tool has no __eq__, so itself by
        # identity; an equal schema renders the same text)
        key = (self.instructions, [(t, t.name, t.description, t.parameters) for t in items])
        last = self._rendered
        if last is not None and last[0] == key:
            return last[1]
        text = self._render(items)
        self._rendered = (key, text)
        return text

    def _render(self, items: list[Tool[Any, Any]]) -> str:
        parts = ["# Tools", "", "You can use these tools (arguments are given as JSON Schema):"]
        for item in items:
            parts += ["", f"## {item.name}"]
            if item.description:
                parts.append(item.description)
            parts.append(f"Arguments: {_compact(item.parameters)}")
        example = {
            "tool_calls": [{"name": items[0].name, "arguments": _example_arguments(items[0])}]
        }
        how_to = self.instructions or _HOW_TO.format(
            example=json.dumps(example, ensure_ascii=False), header=RESULTS_HEADER
        )
        return "\n".join([*parts, "", how_to])

    def prepare(
        self, messages: Sequence[Message], tools: Iterable[Tool[Any, Any]]
    ) -> PreparedRequest:
        """The messages with the tools described in the (first) system message.

        The given messages are never edited: the system message is replaced by a copy, the
        others are passed on as they are (treat messages as immutable, as history fitting does).
        """
        items = list(tools)
        out = list(messages)
        if not items:
            return PreparedRequest(out)
        block = self.render_tools(items)
        if out and out[0].role == "system":
            out[0] = self._system_message(out[0], block)
        else:
            out.insert(0, Message(role="system", content=block))
        return PreparedRequest(out)

    def _system_message(self, system: Message, block: str) -> Message:
        """``system`` with the tools block added: a copy, or for a plain system message (only
        a role and a text) the same copy as last time when its text and the block are too."""
        text = system.text
        plain = not system.metadata and system.name is None and not system.model_extra
        if plain and system.tool_calls is None and system.tool_call_id is None:
            last = self._system
            if last is not None and last[1] is block and last[0] == text:
                return last[2]
            made = Message(role="system", content=f"{text.rstrip()}\n\n{block}" if text else block)
            self._system = (text, block, made)
            return made
        return _with_content(system, f"{text.rstrip()}\n\n{block}" if text else block)

    # ------------------------------------------------------------------ reading turns

    def parser(self, tools: ToolsLike) -> TextTurnParser:
        return TextTurnParser(tools, correct=self.correction_text)

    def parse(self, message: Message, tools: ToolsLike) -> ParsedTurn:
        return parse_text(message.text, tools, correct=self.correction_text)

    def correction_text(self, problems: Sequence[str], tools: ToolIndex) -> str:
        """What the model is told when its reply could not be used."""
        names = tools.names
        example = {"tool_calls": [{"name": names[0] if names else "tool", "arguments": {}}]}
        return (
            f"[format error] Your last reply could not be used: {'; '.join(problems)}.\n"
            f"The tools you can call are: {', '.join(names) or '(none)'}.\n"
            "To call tools, reply with only a JSON block:\n"
            f"```json\n{json.dumps(example)}\n```\n"
            '(put the real arguments in "arguments"). To answer the user, reply in plain text.'
        )

    # ------------------------------------------------------------------ history

    def answer_message(self, turn: ParsedTurn) -> Message:
        return Message(role="assistant", content=turn.text)

    def call_text(self, turn: ParsedTurn) -> str:
        """The assistant turn in the protocol's own form (prose, then the JSON block)."""
        block = {"tool_calls": [{"name": c.name, "arguments": c.arguments} for c in turn.calls]}
        fenced = f"```json\n{_CALL_JSON.encode(block)}\n```"
        return f"{turn.text}\n\n{fenced}" if turn.text else fenced

    def results_text(self, results: Sequence[ToolResult]) -> str:
        """The user-role message that carries tool results back to the model."""
        parts = [f"{RESULTS_HEADER} (written by the tools you called, not by the user)"]
        for result in results:
            error = ' error="true"' if result.is_error else ""
            body = result.content.replace("</result>", "<\\/result>")
            parts.append(
                f'<result tool="{result.name}" id="{result.call_id}"{error}>\n{body}\n</result>'
            )
        parts.append("Call more tools if you need to, or answer the user in plain text.")
        return "\n".join(parts)

    def tool_messages(self, turn: ParsedTurn, results: Sequence[ToolResult]) -> list[Message]:
        exchange = new_exchange_id()
        call = Message(role="assistant", content=self.call_text(turn))
        call.metadata["raw"] = turn.raw
        answer = Message(role="user", content=self.results_text(results))
        return [tag(call, exchange, "tool_call"), tag(answer, exchange, "tool_result")]

    def correction_messages(self, turn: ParsedTurn) -> list[Message]:
        exchange = new_exchange_id()
        said = Message(role="assistant", content=turn.raw)
        fix = Message(role="user", content=turn.correction or "Please reply again.")
        return [tag(said, exchange, "correction"), tag(fix, exchange, "correction")]
