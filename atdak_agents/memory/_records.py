"""Messages to storable rows and back, shared by every backend so they round-trip alike.

A row is what a store keeps per message: role, content, creation time, token count, the
metadata as JSON, and the message's other wire fields (``name``, ``tool_calls``,
``tool_call_id`` and any unknown field) as JSON, or ``None`` when it has none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..context.tokens import remember_message_tokens, tokenizer_for_model
from ..exceptions import InvalidParameterError
from ..messages import Message, MessageLike, as_message
from .base import StoredMessage, message_tokens

__all__ = ["Row", "counted", "decode", "encode", "message_list"]

_CREATED_AT = "created_at"
# stored in columns of their own, or (the record fields) not part of the message at all
_RECORD_FIELDS = {"role", "content", "metadata"} | (
    StoredMessage.model_fields.keys() - Message.model_fields.keys()
)


@dataclass(frozen=True)
class Row:
    """A message ready to store."""

    role: str
    content: str | None
    created_at: float
    tokens: int
    metadata: str
    extra: str | None

    @property
    def text(self) -> str:
        """The content as text, for the full-text index."""
        return self.content or ""


def message_list(messages: MessageLike | Iterable[MessageLike]) -> list[Message]:
    """One message or several as a list of validated :class:`Message` (an error names which)."""
    if isinstance(messages, (Message, Mapping)):
        messages = [messages]
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Iterable):  # type: ignore[unreachable]
        raise InvalidParameterError(
            "messages", messages, "a Message, a dict with 'role' and 'content', or a list of them"
        )
    out = []
    for index, value in enumerate(messages):
        try:
            out.append(as_message(value))
        except (ValidationError, TypeError) as exc:
            allowed = (
                f"a Message or a dict with role (system/user/assistant/tool) and content: {exc}"
            )
            raise InvalidParameterError(f"messages[{index}]", value, allowed) from None
    return out


def encode(messages: list[Message], token_model: str | None, now: float | None = None) -> list[Row]:
    """Rows for ``messages``: JSON-checked metadata, token counts, creation times."""
    now = time.time() if now is None else now
    counts = message_tokens(messages, token_model)
    return [
        _encode_one(i, m, n, now) for i, (m, n) in enumerate(zip(messages, counts, strict=True))
    ]


def _encode_one(index: int, message: Message, tokens: int, now: float) -> Row:
    metadata = dict(message.metadata)
    stamp = metadata.pop(_CREATED_AT, None)
    usable = isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and stamp == stamp
    created_at = float(stamp) if usable else now
    extra = message.model_dump(exclude=_RECORD_FIELDS, exclude_none=True)
    return Row(
        role=message.role,
        content=message.content,
        created_at=created_at,
        tokens=tokens,
        metadata=_json(metadata, f"messages[{index}].metadata") if metadata else "{}",
        extra=_json(extra, f"messages[{index}]") if extra else None,
    )


def _json(value: dict[str, Any], parameter: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        allowed = f"JSON values only (str, int, float, bool, None, lists, dicts): {exc}"
        raise InvalidParameterError(parameter, value, allowed) from None


def decode(
    id: int,
    session_id: str,
    role: str,
    content: str | None,
    created_at: float,
    tokens: int,
    metadata: str,
    extra: str | None,
) -> StoredMessage:
    """The :class:`StoredMessage` for a stored row (``metadata`` gains ``"created_at"``)."""
    meta: dict[str, Any] = json.loads(metadata) if metadata != "{}" else {}
    meta[_CREATED_AT] = created_at
    record: dict[str, Any] = {
        "role": role,
        "content": content,
        "metadata": meta,
        "id": id,
        "session_id": session_id,
        "created_at": created_at,
        "tokens": tokens,
    }
    # pydantic-core validates as fast as model_construct builds, so validate every row
    return StoredMessage.model_validate({**json.loads(extra), **record} if extra else record)


def counted(messages: list[StoredMessage], token_model: str | None) -> list[StoredMessage]:
    """``messages`` with the token counts the store kept remembered on them: fitting a loaded
    history into a budget then counts none of them again (a long session's history is counted
    once, when stored, not on every run)."""
    name = tokenizer_for_model(token_model).name
    for message in messages:
        remember_message_tokens(message, name, message.tokens)
    return messages
