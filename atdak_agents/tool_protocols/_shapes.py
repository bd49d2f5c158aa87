"""The shapes a tool call takes once its text is read: JSON objects with many key spellings,
lists of them, Python call expressions; and turning each into a :class:`RawCall`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _json

__all__ = [
    "ARGUMENT_KEYS",
    "FINAL_ANSWER_NAMES",
    "KNOWN_KEYS",
    "NAME_KEYS",
    "FinalAnswer",
    "RawCall",
    "ToolIndex",
    "calls_from_python",
    "read_shape",
    "shape_of",
]

NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action", "recipient_name")
ARGUMENT_KEYS = (
    "arguments",
    "args",
    "parameters",
    "params",
    "tool_input",
    "action_input",
    "input",
    "tool_args",
    "kwargs",
    "argument",
)
LIST_KEYS = ("tool_calls", "calls", "tool_uses", "function_calls", "actions", "tools")
FINAL_KEYS = ("final_answer", "final answer", "finalanswer", "answer", "final")
FINAL_ANSWER_NAMES = frozenset({"final_answer", "final answer", "finalanswer", "final", "answer"})
KNOWN_KEYS = frozenset(
    {*NAME_KEYS, *ARGUMENT_KEYS, *LIST_KEYS, *FINAL_KEYS, "id", "type", "call_id", "thought"}
)
_ANSWER_ARGUMENTS = ("answer", "text", "content", "output", "final_answer", "response", "result")


@dataclass(frozen=True)
class ToolIndex:
    """What the parser knows of the tools: names and parameter names (in signature order)."""

    parameters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    required: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[Any]) -> ToolIndex:
        """From :class:`~atdak_agents.tools.Tool` objects (anything with the same attributes)."""
        items = list(tools)
        return cls(
            {t.name: list(t.parameter_names) for t in items},
            {t.name: list(t.required_parameters) for t in items},
        )

    @property
    def names(self) -> list[str]:
        return list(self.parameters)

    def __contains__(self, name: object) -> bool:
        return name in self.parameters

    def canonical(self, name: str) -> str:
        """``name`` without a namespace a model may add (``functions.get_weather``)."""
        name = name.strip().strip("`'\"").strip()
        if name in self.parameters or "." not in name:  # (every namespace ends with a dot)
            return name
        for prefix in ("functions.", "function.", "tools.", "tool."):
            if name.startswith(prefix) and name[len(prefix) :] in self.parameters:
                return name[len(prefix) :]
        return name


@dataclass(frozen=True)
class RawCall:
    """A call as read from text, before its name and arguments are checked."""

    name: str
    arguments: Any
    id: str | None = None


@dataclass(frozen=True)
class FinalAnswer:
    """A final answer given in a structured shape (``{"final_answer": ...}`` and the like)."""

    text: str


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    lowered = {str(k).lower(): k for k in mapping}
    for key in keys:
        if key in lowered:
            return lowered[key], mapping[lowered[key]]
    return None, None


def _answer_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        _, text = _first(value, _ANSWER_ARGUMENTS)
        if isinstance(text, str):
            return text
        if len(value) == 1:
            only = next(iter(value.values()))
            return only if isinstance(only, str) else None
    return None


def _call_from_mapping(item: Mapping[str, Any], tools: ToolIndex) -> RawCall | FinalAnswer | None:
    function = item.get("function")
    if isinstance(function, Mapping):  # OpenAI shape: {"type": "function", "function": {...}}
        inner = _call_from_mapping(function, tools)
        if isinstance(inner, RawCall) and inner.id is None and isinstance(item.get("id"), str):
            return RawCall(inner.name, inner.arguments, item["id"])
        return inner
    name_key, name = _first(item, NAME_KEYS)
    if name_key is None and len(item) == 1:  # {"get_weather": {"city": "Paris"}}
        ((only, value),) = item.items()
        if tools.canonical(str(only)) in tools and isinstance(value, (Mapping, type(None))):
            return RawCall(str(only), value)
    if not isinstance(name, str) or not name.strip():
        return None
    args_key, arguments = _first(item, ARGUMENT_KEYS)
    call_id = item.get("id") if isinstance(item.get("id"), str) else None
    if name.strip().lower() in FINAL_ANSWER_NAMES and tools.canonical(name) not in tools:
        text = _answer_text(arguments)
        return FinalAnswer(text) if text is not None else None
    if args_key is None:
        if tools.canonical(name) not in tools:
            return None  # {"name": "Alice", "age": 3} is data, not a call
        rest = {k: v for k, v in item.items() if k not in (name_key, "id", "type", "thought")}
        arguments = rest
    return RawCall(name, arguments, call_id)


def shape_of(value: Any, tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    """The calls (or final answer) a parsed JSON value stands for; ``None`` when it is data."""
    if isinstance(value, Mapping):
        list_key, listed = _first(value, LIST_KEYS)
        if list_key is not None and isinstance(listed, list) and listed:
            return _calls_from_list(listed, tools)
        final_key, final = _first(value, FINAL_KEYS)
        if final_key is not None and isinstance(final, str) and len(value) <= 2:
            return FinalAnswer(final)
        found = _call_from_mapping(value, tools)
        if isinstance(found, FinalAnswer):
            return found
        return [found] if found is not None else None
    if isinstance(value, list) and value:
        return _calls_from_list(value, tools)
    return None


def _calls_from_list(items: list[Any], tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    calls: list[RawCall] = []
    for item in items:
        found = _call_from_mapping(item, tools) if isinstance(item, Mapping) else None
        if isinstance(found, FinalAnswer) and len(items) == 1:
            return found
        if not isinstance(found, RawCall):
            return None
        calls.append(found)
    return calls


def read_shape(text: str, tools: ToolIndex) -> list[RawCall] | FinalAnswer | None:
    """:func:`shape_of` the JSON that is all of ``text`` (``None`` when it is not JSON)."""
    try:
        value = _json.loads(text)
    except ValueError:
        return None
    return shape_of(value, tools)


# --------------------------------------------------------------------------- Python calls


def calls_from_python(text: str, tools: ToolIndex) -> list[RawCall] | None:
    """``[get_weather(city="Paris"), ...]`` or ``get_weather(city="Paris")`` as calls.

    Only literal arguments are accepted (nothing is evaluated); positional arguments are mapped
    to the tool's parameters in order. ``None`` when the text is not such an expression.
    """
    text = text.strip().rstrip(";").strip()
    if not text or len(text) > 100_000:
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls: list[RawCall] = []
    for node in nodes:
        call = _python_call(node, tools)
        if call is None:
            return None
        calls.append(call)
    return calls or None


def _callee(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # functions.get_weather(...) or brave_search.call(...)
        if node.attr == "call" and isinstance(node.value, ast.Name):
            return node.value.id
        base = _callee(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _python_call(node: ast.expr, tools: ToolIndex) -> RawCall | None:
    if not isinstance(node, ast.Call):
        return None
    name = _callee(node.func)
    if name is None:
        return None
    try:
        keywords = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        positional = [ast.literal_eval(arg) for arg in node.args]
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None
    if len(keywords) != len(node.keywords):
        return None  # **kwargs
    params = list(tools.parameters.get(tools.canonical(name), ()))
    if not keywords and len(positional) == 1 and isinstance(positional[0], dict):
        only = positional[0]
        if only and set(only) <= set(params):
            return RawCall(name, only)  # get_weather({"city": "Paris"})
    if len(positional) > len(params):
        return None
    return RawCall(name, {**dict(zip(params, positional, strict=False)), **keywords})
