"""The async client's connection pool: requests over kept HTTP/1.1 connections.

A non-streamed call needs little of a general HTTP client: ``POST`` a JSON body, read one answer
to its end, keep the connection for the next call. aiohttp's client spends about 3,400 Python
bytecodes on that (its session's options, a request object, header multidicts, a payload
registry, a stream reader): some 50 µs a request, about half of a three-step agent run's CPU
at 64 runs at once (``tests/benchmarks/bench_runs.py``). :class:`H1Pool` writes the request
itself and has the answer read by httptools — the bindings to llhttp, Node.js's HTTP parser,
that uvicorn uses — from an :class:`asyncio.Protocol`:

- one connection per request in flight, kept afterwards for the next request to the same origin
  (newest first, for up to ``keepalive`` seconds) unless the answer says ``Connection: close``;
  at most ``max_connections`` open at once (``None``: no limit): a request waits for a free one;
- ``https`` with httpx's default SSL context (certifi's roots) unless another is given;
- the read limit starts when the request is written: the answer must begin within it, and no
  later wait for more of its body may last longer. A limit of
  :data:`~atdak_agents._timers.COARSE_FROM` seconds or more is kept on the loop's coarse clock,
  the connection being the clock's limit (no timer, no task cancelled, per request);
- a kept connection found closed when reused — no byte of an answer came: the server had
  closed it while idle — is replaced by a new one and the request sent again, as browsers and
  urllib3 do (a new connection closed unanswered is an error: the retry policy decides);
- failures are httpx's errors (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``,
  ``ReadTimeout``, ``RemoteProtocolError``), so the retry policy treats them as it treats any
  transport's; a header that cannot be sent is a :class:`~atdak_agents.exceptions.UsageError`.

A streamed answer (:meth:`H1Pool.send`) comes with its status and headers; its body is read as
it arrives, reading paused while the reader is behind.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools
import httpx

from .._timers import COARSE_FROM, Clock, clock, expired
from .._timers import timeout as limit_scope
from ..exceptions import UsageError

__all__ = ["READ_TIMEOUT", "H1Pool", "WholeResponse"]

READ_TIMEOUT = "Timeout on reading data from socket"  # aiohttp's words, kept for continuity
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110)
_LENGTHS = (b"content-length", b"transfer-encoding")
_PAUSE_AT = 64  # a stream's unread chunks at which reading pauses (until they are down to:)
_RESUME_AT = 8
_HEADS_KEPT = 64  # sets of request headers whose bytes are kept


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


class _Target(NamedTuple):
    origin: Origin
    request_line: bytes  # b"POST /path HTTP/1.1\r\nHost: ...\r\n"


class StaleConnection(httpx.RemoteProtocolError):
    """A kept connection was closed before any byte of the answer came (safe to send again)."""


class _Connection(asyncio.Protocol):
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
        "_loop",
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
        "origin",
        "transport",
    )

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self._loop = loop
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

    # ------------------------------------------------------------------ one request

    def exchange(
        self, head: bytes, body: bytes, read: float | None, *, stream: bool = False
    ) -> asyncio.Future[WholeResponse]:
        """Write the request (``head`` ends before the ``Content-Length`` value); the future
        is its answer (a stream's: its status and headers, the body following in
        :meth:`next_chunk`)."""
        assert self.transport is not None
        answer = self._answer = self._loop.create_future()
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
            self._reader = self._loop.create_future()
            await self._reader
        if self._paused and len(chunks) <= _RESUME_AT:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        return chunks.popleft()

    def _watch(self, read: float) -> None:
        self._read = read
        self._when = self._loop.time() + read
        if read >= COARSE_FROM:
            if self._clock is None:
                self._clock = clock()
            self._clock.watch(self)
            self._coarse = True
        else:
            self._timer = self._loop.call_at(self._when, self._look)

    def _look(self) -> None:
        """A short read limit's timer: the time may have been pushed back since it was set."""
        if self._loop.time() >= self._when:
            self._expire()
        else:
            self._timer = self._loop.call_at(self._when, self._look)

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
            self._when = self._loop.time() + self._read
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

    def pause_writing(self) -> None:
        pass  # a request is written whole: the transport buffers what the socket cannot take

    def resume_writing(self) -> None:
        pass

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


class _Stream(httpx.AsyncByteStream):
    """A streamed answer's body, read from its connection as it comes; closing it gives the
    connection back to its pool (or closes it, when the body was not read to its end)."""

    __slots__ = ("_connection", "_pool")

    def __init__(self, connection: _Connection, pool: H1Pool) -> None:
        self._connection = connection
        self._pool: H1Pool | None = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        next_chunk = self._connection.next_chunk
        while chunk := await next_chunk():
            yield chunk

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.finish(self._connection)


class _Waiter(NamedTuple):
    origin: Origin
    handed: asyncio.Future[_Connection | None]  # a connection, or None: room to open one


class H1Pool:
    """Keep-alive HTTP/1.1 connections, by origin (see the module's notes).

    Create it anywhere; it is used in one event loop.
    """

    def __init__(
        self,
        *,
        max_connections: int | None = 1000,
        keepalive: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max = max_connections
        self._keepalive = keepalive
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._opening = 0  # connections being made (they count against the limit)
        self._waiting: deque[_Waiter] = deque()
        self._targets: dict[str, _Target] = {}
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
        self._closed = False

    async def fetch(
        self,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        limits: dict[str, float | None],
    ) -> WholeResponse:
        """``POST`` ``body`` to ``url`` and read the whole answer (the connection is back in
        the pool, or closed, when this returns). ``limits``: ``connect``, ``read`` and
        ``pool`` (the wait for a free connection) in seconds, ``None`` for none."""
        connection, answer = await self._exchange(url, headers, body, limits, stream=False)
        self._release(connection)
        return answer

    async def send(
        self,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        limits: dict[str, float | None],
    ) -> httpx.Response:
        """``POST`` ``body`` to ``url``; the response comes with its status and headers, its
        body is read as it arrives (close the response to give its connection back)."""
        connection, head = await self._exchange(url, headers, body, limits, stream=True)
        return httpx.Response(
            status_code=head.status_code,
            headers=list(head.raw_headers),
            stream=_Stream(connection, self),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def finish(self, connection: _Connection) -> None:
        """A stream is closed: its connection is kept if its answer was read to its end."""
        if connection.busy:
            connection.close()
        self._release(connection)

    async def _exchange(
        self,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        limits: dict[str, float | None],
        *,
        stream: bool,
    ) -> tuple[_Connection, WholeResponse]:
        """Send the request over a connection (a new one if a kept one proves closed) and
        await its answer (a stream's head)."""
        target = self._targets.get(url) or self._target(url)
        head = self._head(url, target, headers)
        connection, kept = await self._acquire(target.origin, limits)
        while True:
            try:
                read = limits.get("read")
                answer = await connection.exchange(head, body, read, stream=stream)
            except StaleConnection:
                self._drop(connection)
                if not kept:
                    raise
                connection, kept = await self._acquire(target.origin, limits)
                continue
            except BaseException:
                self._drop(connection)  # cancelled or failed mid-answer: never reused
                raise
            return connection, answer

    async def aclose(self) -> None:
        """Close every connection (a request in flight or waiting for one fails)."""
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        while self._waiting:
            self._wake()

    # ------------------------------------------------------------------ the request's bytes

    def _target(self, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.netloc.rpartition("@")[2]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        line = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1")
        target = self._targets[url] = _Target(Origin(parts.scheme, parts.hostname, port), line)
        return target

    def _head(self, url: str, target: _Target, headers: list[tuple[str, str]]) -> bytes:
        """The request up to its ``Content-Length`` value (kept: a client sends the same few
        sets of headers again and again)."""
        key = (url, tuple(headers))
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            lines = b"".join(_header_line(name, value) for name, value in headers)
            head = self._heads[key] = target.request_line + lines + b"Content-Length: "
        return head

    # ------------------------------------------------------------------ connections

    async def _acquire(
        self, origin: Origin, limits: dict[str, float | None]
    ) -> tuple[_Connection, bool]:
        """A connection to ``origin`` and whether it was kept from an earlier request."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the newest: the others have been idle for longer
            if connection.dead:
                self._drop(connection)
            elif connection._loop.time() - connection.idle_since > self._keepalive:
                self._drop(connection)
                while idle:
                    self._drop(idle.pop())
            else:
                return connection, True
        while self._full():
            self._close_an_idle_one()
            if not self._full():
                break
            handed = await self._wait_for_room(origin, limits.get("pool"))
            if handed is not None:
                return handed, True
        return await self._connect(origin, limits.get("connect")), False

    def _full(self) -> bool:
        return self._max is not None and len(self._open) + self._opening >= self._max

    async def _connect(self, origin: Origin, limit: float | None) -> _Connection:
        if self._closed:
            raise httpx.ConnectError("the connection pool was closed (the client was closed)")
        loop = asyncio.get_running_loop()
        tls = self._tls() if origin.scheme == "https" else None
        scope = limit_scope(limit)
        self._opening += 1
        try:
            async with scope:
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin, loop),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except asyncio.TimeoutError:
            self._wake()
            if expired(scope):
                why = f"no connection to {_where(origin)} within {limit} s"
                raise httpx.ConnectTimeout(why) from None
            raise
        except OSError as exc:
            self._wake()
            raise httpx.ConnectError(f"cannot connect to {_where(origin)}: {exc}") from exc
        except BaseException:
            self._wake()
            raise
        finally:
            self._opening -= 1
        self._open.add(connection)
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _wait_for_room(self, origin: Origin, limit: float | None) -> _Connection | None:
        """Wait until a connection to ``origin`` is handed over (or ``None``: one closed, so
        one may be opened)."""
        handed: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiter(origin, handed))
        scope = limit_scope(limit)
        try:
            async with scope:
                return await handed
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            self._pass_on(handed)  # handed over just as the wait ended: to the next one
            if isinstance(exc, asyncio.TimeoutError) and expired(scope):
                raise httpx.PoolTimeout("no connection became free in time") from None
            raise

    def _pass_on(self, handed: asyncio.Future[_Connection | None]) -> None:
        if handed.done() and not handed.cancelled():
            connection = handed.result()
            if connection is not None:
                self._release(connection)
            else:
                self._wake()

    def _close_an_idle_one(self) -> None:
        """Make room for a connection to another origin by closing one kept idle."""
        for connections in self._idle.values():
            if connections:
                self._drop(connections.pop(0))
                return

    def _release(self, connection: _Connection) -> None:
        """A request is done with ``connection``: hand it to a waiting request, keep it, or
        close it."""
        if connection.dead or connection not in self._open:
            self._drop(connection)
            return
        while self._waiting:
            origin, handed = self._waiting.popleft()
            if handed.done():
                continue
            if origin == connection.origin:
                handed.set_result(connection)
                return
            self._waiting.appendleft(_Waiter(origin, handed))
            self._drop(connection)  # wakes it, to open one to its own origin
            return
        loop = connection._loop
        connection.idle_since = now = loop.time()
        idle = self._idle.setdefault(connection.origin, [])
        if idle and now - idle[0].idle_since > self._keepalive:
            self._drop(idle.pop(0))  # the oldest kept has been idle too long
        idle.append(connection)

    def _drop(self, connection: _Connection) -> None:
        """Close ``connection`` and forget it; a request waiting for room may open one."""
        connection.close()
        if connection in self._open:
            self._open.discard(connection)
            self._wake()

    def _wake(self) -> None:
        while self._waiting:
            _, handed = self._waiting.popleft()
            if not handed.done():
                handed.set_result(None)
                return


def _header_line(name: str, value: str) -> bytes:
    if _TOKEN.fullmatch(name) and "\r" not in value and "\n" not in value:
        try:
            return f"{name}: {value}\r\n".encode("latin-1")
        except UnicodeEncodeError:
            pass
    raise UsageError(
        f"the HTTP header {name!r} cannot be sent (a name of letters, digits and -, and a "
        "value on one line of Latin-1 text, are required): check default_headers and the API key"
    )


def _where(origin: Origin) -> str:
    return f"{origin.host}:{origin.port}"
