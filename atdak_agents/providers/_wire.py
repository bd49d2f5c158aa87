"""Wire types of the Atdak (OpenAI-compatible) Chat Completions API.

They mirror ``shared/api`` and accept more than it promises: unknown fields are kept (so a newer
server never breaks an older client), and a stream chunk needs nothing but ``choices[].delta``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..messages import Message

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "Delta",
    "DeltaFunctionCall",
    "DeltaToolCall",
    "Usage",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatCompletionRequest(_Wire):
    """The request body of ``POST /chat/completions``."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    # Not in the Atdak contract: OpenAI-style native tools, for endpoints that support them.
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON body (fields left unset are not sent)."""
        return self.model_dump(exclude_none=True)


class Usage(_Wire):
    """Token usage of one completion.

    ``estimated`` is atdak_agents' own flag: ``True`` when the server did not report usage (a
    streamed answer) and the figures were estimated locally.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = Field(default=False, exclude=True)


class Choice(_Wire):
    index: int = 0
    message: Message
    finish_reason: str | None = None


class ChatCompletion(_Wire):
    """A non-streamed answer: ``response.choices[0].message.content``."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None

    @property
    def text(self) -> str:
        """The first choice's content (``""`` when there is none)."""
        return self.choices[0].message.text if self.choices else ""


class DeltaFunctionCall(_Wire):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_Wire):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: DeltaFunctionCall | None = None


class Delta(_Wire):
    role: str | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(_Wire):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(_Wire):
    """One streamed chunk: ``chunk.choices[0].delta.content``.

    Only ``choices[].delta`` is relied on; ``object``, ``created``, ``model``, ``index`` and
    ``finish_reason`` are optional, and ``usage`` appears only when a server sends it.
    """

    id: str = ""
    object: str | None = None
    created: int | None = None
    model: str | None = None
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
