"""A request's JSON body, the bytes the clients send: ``model_dump_json(exclude_none=True)``.

Nearly every request the framework sends is plain: ``Message`` objects with a role and a text,
a model name and a few numbers. Such a request is written with ``orjson`` straight from its
fields (about a quarter of pydantic's cost, and the same bytes: strings, floats and ints are
written alike by both, see ``tests/providers/test_request_body.py``). Anything else — extra
fields, native ``tools``, ``tool_calls``, a subclass, a value of an unexpected type (a request
made with ``model_construct``), an int past 64 bits or a lone surrogate — goes through pydantic
as before, with the same bytes or the same error.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..messages import Message
from ._wire import ChatCompletionRequest

__all__ = ["request_json"]

_Kinds = tuple[tuple[str, type], ...]
# The optional fields, in the order pydantic writes them, with the one type each may hold.
_OPTIONAL: _Kinds = (
    ("temperature", float),
    ("max_tokens", int),
    ("stream", bool),
    ("top_p", float),
    ("frequency_penalty", float),
    ("presence_penalty", float),
)


# A message's optional texts, in the order pydantic writes them.
_MESSAGE_TEXTS: _Kinds = (("content", str), ("name", str), ("tool_call_id", str))


def request_json(request: ChatCompletionRequest) -> bytes:
    """``request.model_dump_json(exclude_none=True)`` as bytes."""
    plain = _plain_body(request)
    if plain is not None:
        try:
            written = orjson.dumps(plain)
        except TypeError:  # (orjson.JSONEncodeError) an int past 64 bits, a lone surrogate
            pass
        else:
            # orjson's bytes keep the buffer it wrote them in (4 KiB at least, about ten times
            # a 2 KB body); a body lives as long as its request, so it is copied to its size
            return memoryview(written).tobytes()
    return request.model_dump_json(exclude_none=True).encode()


def _plain_body(request: ChatCompletionRequest) -> dict[str, Any] | None:
    """The body as plain JSON values, or ``None`` when pydantic must write it."""
    if type(request) is not ChatCompletionRequest or request.__pydantic_extra__:
        return None
    fields = request.__dict__
    model, listed = fields["model"], fields["messages"]
    if fields["tools"] is not None or fields["tool_choice"] is not None:
        return None
    if type(model) is not str or type(listed) is not list:
        return None
    messages = [_plain_message(message) for message in listed]
    if None in messages:
        return None
    body: dict[str, Any] = {"model": model, "messages": messages}
    return body if _copy_set(fields, _OPTIONAL, body) else None


def _plain_message(message: Any) -> dict[str, str] | None:
    """``message.to_wire()`` for a message of strings and no tool calls, else ``None``."""
    if type(message) is not Message or message.__pydantic_extra__:
        return None
    fields = message.__dict__
    role, content = fields["role"], fields["content"]
    if type(role) is not str or fields["tool_calls"] is not None:
        return None
    if type(content) is str and fields["name"] is None and fields["tool_call_id"] is None:
        return {"role": role, "content": content}  # nearly every message: a role and a text
    wire = {"role": role}
    return wire if _copy_set(fields, _MESSAGE_TEXTS, wire) else None


def _copy_set(fields: dict[str, Any], kinds: _Kinds, into: dict[str, Any]) -> bool:
    """Copy the fields among ``kinds`` that are set (not ``None``) into ``into``; ``False``
    when one holds another type than its own (pydantic must write that body)."""
    for name, kind in kinds:
        value = fields[name]
        if value is not None:
            if type(value) is not kind:
                return False
            into[name] = value
    return True
