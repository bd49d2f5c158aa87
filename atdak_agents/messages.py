"""Chat messages: the one message type every layer passes around.

A :class:`Message` is exactly what goes on the wire (``role`` and ``content``, plus the
OpenAI-style ``tool_calls`` / ``tool_call_id`` fields for endpoints with native tools). What the
framework knows *about* a message but must never send — which tool exchange it belongs to,
whether it is a summary, when it was stored — lives in ``metadata``, which is excluded from
serialisation. Unknown fields from a server are kept (forward compatibility).

Metadata keys the framework itself uses (users may add their own):

- ``"exchange"``: an id shared by an assistant message that calls tools and every message that
  carries those tools' results (whatever the tool protocol). History fitting keeps or drops an
  exchange as a whole, so a tool call is never separated from its result.
- ``"kind"``: what the message is for the framework: ``"tool_call"``, ``"tool_result"``,
  ``"correction"`` (a request to the model to fix its output), ``"summary"`` (stands for
  dropped turns), ``"recalled"`` (an old turn pulled back from memory).
- ``"created_at"``: a UNIX timestamp, set by memory stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EXCHANGE",
    "KIND",
    "FunctionCall",
    "Message",
    "MessageLike",
    "Role",
    "ToolCall",
    "as_message",
    "as_messages",
]

EXCHANGE = "exchange"
KIND = "kind"

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]


class FunctionCall(BaseModel):
    """The function part of an OpenAI-style tool call; ``arguments`` is a JSON string."""

    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str = "{}"


class ToolCall(BaseModel):
    """An OpenAI-style native tool call, as carried by an assistant message."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str = "function"
    function: FunctionCall

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (raises ``json.JSONDecodeError`` when invalid)."""
        return json.loads(self.function.arguments or "{}")


class Message(BaseModel):
    """One chat message: ``Message(role="user", content="你好")``.

    ``metadata`` is for the framework and the user (tool-exchange ids, summaries, timestamps);
    it is never sent to the model.
    """

    model_config = ConfigDict(extra="allow")
    # Token counts by tokenizer name, kept by atdak_agents.context.tokens: a plain slot, not a
    # pydantic private attribute (those cost every message a post-init call), so it is never
    # serialised, compared or copied, and is made on the first count.
    __slots__ = ("_token_cache",)

    role: Role
    content: str | None = ""
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)

    @property
    def text(self) -> str:
        """The content as text (``""`` when the message has none)."""
        return self.content or ""

    def to_wire(self) -> dict[str, Any]:
        """The message as the JSON object sent to the endpoint (no ``None`` fields)."""
        return self.model_dump(exclude_none=True)


MessageLike: TypeAlias = "Message | Mapping[str, Any]"


def as_message(value: MessageLike) -> Message:
    """A :class:`Message` from a message or a dict such as ``{"role": "user", "content": "hi"}``."""
    if isinstance(value, Message):
        return value
    return Message.model_validate(value)


def as_messages(values: Iterable[MessageLike]) -> list[Message]:
    """:func:`as_message` over a sequence."""
    return [as_message(v) for v in values]
