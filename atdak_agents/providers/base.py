"""The provider seam: what every chat model looks like to the layers above.

Two operations. ``await model.complete(request)`` returns a :class:`ChatCompletion`;
``await model.stream(request)`` opens a stream (retries happen before it returns, never after a
chunk was delivered) and returns a :class:`ChatStream` to iterate with ``async for`` and close with
``async with`` or ``aclose()``. :class:`~atdak_agents.AsyncAtdakClient` implements it over HTTP;
:mod:`atdak_agents.testing` implements it in-process for unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

from ._wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest

__all__ = ["CallOptions", "ChatModel", "ChatStream"]


@dataclass(frozen=True)
class CallOptions:
    """Per-call overrides of the client's settings.

    ``max_retries``: retries after the first attempt (``None``: the client's default).
    ``deadline``: seconds for the whole call including every retry and backoff wait.
    """

    max_retries: int | None = None
    deadline: float | None = None


@runtime_checkable
class ChatStream(Protocol):
    """An open stream of chunks; releases its connection when closed or left early."""

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]: ...

    async def __aenter__(self) -> ChatStream: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat-completion requests."""

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion: ...

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatStream: ...
