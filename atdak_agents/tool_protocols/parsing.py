"""The tolerant reader of model turns written as text: :class:`TextTurnParser`, :func:`parse_text`.

It reads the JSON action blocks the prompt protocol asks for (fenced or bare, with prose around
them, one or several calls, common JSON defects, arguments given as a JSON string) and the
formats models drift back to: Hermes ``<tool_call>``, ReAct ``Action:``/``Action Input:``/
``Final Answer:``, Mistral ``[TOOL_CALLS]`` (with or without ``[ARGS]``), Llama ``<|python_tag|>``
and Python-call lists, Qwen/XML ``<function=...><parameter=...>``, ``<invoke>`` tags, gpt-oss
harmony channels, DeepSeek and Kimi call tokens, and many key spellings. ``<think>`` blocks and
other reasoning are hidden. Only tools in the given set are accepted; anything else becomes an
``"unreadable"`` turn with a correction for the model.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..tools import ToolCall
from . import _json
from ._formats import extract
from ._scanner import Scanner, is_plain_line
from ._shapes import RawCall, ToolIndex, shape_of
from .base import ParsedTurn, ToolsLike, new_call_id, tool_index

__all__ = ["Corrector", "TextTurnParser", "default_correction", "parse_text", "resolve_calls"]

Corrector = Callable[[Sequence[str], ToolIndex], str]


def default_correction(problems: Sequence[str], tools: ToolIndex) -> str:
    """A plain correction request naming the problems and the tools."""
    listed = "; ".join(problems)
    return (
        f"Your last reply could not be used: {listed}. The tools you can call are: "
        f"{', '.join(tools.names) or '(none)'}. Please reply again."
    )


def unknown_tool_problem(name: str, tools: ToolIndex) -> str:
    names = tools.names
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
    return f"there is no tool named {name!r}{hint}"


def _arguments(raw: Any, name: str, tools: ToolIndex) -> dict[str, Any] | str:
    """The arguments as a dict, or a problem description."""
    params = list(tools.parameters.get(name, ()))
    for _ in range(3):  # a JSON string holding JSON (sometimes twice)
        if not isinstance(raw, str):
            break
        text = raw.strip()
        if not text:
            return {}
        try:
            raw = _json.loads(text)
        except ValueError:
            break
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): v for k, v in raw.items()}
    required = list(tools.required.get(name, ()))
    single = required if len(required) == 1 else params if len(params) == 1 else []
    if len(single) == 1:  # Action Input: Paris  ->  {"city": "Paris"}
        return {single[0]: raw}
    shown = raw if len(str(raw)) < 60 else f"{str(raw)[:57]}..."
    return f"the arguments of {name!r} must be a JSON object of named arguments, not {shown!r}"


def resolve_calls(
    raw_calls: Sequence[RawCall], tools: ToolIndex, *, keep_ids: bool = False
) -> tuple[list[ToolCall], list[str]]:
    """Check names and arguments: ``(calls, problems)``; unknown tools are problems."""
    calls: list[ToolCall] = []
    problems: list[str] = []
    for raw in raw_calls:
        name = tools.canonical(raw.name)
        if name not in tools:
            problems.append(unknown_tool_problem(raw.name.strip(), tools))
            continue
        arguments = _arguments(raw.arguments, name, tools)
        if isinstance(arguments, str):
            problems.append(arguments)
            continue
        call_id = raw.id if keep_ids and raw.id else new_call_id()
        calls.append(ToolCall(call_id, name, arguments))
    return calls, problems


class TextTurnParser:
    """Reads a turn written as text, delta by delta: ``feed()`` returns what may be shown."""

    def __init__(self, tools: ToolsLike, *, correct: Corrector = default_correction) -> None:
        self.tools = tool_index(tools)
        self._correct = correct
        self._scanner = Scanner(self.tools)
        self._started = False
        self._held = ""  # trailing blanks, released only when more text follows
        self._emitted: list[str] = []

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return self._scanner.text

    @property
    def emitted(self) -> str:
        """Everything :meth:`feed` returned so far."""
        return "".join(self._emitted)

    def feed(self, delta: Any) -> str:
        text = delta if isinstance(delta, str) else (getattr(delta, "content", None) or "")
        if not text:
            return ""
        self._scanner.feed(text)
        return self._release(self._scanner.take_new())

    def _release(self, new: str) -> str:
        if not self._started:
            new = new.lstrip()
            if not new:
                return ""
            self._started = True
        pending = self._held + new
        keep = pending.rstrip()
        self._held = pending[len(keep) :]
        if keep:
            self._emitted.append(keep)
        return keep

    def finish(self) -> ParsedTurn:
        """The parsed turn; for a final answer, :meth:`remainder` is what was not yet shown."""
        scanner = self._scanner
        scanner.finish()
        shown = scanner.visible.strip()
        raw = scanner.text
        if scanner.call_at is None:
            return self._final(shown or self._thought(), raw)
        found = extract(raw[scanner.call_at :], scanner.hint or "json", self.tools)
        if found.final is not None and not found.calls:
            return self._final(_join(shown, found.final), raw, scanner.hint)
        calls, problems = resolve_calls(found.calls, self.tools)
        problems = [*found.problems, *problems]
        if problems:
            return self._unreadable(problems, shown, raw, scanner.hint)
        return ParsedTurn("tool_calls", shown, tuple(calls), raw=raw, format=scanner.hint)

    def remainder(self, turn: ParsedTurn) -> str:
        """The part of a final answer that :meth:`feed` has not returned yet."""
        emitted = self.emitted
        if turn.kind != "final" or not turn.text.startswith(emitted):
            return ""
        return turn.text[len(emitted) :]

    def _thought(self) -> str:
        thoughts = [t for t in self._scanner.thoughts if t]
        return thoughts[-1] if thoughts else ""

    def _final(self, text: str, raw: str, fmt: str | None = None) -> ParsedTurn:
        if not text:
            return self._unreadable(["the reply was empty"], "", raw, fmt)
        markers = self._scanner.markers
        return ParsedTurn(
            "final", text, raw=raw, format=fmt or (markers[-1] if markers else "text")
        )

    def _unreadable(self, problems: list[str], shown: str, raw: str, fmt: str | None) -> ParsedTurn:
        return ParsedTurn(
            "unreadable",
            shown,
            problems=tuple(problems),
            correction=self._correct(problems, self.tools),
            raw=raw,
            format=fmt,
        )


def _join(before: str, answer: str) -> str:
    answer = answer.strip()
    return f"{before}\n\n{answer}" if before and answer else before or answer


def parse_text(
    text: str, tools: ToolsLike, *, correct: Corrector = default_correction
) -> ParsedTurn:
    """Read a whole turn at once (the same result as feeding it in any pieces).

    The two turns a model following the prompt protocol writes — one fenced JSON action block,
    or a line of plain prose — are recognised first, without the scanner; anything else (and
    anything that might be more than it seems) goes through it.
    """
    index = tool_index(tools)
    fast = _plain_action_block(text, index) or _plain_prose(text, index)
    if fast is not None:
        return fast
    parser = TextTurnParser(index, correct=correct)
    parser.feed(text)
    return parser.finish()


_FENCE_OPEN = "```json\n"
_FENCE_CLOSE = "\n```"
_LEADING_NAME = re.compile(r"[ \t]*([A-Za-z_][\w.]*)")


def _plain_action_block(text: str, tools: ToolIndex) -> ParsedTurn | None:
    """The turn when ``text`` is exactly one ```json block of valid calls (as asked), else None."""
    if not text.startswith(_FENCE_OPEN) or text.count("```") != 2:
        return None
    body = text.rstrip()
    if not body.endswith(_FENCE_CLOSE):
        return None
    inner = body[len(_FENCE_OPEN) : -len(_FENCE_CLOSE)]
    start = len(inner) - len(inner.lstrip())
    strict = _json.read_strict(inner, start)
    if strict is None or inner[strict[1] :].strip():
        return None
    calls = _canonical_calls(strict[0], tools)
    if calls is None:  # another shape the block may take (or a problem: the scanner says it)
        found = shape_of(strict[0], tools)
        if not isinstance(found, list):
            return None
        calls, problems = resolve_calls(found, tools)
        if problems:
            return None
    return ParsedTurn("tool_calls", "", tuple(calls), raw=text, format="json")


def _canonical_calls(value: Any, tools: ToolIndex) -> list[ToolCall] | None:
    """The calls of a JSON value in exactly the shape the prompt asks for — ``{"tool_calls":
    [{"name": ..., "arguments": {...}}, ...]}`` with known tool names — read as
    :func:`shape_of` and :func:`resolve_calls` read them (without trying every other key
    spelling first); ``None`` for anything else."""
    if type(value) is not dict or len(value) != 1:
        return None
    listed = value.get("tool_calls")
    if type(listed) is not list or not listed:
        return None
    calls = []
    for item in listed:
        if type(item) is not dict or len(item) != 2:
            return None
        name, arguments = item.get("name"), item.get("arguments")
        if type(name) is not str or type(arguments) is not dict:
            return None
        if name not in tools or tools.canonical(name) != name:
            return None
        # (a copy, as resolve_calls makes; the keys of a JSON object are strings already)
        calls.append(ToolCall(new_call_id(), name, dict(arguments)))
    return calls


def _plain_prose(text: str, tools: ToolIndex) -> ParsedTurn | None:
    """The final answer when ``text`` is one line of prose with nothing the scanner acts on."""
    shown = text.strip()
    if not shown or not is_plain_line(text):
        return None
    word = _LEADING_NAME.match(text)
    if word is not None and (word.end() == len(text) or tools.canonical(word.group(1)) in tools):
        return None  # might be (the start of) a bare Python call of a tool
    return ParsedTurn("final", shown, raw=text, format="text")
