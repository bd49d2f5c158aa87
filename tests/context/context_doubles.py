"""A small in-process ChatModel for the context tests (the project's scripted model lives in
atdak_agents.testing; this one only records requests and answers with a function)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType

from atdak_agents.messages import Message
from atdak_agents.providers._wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Usage,
)
from atdak_agents.providers.base import CallOptions


class OneChunkStream:
    """A stream of a single chunk carrying ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        yield ChatCompletionChunk.model_validate({"choices": [{"delta": {"content": self.text}}]})

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._chunks()

    async def __aenter__(self) -> OneChunkStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def aclose(self) -> None:
        return None


class FunctionModel:
    """Answers each request with ``answer(request)`` (which may raise); records every request."""

    def __init__(
        self,
        answer: Callable[[ChatCompletionRequest], str],
        *,
        prompt_tokens: Callable[[ChatCompletionRequest], int] | None = None,
    ) -> None:
        self.answer = answer
        self.prompt_tokens = prompt_tokens
        self.requests: list[ChatCompletionRequest] = []

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion:
        self.requests.append(request)
        text = self.answer(request)
        usage = None
        if self.prompt_tokens is not None:
            prompt = self.prompt_tokens(request)
            usage = Usage(prompt_tokens=prompt, completion_tokens=1, total_tokens=prompt + 1)
        message = Message(role="assistant", content=text)
        return ChatCompletion(model=request.model, choices=[Choice(message=message)], usage=usage)

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> OneChunkStream:
        self.requests.append(request)
        return OneChunkStream(self.answer(request))
