"""Streamed answers: from SSE bytes to chunks, and from chunks to a whole answer.

- :class:`ChunkDecoder` turns the bytes of a ``text/event-stream`` body into
  :class:`~atdak_agents.providers._wire.ChatCompletionChunk` objects, stops at ``data: [DONE]``,
  raises an ``{"error": ...}`` object sent inside the stream as the matching error, and rejects
  data that is not a chunk.
- :class:`StreamAccumulator` adds chunks up into a :class:`ChatCompletion`. Its ``usage`` is the
  server's when the stream carried one, and otherwise an estimate marked ``estimated=True`` —
  never zero tokens.
- :class:`AsyncCompletionStream` / :class:`CompletionStream` are what
  ``client.chat.completions.create(..., stream=True)`` returns: iterate them, use them as context
  managers, or ``collect()`` the rest into a ``ChatCompletion``. They release the connection when
  the stream ends, when closed, or when the caller leaves the loop early. A connection lost
  mid-stream raises :class:`~atdak_agents.exceptions.StreamError` saying how much arrived; a
  stream is never retried once it has delivered a chunk.

Chunks without any ``choices`` (some servers send their usage that way) are not yielded, so
``chunk.choices[0]`` is always safe; their usage is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from .._timers import timeout as limit_scope
from ..context.tokens import count_tokens
from ..exceptions import (
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    ProviderError,
    StreamError,
)
from ..messages import FunctionCall, Message, MessageLike, ToolCall
from ._errors import (
    connection_error,
    describe_failure,
    error_from_payload,
    is_transport_failure,
    redact,
)
from ._http import is_encoded
from ._sse import SSEDecoder
from ._wire import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice, Usage
from .profiles import default_registry

__all__ = [
    "AsyncCompletionStream",
    "ChunkDecoder",
    "CompletionStream",
    "StreamAccumulator",
    "estimate_tokens",
    "estimate_usage",
]

_DONE = "[DONE]"
_DRAIN_LIMIT = 64 * 1024  # bytes read after [DONE] to keep the connection; more: close it
_DRAIN_SECONDS = 1.0

# error ``code`` / ``type`` strings of OpenAI-style bodies -> the HTTP status they stand for
_STATUS_OF_CODE = {
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
}


class _NotAChunk(ValueError):
    """An event whose data is not a chat-completion chunk."""


def _in_band_status(error: object) -> int:
    if isinstance(error, dict):
        for key in ("status", "status_code", "code"):
            value = error.get(key)
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, int) and 400 <= value <= 599:
                return value
        for key in ("code", "type"):
            status = _STATUS_OF_CODE.get(str(error.get(key)))
            if status is not None:
                return status
    return 500


class ChunkDecoder:
    """SSE bytes in, chunks out; ``done`` once ``data: [DONE]`` arrived."""

    def __init__(self, *, secret: str | None = None) -> None:
        self._sse = SSEDecoder()
        self._secret = secret
        self.done = False

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        """Decode one network read. Raises the matching error for an in-stream error object."""
        chunks, failure = self.decode(data)
        if failure is not None:
            raise failure
        return chunks

    def decode(self, data: bytes) -> tuple[list[ChatCompletionChunk], Exception | None]:
        """Like :meth:`feed`, but returns the chunks that came before a failure with it."""
        chunks: list[ChatCompletionChunk] = []
        for event in self._sse.feed(data):
            if self.done:
                break
            try:
                chunk = self._decode(event.data, event.event)
            except (APIStatusError, _NotAChunk) as exc:
                return chunks, exc
            if chunk is None:
                self.done = True
            else:
                chunks.append(chunk)
        return chunks, None

    def finish(self) -> bool:
        """At the end of the body: whether the stream was complete (``[DONE]`` seen).

        A final ``data: [DONE]`` without its closing blank line is accepted.
        """
        if not self.done:
            pending = self._sse.pending()
            self.done = pending is not None and pending.data.strip() == _DONE
        return self.done

    def _decode(self, data: str, event: str) -> ChatCompletionChunk | None:
        if data[:1] == "[" and data.strip() == _DONE:
            return None
        if event == "error":
            raise self._error(data)
        try:
            chunk = ChatCompletionChunk.model_validate_json(data)
        except ValidationError:
            raise self._error(data) from None
        if chunk.model_extra and "error" in chunk.model_extra:
            raise self._error(data)
        return chunk

    def _error(self, data: str) -> APIStatusError | _NotAChunk:
        text = redact(data, self._secret)
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            return error_from_payload(_in_band_status(payload["error"]), payload, text)
        return _NotAChunk(text[:300])


class _ChoiceBuilder:
    """One choice being added up from its deltas."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.role = "assistant"
        self.finish_reason: str | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: Any, finish_reason: str | None) -> None:
        if delta.content:
            self.parts.append(delta.content)
        if delta.role:
            self.role = delta.role
        if finish_reason:
            self.finish_reason = finish_reason
        for call in delta.tool_calls or ():
            entry = self.tool_calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = call.id or entry["id"]
            if call.function is not None:
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""

    def message(self) -> Message:
        calls = [
            ToolCall(
                id=c["id"] or f"call_{i}",
                function=FunctionCall(name=c["name"], arguments=c["arguments"] or "{}"),
            )
            for i, c in sorted(self.tool_calls.items())
        ]
        text = "".join(self.parts)
        return Message.model_validate(
            {
                "role": self.role,
                "content": text if text or not calls else None,
                "tool_calls": calls or None,
            }
        )


class StreamAccumulator:
    """Adds streamed chunks up into one :class:`ChatCompletion`.

    ``request`` (when given) is used to estimate prompt tokens if the server sends no usage.
    """

    def __init__(self, request: ChatCompletionRequest | None = None) -> None:
        self.request = request
        self.chunks = 0
        self.usage: Usage | None = None
        self._id = ""
        self._model = ""
        self._created = 0
        self._choices: dict[int, _ChoiceBuilder] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Take one chunk into account."""
        self.chunks += 1
        self._id = self._id or chunk.id
        self._model = self._model or chunk.model or ""
        self._created = self._created or chunk.created or 0
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            builder = self._choices.get(choice.index)
            if builder is None:
                builder = self._choices[choice.index] = _ChoiceBuilder()
            builder.add(choice.delta, choice.finish_reason)

    @property
    def text(self) -> str:
        """The first choice's text received so far."""
        builder = self._choices.get(min(self._choices, default=0))
        return "".join(builder.parts) if builder else ""

    def completion(self) -> ChatCompletion:
        """The whole answer so far, with the server's usage or an estimate (``estimated=True``)."""
        model = self._model or (self.request.model if self.request else "")
        choices = [
            Choice(index=i, message=b.message(), finish_reason=b.finish_reason)
            for i, b in sorted(self._choices.items())
        ]
        return ChatCompletion(
            id=self._id,
            created=self._created or int(time.time()),
            model=model,
            choices=choices,
            usage=self.usage or estimate_usage(self.request, choices, model),
        )


def estimate_tokens(text_or_messages: str | Sequence[MessageLike], model: str) -> int:
    """:func:`~atdak_agents.context.tokens.count_tokens` with the model's tokenizer when the
    model has a profile, and the generic estimator for any other model name."""
    known = model if default_registry.find(model) is not None else None
    return count_tokens(text_or_messages, known)


def estimate_usage(
    request: ChatCompletionRequest | None, choices: list[Choice], model: str
) -> Usage:
    """Usage estimated with :func:`~atdak_agents.context.tokens.count_tokens`, marked
    ``estimated=True``; at least one completion token (an answer costs its end token)."""
    prompt = estimate_tokens(request.messages, model) if request else 0
    completion = 0
    for choice in choices:
        completion += estimate_tokens(choice.message.text, model)
        for call in choice.message.tool_calls or ():
            completion += estimate_tokens(call.function.name + call.function.arguments, model)
    completion = max(completion, 1)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        estimated=True,
    )


class _StreamState:
    """What the sync and async streams share: decoding, accumulating, counting, failing clearly."""

    def __init__(
        self,
        response: httpx.Response,
        request: ChatCompletionRequest,
        *,
        url: str,
        secret: str | None,
        ends_at: float | None,
    ) -> None:
        self.response = response
        self.request_id: str | None = response.headers.get("x-request-id")
        self._url = url
        self._secret = secret
        self._ends_at = ends_at
        self._decoder = ChunkDecoder(secret=secret)
        self._accumulator = StreamAccumulator(request)
        self._pending: deque[ChatCompletionChunk] = deque()
        self._finished = False
        self._opened = False
        self._deferred: Exception | None = None
        self.closed = False

    @property
    def received_chunks(self) -> int:
        """Chunks received from the server so far."""
        return self._accumulator.chunks

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._accumulator.text

    @property
    def usage(self) -> Usage | None:
        """The usage the server sent in the stream, if it sent any (see ``collect()``)."""
        return self._accumulator.usage

    def _absorb(self, data: bytes) -> None:
        chunks, failure = self._decoder.decode(data)
        for chunk in chunks:
            self._accumulator.add(chunk)
            if chunk.choices:
                self._pending.append(chunk)
        if self._decoder.done:
            self._finished = True
        if failure is not None:  # raised once the chunks before it were delivered
            self._finished = True
            self._deferred = self._stream_failure(failure)

    def _stream_failure(self, failure: Exception) -> Exception:
        if isinstance(failure, _NotAChunk):
            return self._stream_error(
                f"the stream from {self._url} carried data that is not a chat-completion chunk: "
                f"{failure}",
                StreamError,
            )
        return failure

    def _raise_failure(self) -> None:
        failure, self._deferred = self._deferred, None
        if failure is not None:
            raise failure

    def _end_of_body(self) -> None:
        self._finished = True
        if not self._decoder.finish():
            raise self._stream_error(
                f"the stream from {self._url} ended without `data: [DONE]`: the answer may be "
                "truncated",
                IncompleteStreamError,
            )

    def _failure(self, exc: BaseException) -> ProviderError:
        if not self._opened:  # nothing delivered yet: a plain (retryable) connection error
            return connection_error(
                exc, url=self._url, phase="reading the stream from", secret=self._secret
            )
        detail = redact(describe_failure(exc), self._secret)
        return self._stream_error(f"the stream from {self._url} broke: {detail}", StreamError)

    def _timed_out(self) -> ProviderError:
        if not self._opened:
            return APITimeoutError(
                f"the stream from {self._url} did not start in time", url=self._url
            )
        return self._stream_error(
            f"the stream from {self._url} did not finish within its total timeout or deadline",
            StreamError,
        )

    def _stream_error(self, message: str, kind: type[StreamError]) -> StreamError:
        return kind(message, received_chunks=self.received_chunks, received_text=self.text)

    def _remaining(self) -> float | None:
        return None if self._ends_at is None else self._ends_at - time.monotonic()

    def _collected(self) -> ChatCompletion:
        self._pending.clear()
        return self._accumulator.completion()


class AsyncCompletionStream(_StreamState):
    """An open stream of chunks: ``async for chunk in stream`` (once), ``async with stream``.

    ``await stream.collect()`` reads the rest and returns the whole answer as a
    :class:`ChatCompletion`; ``stream.text``, ``stream.received_chunks``, ``stream.usage`` and
    ``stream.request_id`` describe what arrived so far.
    """

    def __init__(self, response: httpx.Response, request: ChatCompletionRequest, **kw: Any) -> None:
        super().__init__(response, request, **kw)
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("an async stream needs an async httpx response")
        self._bytes = response.aiter_bytes() if is_encoded(response) else stream.__aiter__()

    async def open(self) -> AsyncCompletionStream:
        """Read until the first chunk (or the end) arrived; failures so far are retryable."""
        await self._fill()
        self._opened = True
        return self

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            while await self._fill():
                yield self._pending.popleft()
        finally:
            await self.aclose()

    async def collect(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole answer."""
        try:
            while await self._fill():
                self._pending.clear()
            return self._collected()
        finally:
            await self.aclose()

    async def _fill(self) -> bool:
        """Make at least one chunk pending; ``False`` when the stream is over."""
        while not self._pending:
            self._raise_failure()
            if self._finished or self.closed:
                await self._drain()
                await self.aclose()
                return False
            try:
                data = await self._read()
            except StopAsyncIteration:
                self._end_of_body()
                continue
            except ProviderError:
                raise
            except Exception as exc:
                if not is_transport_failure(exc):
                    raise
                raise self._failure(exc) from exc
            self._absorb(data)
        return True

    async def _read(self) -> bytes:
        remaining = self._remaining()
        if remaining is None:
            return await self._bytes.__anext__()
        if remaining <= 0:
            raise self._timed_out()
        scope = limit_scope(remaining)  # (a long one on the coarse clock: no timer per chunk)
        try:
            async with scope:
                return await self._bytes.__anext__()
        except asyncio.TimeoutError:
            raise self._timed_out() from None

    async def _drain(self) -> None:
        """After ``[DONE]``, read the little that is left so the connection can be reused."""
        if self.closed or not self._decoder.done:
            return
        left = _DRAIN_LIMIT
        try:
            async with limit_scope(_DRAIN_SECONDS):
                async for data in self._bytes:
                    left -= len(data)
                    if left < 0:
                        return
        except Exception:  # the answer is complete; the connection is simply not reused
            return

    async def aclose(self) -> None:
        """Release the connection (safe to call more than once)."""
        if not self.closed:
            self.closed = True
            close_reader = getattr(self._bytes, "aclose", None)
            if close_reader is not None:
                await close_reader()
            await self.response.aclose()

    async def __aenter__(self) -> AsyncCompletionStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class CompletionStream(_StreamState):
    """An open stream of chunks: ``for chunk in stream`` (once), ``with stream``.

    ``stream.collect()`` reads the rest and returns the whole answer as a :class:`ChatCompletion`.
    """

    def __init__(self, response: httpx.Response, request: ChatCompletionRequest, **kw: Any) -> None:
        super().__init__(response, request, **kw)
        stream = response.stream
        if not isinstance(stream, httpx.SyncByteStream):
            raise TypeError("a sync stream needs a sync httpx response")
        self._bytes = response.iter_bytes() if is_encoded(response) else iter(stream)

    def open(self) -> CompletionStream:
        """Read until the first chunk (or the end) arrived; failures so far are retryable."""
        self._fill()
        self._opened = True
        return self

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        try:
            while self._fill():
                yield self._pending.popleft()
        finally:
            self.close()

    def collect(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole answer."""
        try:
            while self._fill():
                self._pending.clear()
            return self._collected()
        finally:
            self.close()

    def _fill(self) -> bool:
        while not self._pending:
            self._raise_failure()
            if self._finished or self.closed:
                self.close()  # (a blocking read cannot be bounded in time: no draining here)
                return False
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise self._timed_out()
            try:
                data = next(self._bytes)
            except StopIteration:
                self._end_of_body()
                continue
            except ProviderError:
                raise
            except Exception as exc:
                if not is_transport_failure(exc):
                    raise
                raise self._failure(exc) from exc
            self._absorb(data)
        return True

    def close(self) -> None:
        """Release the connection (safe to call more than once)."""
        if not self.closed:
            self.closed = True
            close_reader = getattr(self._bytes, "close", None)
            if close_reader is not None:
                close_reader()
            self.response.close()

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
