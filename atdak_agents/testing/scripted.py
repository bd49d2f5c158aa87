"""An in-process chat model that answers from a script: the test double for the layers above.

It implements the :class:`~atdak_agents.providers.base.ChatModel` seam without any network::

    model = ScriptedModel(["classify: shipping", Reply(tool_calls=[{"name": "lookup", ...}])])
    answer = await model.complete(request)
    ...
    model.assert_done()            # or: with ScriptedModel([...]) as model: ...

It is loud on purpose: a call after the script ran out raises :class:`ScriptError` naming the
call, and :meth:`ScriptedModel.assert_done` (or leaving its ``with`` block) raises when steps
were left unused. A step is a string, a :class:`~atdak_agents.testing.Reply` (text, chunks, tool
calls, usage, an error ``status`` raised as the matching error, a ``fault`` such as
``"drop_mid_stream"``), an exception to raise, or a callable of the request returning one of
those. Every request is kept in ``requests``. There are no retries: each call takes one step.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TypeAlias

from ..exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    IncompleteStreamError,
    StreamError,
)
from ..messages import FunctionCall, Message, ToolCall
from ..providers._errors import error_from_payload
from ..providers._wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
    Usage,
)
from ..providers.base import CallOptions
from ..providers.streaming import StreamAccumulator, estimate_tokens
from . import _answers
from .responders import Reply

__all__ = ["ScriptError", "ScriptStep", "ScriptedModel", "ScriptedStream"]

ScriptStep: TypeAlias = (
    "str | Reply | BaseException | Callable[[ChatCompletionRequest], str | Reply | BaseException]"
)


class ScriptError(AssertionError):
    """A scripted model was called more often, or less often, than its script says."""


class ScriptedModel:
    """A :class:`~atdak_agents.ChatModel` answering from a script of steps, in order.

    ``chunk_size``: characters per streamed chunk (unless a reply gives its own chunks).
    ``stream_usage``: whether streams carry a usage chunk (the Atdak API's do not, so the
    default is ``False`` and the layers above must estimate, as they would in production).
    """

    def __init__(
        self, steps: Iterable[ScriptStep], *, chunk_size: int = 4, stream_usage: bool = False
    ) -> None:
        self._steps: deque[ScriptStep] = deque(steps)
        self._total = len(self._steps)
        self.chunk_size = chunk_size
        self.stream_usage = stream_usage
        self.requests: list[ChatCompletionRequest] = []

    @property
    def remaining(self) -> int:
        """Script steps not used yet."""
        return len(self._steps)

    def assert_done(self) -> None:
        """Raise :class:`ScriptError` if some steps of the script were never used."""
        if self._steps:
            unused = ", ".join(_describe(step) for step in list(self._steps)[:3])
            raise ScriptError(
                f"ScriptedModel: {len(self._steps)} of {self._total} script steps were never used "
                f"(next: {unused}); the code under test made fewer model calls than scripted"
            )

    async def complete(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ChatCompletion:
        """Answer ``request`` with the next step."""
        reply = await self._next(request)
        if reply.fault == "empty_choices":
            raise APIResponseValidationError(
                "the scripted answer has no choices (an empty `choices` list)"
            )
        if reply.fault in (
            "drop_mid_stream",
            "malformed_sse",
            "no_done",
            "stream_error",
            "split_utf8",
        ):
            raise ScriptError(
                f"ScriptedModel: fault {reply.fault!r} only applies to stream() calls"
            )
        message = _message(reply, len(self.requests))
        return ChatCompletion(
            id=f"chatcmpl-scripted-{len(self.requests)}",
            created=int(time.time()),
            model=request.model,
            choices=[Choice(message=message, finish_reason=_answers.finish_reason(reply))],
            usage=_usage(reply, request),
        )

    async def stream(
        self, request: ChatCompletionRequest, *, options: CallOptions | None = None
    ) -> ScriptedStream:
        """Answer ``request`` with the next step, as an open stream of chunks."""
        reply = await self._next(request)
        chunks = _chunks(reply, request, len(self.requests), self.chunk_size)
        if self.stream_usage or reply.stream_usage:
            chunks.append(
                ChatCompletionChunk(id=chunks[0].id, choices=[], usage=_usage(reply, request))
            )
        return ScriptedStream(chunks, reply, request)

    async def _next(self, request: ChatCompletionRequest) -> Reply:
        self.requests.append(request)
        if not self._steps:
            last = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
            raise ScriptError(
                f"ScriptedModel got an unexpected call #{len(self.requests)} (its script has "
                f"{self._total} steps); model {request.model!r}, last user message {last[:80]!r}"
            )
        step = self._steps.popleft()
        if callable(step) and not isinstance(step, BaseException):
            step = step(request)
        if isinstance(step, BaseException):
            raise step
        reply = Reply(text=step) if isinstance(step, str) else step
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return await _failures(reply)

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.assert_done()

    def __repr__(self) -> str:
        left = f"{self.remaining} of {self._total} steps left"
        return f"ScriptedModel({left}, {len(self.requests)} calls)"


async def _failures(reply: Reply) -> Reply:
    """Raise what a failing reply stands for (an error status, a lost connection, a hang)."""
    if reply.fault == "hang":
        await asyncio.sleep(3600)
    if reply.fault == "disconnect":
        raise APIConnectionError("the scripted connection was closed without an answer")
    if reply.status >= 400 and reply.fault != "stream_error":
        raise _status_error(reply)
    return reply


def _status_error(reply: Reply) -> Exception:
    status = reply.status if reply.status >= 400 else 500
    error = {
        "message": reply.error or f"error {status}",
        "type": reply.error_type,
        "code": reply.error_code,
    }
    headers = {"retry-after": str(reply.retry_after)} if reply.retry_after is not None else {}
    return error_from_payload(status, {"error": error}, headers=headers)


def _describe(step: ScriptStep) -> str:
    if isinstance(step, str):
        return repr(step[:40])
    if isinstance(step, Reply):
        return (
            f"Reply(text={step.text[:40]!r}{', fault=' + repr(step.fault) if step.fault else ''})"
        )
    return repr(step)[:60]


def _message(reply: Reply, index: int) -> Message:
    calls = [
        ToolCall(
            id=c["id"],
            function=FunctionCall(name=c["function"]["name"], arguments=c["function"]["arguments"]),
        )
        for c in _answers.tool_calls_of(reply, index)
    ]
    return Message(
        role="assistant",
        content=reply.text if reply.text or not calls else None,
        tool_calls=calls or None,
    )


def _usage(reply: Reply, request: ChatCompletionRequest) -> Usage:
    if reply.usage is not None:
        return Usage.model_validate(dict(reply.usage))
    prompt = estimate_tokens(request.messages, request.model)
    completion = max(estimate_tokens(reply.text, request.model), 1)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _chunks(
    reply: Reply, request: ChatCompletionRequest, index: int, chunk_size: int
) -> list[ChatCompletionChunk]:
    cid = f"chatcmpl-scripted-{index}"
    pieces = _answers.chunk_pieces(reply, chunk_size)
    calls = _answers.tool_calls_of(reply, index)
    finish = _answers.finish_reason(reply)
    chunks = [
        ChatCompletionChunk(
            id=cid,
            model=request.model,
            choices=[
                ChunkChoice(
                    delta=Delta(content=p),
                    finish_reason=finish if i == len(pieces) - 1 and not calls else None,
                )
            ],
        )
        for i, p in enumerate(pieces)
    ]
    for i, call in enumerate(calls):
        function = DeltaFunctionCall(
            name=call["function"]["name"], arguments=call["function"]["arguments"]
        )
        delta = Delta(
            tool_calls=[DeltaToolCall(index=i, id=call["id"], type="function", function=function)]
        )
        chunks.append(
            ChatCompletionChunk(id=cid, model=request.model, choices=[ChunkChoice(delta=delta)])
        )
    if calls:
        chunks.append(
            ChatCompletionChunk(
                id=cid, model=request.model, choices=[ChunkChoice(finish_reason=finish)]
            )
        )
    if reply.fault == "empty_choices":
        chunks.insert(0, ChatCompletionChunk(id=cid, choices=[]))
    return chunks


class ScriptedStream:
    """An open scripted stream: ``async for chunk in stream``, ``await stream.collect()``.

    Faults of the reply happen where a real stream would show them: after ``fault_after``
    chunks for ``"drop_mid_stream"``, ``"malformed_sse"`` and ``"stream_error"``, at the end for
    ``"no_done"``. Chunks without choices are not yielded (like the HTTP client's streams).
    """

    def __init__(
        self, chunks: list[ChatCompletionChunk], reply: Reply, request: ChatCompletionRequest
    ) -> None:
        self._chunks = deque(chunks)
        self._reply = reply
        self._accumulator = StreamAccumulator(request)
        self.closed = False

    @property
    def text(self) -> str:
        return self._accumulator.text

    @property
    def received_chunks(self) -> int:
        return self._accumulator.chunks

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        while (chunk := self._next()) is not None:
            if self._reply.chunk_delay:
                await asyncio.sleep(self._reply.chunk_delay)
            if chunk.choices:
                yield chunk

    def _next(self) -> ChatCompletionChunk | None:
        fault = self._reply.fault
        breaks = fault in ("drop_mid_stream", "malformed_sse", "stream_error")
        if self.closed or (breaks and self.received_chunks >= self._reply.fault_after):
            self._break()
            return None
        if not self._chunks:
            if fault == "no_done":
                raise IncompleteStreamError(
                    "the scripted stream ended without `data: [DONE]`",
                    received_chunks=self.received_chunks,
                    received_text=self.text,
                )
            return None
        chunk = self._chunks.popleft()
        self._accumulator.add(chunk)
        return chunk

    def _break(self) -> None:
        fault = self._reply.fault
        if self.closed or fault not in ("drop_mid_stream", "malformed_sse", "stream_error"):
            return
        self.closed = True
        if fault == "stream_error":
            raise _status_error(self._reply)
        what = (
            "broke"
            if fault == "drop_mid_stream"
            else "carried data that is not a chat-completion chunk"
        )
        raise StreamError(
            f"the scripted stream {what}",
            received_chunks=self.received_chunks,
            received_text=self.text,
        )

    async def collect(self) -> ChatCompletion:
        """Read the rest and return the whole answer (usage estimated unless the stream had it)."""
        async for _chunk in self:
            pass
        return self._accumulator.completion()

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> ScriptedStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
