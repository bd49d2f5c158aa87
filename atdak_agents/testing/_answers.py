"""How the local server writes what the Atdak contract describes: bodies, chunks, errors.

Pure functions from a :class:`~atdak_agents.testing.responders.Reply` (and the request) to bytes,
kept apart from the server's plumbing so each can be read on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from .responders import Reply

__all__ = [
    "check_body",
    "chunk_pieces",
    "completion_body",
    "error_body",
    "sse",
    "stream_events",
    "tool_calls_of",
]

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def error_body(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> bytes:
    """An OpenAI-style ``{"error": {...}}`` body."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return _dumps({"error": error}).encode()


def check_body(body: object, *, native_tools: bool) -> tuple[str, str | None] | None:
    """``(message, param)`` when the request body breaks the contract, else ``None``."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object", None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "you must provide a model parameter", "model"
    problem = _check_messages(body.get("messages"))
    if problem is not None:
        return problem
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            return (
                f"{value!r} is not a valid {name}: expected a number from {low:g} to {high:g}",
                name,
            )
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        return f"{max_tokens!r} is not a valid max_tokens: expected an integer >= 1", "max_tokens"
    if body.get("tools") is not None and not native_tools:
        return "this endpoint does not support native tools (`tools`)", "tools"
    return None


def _check_messages(messages: object) -> tuple[str, str] | None:
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty array", "messages"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object", f"messages[{i}]"
        if message.get("role") not in _ROLES:
            return (
                f"{message.get('role')!r} is not one of ['system', 'assistant', 'user'] "
                f"- 'messages.{i}.role'",
                f"messages[{i}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            return f"messages[{i}].content must be a string", f"messages[{i}].content"
    return None


def tool_calls_of(reply: Reply, request_index: int) -> list[dict[str, Any]]:
    """The reply's tool calls in OpenAI's wire form."""
    calls = []
    for i, call in enumerate(reply.tool_calls or ()):
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = _dumps(arguments)
        calls.append(
            {
                "id": str(call.get("id") or f"call_{request_index}_{i}"),
                "type": "function",
                "function": {"name": str(call["name"]), "arguments": arguments},
            }
        )
    return calls


def finish_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


def completion_body(
    reply: Reply,
    *,
    completion_id: str,
    model: str,
    created: int,
    usage: Mapping[str, int],
    empty: bool,
) -> bytes:
    """A non-streamed answer (``"choices": []`` when ``empty``)."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    calls = tool_calls_of(reply, 0)
    if calls:
        message["tool_calls"] = calls
        message["content"] = reply.text or None
    choices = (
        [] if empty else [{"index": 0, "message": message, "finish_reason": finish_reason(reply)}]
    )
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": dict(usage),
    }
    return _dumps(body).encode()


def sse(data: str) -> bytes:
    """One server-sent event carrying ``data``."""
    return f"data: {data}\n\n".encode()


def chunk_pieces(reply: Reply, chunk_size: int) -> list[str]:
    """The reply's text cut into stream chunks (at least one, possibly empty)."""
    if reply.chunks is not None:
        return list(reply.chunks) or [""]
    size = max(reply.chunk_size or chunk_size, 1)
    text = reply.text
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(
    reply: Reply,
    *,
    completion_id: str,
    model: str,
    created: int,
    chunk_size: int,
    request_index: int,
) -> Iterator[bytes]:
    """The stream's chunk events, in order (without usage, errors or ``[DONE]``)."""
    head = _dumps(
        {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
    )
    prefix = head[:-1] + ',"choices":[{"index":0,"delta":'
    calls = tool_calls_of(reply, request_index)
    pieces = chunk_pieces(reply, chunk_size)
    last = len(pieces) - 1
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        done = finish_reason(reply) if i == last and not calls else None
        yield sse(f'{prefix}{_dumps(delta)},"finish_reason":{_dumps(done)}}}]}}')
    for index, call in enumerate(calls):
        for delta in _tool_call_deltas(index, call, chunk_size * 4):
            yield sse(f'{prefix}{_dumps(delta)},"finish_reason":null}}]}}')
    if calls:
        yield sse(f'{prefix}{{}},"finish_reason":{_dumps(finish_reason(reply))}}}]}}')


def _tool_call_deltas(index: int, call: dict[str, Any], size: int) -> Iterator[dict[str, Any]]:
    function = call["function"]
    head = {
        "index": index,
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": ""},
    }
    yield {"tool_calls": [head]}
    arguments = function["arguments"]
    for i in range(0, len(arguments), size):
        yield {"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + size]}}]}


def usage_event(completion_id: str, model: str, created: int, usage: Mapping[str, int]) -> bytes:
    """A final chunk with no choices and the usage (``stream_options.include_usage``)."""
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": dict(usage),
    }
    return sse(_dumps(body))


def split_inside_characters(data: bytes) -> list[bytes]:
    """``data`` cut right after the first byte of every multibyte UTF-8 character."""
    pieces: list[bytes] = []
    start = 0
    for i in range(1, len(data)):
        if data[i] & 0xC0 == 0x80 and data[i - 1] & 0xC0 == 0xC0:  # after a lead byte
            pieces.append(data[start:i])
            start = i
    pieces.append(data[start:])
    return pieces
