"""Building a chat-completion request and checking it before anything is sent.

Every check names the parameter, the value given and what is allowed, and raises
:class:`~atdak_agents.exceptions.InvalidParameterError` — no network I/O happens for a request
that fails them. Any model name is accepted (OpenAI-compatible endpoints serve many);
``max_tokens`` is checked against a model's context window when the model has a profile.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ..exceptions import InvalidParameterError
from ..messages import Message, MessageLike, as_message
from ._wire import ChatCompletionRequest
from .profiles import ModelRegistry

__all__ = ["build_request", "check_request"]

# parameter -> (lowest, highest) allowed, from the Atdak contract
RANGES: Mapping[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}

_ROLES = "'system', 'user' or 'assistant' ('tool' only for endpoints with native tools)"
_MESSAGES = "a non-empty list of messages such as [{'role': 'user', 'content': '你好'}]"
_KNOWN_FIELDS = frozenset(ChatCompletionRequest.model_fields)


def build_request(
    *,
    model: str,
    messages: Sequence[MessageLike],
    registry: ModelRegistry,
    extra_body: Mapping[str, Any] | None = None,
    **fields: Any,
) -> ChatCompletionRequest:
    """A checked request; ``fields`` are the optional body fields (``None`` ones are left out)."""
    body = {k: v for k, v in fields.items() if v is not None}
    for key in extra_body or {}:
        if key in _KNOWN_FIELDS:
            raise InvalidParameterError(
                "extra_body", key, f"pass {key!r} as its own argument, not inside extra_body"
            )
    _check_fields(model, body, registry)  # the raw values, before pydantic could coerce them
    try:
        return ChatCompletionRequest(
            model=model, messages=_check_messages(messages), **body, **dict(extra_body or {})
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InvalidParameterError(where, error.get("input"), error["msg"]) from None


def check_request(request: ChatCompletionRequest, registry: ModelRegistry) -> None:
    """Check an already built request against the contract's ranges and the model's window."""
    if not request.messages:
        raise InvalidParameterError("messages", request.messages, _MESSAGES)
    stream = request.stream
    if _BOUNDED(request) == _UNSET and (stream is None or stream is True or stream is False):
        _check_model(request.model)  # no number to check (most requests): the model only
        return
    _check_fields(request.model, {name: getattr(request, name) for name in _CHECKED}, registry)


_CHECKED = (*RANGES, "max_tokens", "stream")  # fields of the request model: read, not dumped
_BOUNDED = operator.attrgetter(*RANGES, "max_tokens")  # the numbers among them, as a tuple
_UNSET = (None,) * (len(RANGES) + 1)


def _check_fields(model: object, fields: Mapping[str, Any], registry: ModelRegistry) -> None:
    name = _check_model(model)
    for field, (low, high) in RANGES.items():
        _check_range(field, fields.get(field), low, high)
    _check_max_tokens(fields.get("max_tokens"), name, registry)
    stream = fields.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidParameterError("stream", stream, "True or False")


def _check_model(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise InvalidParameterError("model", model, "a model name such as 'atdak-gpt-4'")
    return model


def _check_messages(messages: object) -> list[Message]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidParameterError("messages", messages, _MESSAGES)
    if not messages:
        raise InvalidParameterError("messages", messages, _MESSAGES)
    return [_check_message(i, m) for i, m in enumerate(messages)]


def _check_message(index: int, value: object) -> Message:
    try:
        return as_message(value)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"])
        where = f"messages[{index}]" + (f".{loc}" if loc else "")
        if loc == "role":
            allowed = _ROLES
        elif loc == "content":
            allowed = "a string"
        elif not loc:
            allowed = "a message: a dict with 'role' and 'content', or a Message"
        else:
            allowed = error["msg"]
        given = error.get("input", value) if loc else value
        raise InvalidParameterError(where, given, allowed) from None


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if value is None:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not low <= value <= high:  # type: ignore[arg-type,operator]
        raise InvalidParameterError(name, value, f"a number from {low:g} to {high:g}")


def _check_max_tokens(value: object, model: str, registry: ModelRegistry) -> None:
    if value is None:
        return
    profile = registry.find(model)
    whole = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if whole and (profile is None or value <= profile.context_window):  # type: ignore[operator]
        return
    if profile is None:
        raise InvalidParameterError("max_tokens", value, "an integer >= 1")
    raise InvalidParameterError(
        "max_tokens",
        value,
        f"an integer from 1 to {profile.context_window} (the context window of {model})",
    )
