"""One HTTP/1.1 connection of the client's pool (:mod:`._h1`): it writes a request, then reads
its answer with httptools — the bindings to llhttp, Node.js's HTTP parser, that uvicorn uses —
as an :class:`asyncio.Protocol`: whole into a future, or (a stream) its head into a future and
its body piece by piece, reading paused while the reader is behind.

The read limit starts when the request is written: the answer must begin within it, and no
later wait for more of its body may last longer. A limit of
:data:`~atdak_agents._timers.COARSE_FROM` seconds or more is kept on the loop's coarse clock,
the connection itself being the clock's limit (no timer, no task cancelled, per request); a
shorter one gets a timer of its own. A paused stream's wait is the reader's, not the server's
silence.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

import httptools
import httpx

from .._timers import COARSE_FROM, Clock, clock

__all__ = ["READ_TIMEOUT", "Connection", "Origin", "StaleConnection", "WholeResponse"]

READ_TIMEOUT = "Timeout on reading data from socket"  # aiohttp's words, kept for continuity
_LENGTHS = (b"content-length", b"transfer-encoding")
_PAUSE_AT = 64  # a stream's unread chunks at which reading pauses (until they are down to:)
_RESUME_AT = 8


class WholeResponse:
    """A response read to its end (status, headers, body): what a non-streamed call needs,
    without an ``httpx.Response`` and its stream around it. ``headers`` are made on first use
    (an error answer); ``content`` is the body as sent (compressed or not:
    :meth:`body` decodes it)."""

    __slots__ = ("_headers", "content", "raw_headers", "status_code")

    def __init__(
        self, status_code: int, raw_headers: tuple[tuple[bytes, bytes], ...], content: bytes
    ) -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.content = content
        self._headers: httpx.Headers | None = None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(list(self.raw_headers))
        return self._headers

    def body(self) -> bytes:
        """The body, decompressed when the answer says it is compressed."""
        for name, value in self.raw_headers:
            if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
                # httpx decodes a body given whole through the decoders its headers name
                headers = list(self.raw_headers)
                return httpx.Response(
                    self.status_code, headers=headers, content=self.content
                ).content
        return self.content


class Origin(NamedTuple):
    """Where a connection goes: its scheme, host and port."""

    scheme: str
    host: str
    port: int


class StaleConnection(httpx.RemoteProtocolError):
    """A kept connection was closed before any byte of the answer came (safe to send again)."""


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: it sends a request, then reads its answer — whole into a
    future, or (a stream) its head into a future and its body as it comes."""

    __slots__ = (
        "_answer",
        "_body",
        "_chunks",
        "_clock",
        "_coarse",
        "_ended",
        "_error",
        "_headers",
        "_heard",
        "_parser",
        "_paused",
        "_read",
        "_reader",
        "_streaming",
        "_timer",
        "_when",
        "busy",
        "dead",
        "idle_since",
        "loop",
        "origin",
        "transport",
    )

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.busy = False  # a request is in flight (its answer not read to its end)
        self.dead = False  # closed, or not to be used again
        self.idle_since = 0.0
        self._answer: asyncio.Future[WholeResponse] | None = None  # (a stream's: its head)
        self._streaming = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._heard = False  # some byte of the current answer came
        # a stream's body: the chunks not yet read, the reader waiting for more, how it ended
        self._chunks: deque[bytes] = deque()
        self._reader: asyncio.Future[None] | None = None
        self._ended = False
        self._error: Exception | None = None
        self._paused = False  # reading paused: the reader is behind
        self._read: float | None = None  # the read limit of the request in flight
        self._when = 0.0  # when it runs out (loop time), pushed back as the answer comes
        self._clock: Clock | None = None  # the coarse clock, once a limit went on it
        self._coarse = False  # the read limit in force is on it
        self._timer: asyncio.TimerHandle | None = None

    def idle_for(self, now: float | None = None) -> float:
        """Seconds since the connection was last given back to its pool (``now``: loop time)."""
        return (self.loop.time() if now is None else now) - self.idle_since

    # ------------------------------------------------------------------ one request

    def exchange(
        self, head: bytes, body: bytes, read: float | None, *, stream: bool = False
    ) -> asyncio.Future[WholeResponse]:
        """Write the request (``head`` ends before the ``Content-Length`` value); the future
        is its answer (a stream's: its status and headers, the body following in
        :meth:`next_chunk`)."""
        assert self.transport is not None
        answer = self._answer = self.loop.create_future()
        self.busy = True
        self._heard = False
        self._streaming = stream
        if stream:
            self._ended = False
            self._error = None
            self._chunks.clear()  # (what an earlier stream's reader left unread)
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        self.transport.writelines((head, b"%d\r\n\r\n" % len(body), body))
        if read is not None:
            self._watch(read)
        return answer

    async def next_chunk(self) -> bytes:
        """A stream's next piece of body (``b""``: its end)."""
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._reader = self.loop.create_future()
            await self._reader
        if self._paused and len(chunks) <= _RESUME_AT:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        return chunks.popleft()

    def _watch(self, read: float) -> None:
        self._read = read
        self._when = self.loop.time() + read
        if read >= COARSE_FROM:
            if self._clock is None:
                self._clock = clock()
            self._clock.watch(self)
            self._coarse = True
        else:
            self._timer = self.loop.call_at(self._when, self._look)

    def _look(self) -> None:
        """A short read limit's timer: the time may have been pushed back since it was set."""
        if self.loop.time() >= self._when:
            self._expire()
        else:
            self._timer = self.loop.call_at(self._when, self._look)

    def _expire(self) -> None:
        """The read limit ran out: the answer fails and the connection is closed (unless
        reading is paused: the wait is then the reader's, not the server's)."""
        self._coarse = False
        self._timer = None
        if self._paused and self._read is not None:
            self._watch(self._read)
            return
        self._fail(httpx.ReadTimeout(READ_TIMEOUT))

    def _done(self) -> None:
        """The request is over: its read limit is dropped."""
        self.busy = False
        self._read = None
        if self._coarse:
            self._clock.forget(self)  # type: ignore[union-attr]
            self._coarse = False
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, error: Exception) -> None:
        if self.busy:
            self._done()
            answer, self._answer = self._answer, None
            if answer is not None:
                if not answer.done():
                    answer.set_exception(error)
            elif self._streaming:
                self._error = error
                self._wake_reader()
        self.close()

    def _wake_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.set_result(None)

    def close(self) -> None:
        """Close the connection (a request in flight fails)."""
        self.dead = True
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # nothing asked: a server that talks out of turn
            self.close()
            return
        self._heard = True
        if self._read is not None:
            self._when = self.loop.time() + self._read
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the server's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.dead = True
        if not self.busy:
            return
        if self._heard and self._ends_with_connection():
            self.on_message_complete()
        elif self._heard:
            self._fail(httpx.RemoteProtocolError("the server closed the connection mid-answer"))
        else:
            self._fail(StaleConnection("the server closed the connection without answering"))

    def _ends_with_connection(self) -> bool:
        """Whether the answer's body is delimited by the connection's end (no length given)."""
        named = {name.lower() for name, _ in self._headers}
        return bool(self._headers) and not named.intersection(_LENGTHS)

    # ------------------------------------------------------------------ httptools' callbacks

    def on_message_begin(self) -> None:
        if not self.busy:  # more after the answer, unasked for: the connection is retired
            self.dead = True
        self._headers = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self._streaming or _interim(self._parser.get_status_code()):
            return
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            status = self._parser.get_status_code()
            answer.set_result(WholeResponse(status, tuple(self._headers), b""))

    def on_body(self, body: bytes) -> None:
        if not self._streaming:
            self._body.append(body)
            return
        self._chunks.append(body)
        self._wake_reader()
        if len(self._chunks) >= _PAUSE_AT and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if _interim(status):
            return  # an interim answer ("100 Continue"): the real one follows
        self._done()
        if status == 101 or not self._parser.should_keep_alive():
            self.dead = True  # (an upgrade is not followed)
        if self._streaming:
            self._ended = True
            self._wake_reader()
            return
        answer, self._answer = self._answer, None
        if answer is None or answer.done():
            self.close()
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        answer.set_result(WholeResponse(status, tuple(self._headers), body))


def _interim(status: int) -> bool:
    return 100 <= status < 200 and status != 101
