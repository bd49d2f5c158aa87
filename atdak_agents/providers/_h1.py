"""The async client's connection pool: requests over kept HTTP/1.1 connections.

A non-streamed call needs little of a general HTTP client: ``POST`` a JSON body, read one answer
to its end, keep the connection for the next call. aiohttp's client spends about 3,400 Python
bytecodes on that (its session's options, a request object, header multidicts, a payload
registry, a stream reader): some 50 µs a request, about half of a three-step agent run's CPU
at 64 runs at once (``tests/benchmarks/bench_runs.py``). :class:`H1Pool` writes the request
itself (the bytes before the body made once per set of headers) over connections of its own
(:mod:`._h1_connection`, where httptools reads the answers and the read limit is kept):

- one connection per request in flight, kept afterwards for the next request to the same origin
  (newest first, for up to ``keepalive`` seconds, then closed even if no request comes) unless
  the answer says ``Connection: close``;
  at most ``max_connections`` open at once (``None``: no limit): a request waits for a free one;
- ``https`` with httpx's default SSL context (certifi's roots) unless another is given;
- a kept connection found closed when reused — no byte of an answer came: the server had
  closed it while idle — is replaced by a new one and the request sent again, as browsers and
  urllib3 do (a new connection closed unanswered is an error: the retry policy decides);
- failures are httpx's errors (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``,
  ``ReadTimeout``, ``RemoteProtocolError``), so the retry policy treats them as it treats any
  transport's; a header that cannot be sent is a :class:`~atdak_agents.exceptions.UsageError`.

A streamed answer (:meth:`H1Pool.send`) comes with its status and headers; its body is read as
it arrives, and closing it gives the connection back (or closes it, if not read to its end).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

from .._timers import expired
from .._timers import timeout as limit_scope
from ..exceptions import UsageError
from ._h1_connection import Connection, Origin, StaleConnection, WholeResponse

__all__ = ["H1Pool", "WholeResponse"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110)
_HEADS_KEPT = 64  # sets of request headers whose bytes are kept


class _Target(NamedTuple):
    origin: Origin
    request_line: bytes  # b"POST /path HTTP/1.1\r\nHost: ...\r\n"


class _Stream(httpx.AsyncByteStream):
    """A streamed answer's body, read from its connection as it comes; closing it gives the
    connection back to its pool (or closes it, when the body was not read to its end)."""

    __slots__ = ("_connection", "_pool")

    def __init__(self, connection: Connection, pool: H1Pool) -> None:
        self._connection = connection
        self._pool: H1Pool | None = pool

    async def __aiter__(self) -> AsyncIterator[bytes]:
        next_chunk = self._connection.next_chunk
        while chunk := await next_chunk():
            yield chunk

    async def aclose(self) -> None:
        self._give_back()

    def __del__(self) -> None:
        # dropped without being closed: the connection must not stay taken for ever
        with contextlib.suppress(RuntimeError):  # (its event loop may be closed already)
            self._give_back()

    def _give_back(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.finish(self._connection)


class _Waiter(NamedTuple):
    origin: Origin
    handed: asyncio.Future[Connection | None]  # a connection, or None: room to open one


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
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
        self._opening = 0  # connections being made (they count against the limit)
        self._waiting: deque[_Waiter] = deque()
        self._targets: dict[str, _Target] = {}
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
        self._closed = False
        self._sweeping = False  # a look at the kept connections is due

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

    def finish(self, connection: Connection) -> None:
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
    ) -> tuple[Connection, WholeResponse]:
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
            raise httpx.UnsupportedProtocol(
                f"not an http(s) URL: {url!r}; give base_url as http://host[:port]/path or "
                "https://host[:port]/path"
            )
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
    ) -> tuple[Connection, bool]:
        """A connection to ``origin`` and whether it was kept from an earlier request."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the newest: the others have been idle for longer
            if not connection.dead and connection.idle_for() <= self._keepalive:
                return connection, True
            self._drop(connection)
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

    async def _connect(self, origin: Origin, limit: float | None) -> Connection:
        if self._closed:
            raise httpx.ConnectError(
                "the connection pool was closed (its client was closed): close a client only "
                "once its calls are done, and make a new one for further calls"
            )
        loop = asyncio.get_running_loop()
        tls = self._tls() if origin.scheme == "https" else None
        scope = limit_scope(limit)
        self._opening += 1
        try:
            async with scope:
                _, connection = await loop.create_connection(
                    lambda: Connection(origin, loop),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except BaseException as exc:
            self._wake()  # the place it was to take is free for a waiting request
            if isinstance(exc, asyncio.TimeoutError) and expired(scope):
                why = f"no connection to {_where(origin)} within {limit} s"
                raise httpx.ConnectTimeout(why) from None
            if isinstance(exc, OSError) and not isinstance(exc, asyncio.TimeoutError):
                raise httpx.ConnectError(f"cannot connect to {_where(origin)}: {exc}") from exc
            raise
        finally:
            self._opening -= 1
        self._open.add(connection)
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _wait_for_room(self, origin: Origin, limit: float | None) -> Connection | None:
        """Wait until a connection to ``origin`` is handed over (or ``None``: one closed, so
        one may be opened)."""
        handed: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
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

    def _pass_on(self, handed: asyncio.Future[Connection | None]) -> None:
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

    def _release(self, connection: Connection) -> None:
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
        connection.idle_since = connection.loop.time()
        self._idle.setdefault(connection.origin, []).append(connection)
        if not self._sweeping:
            self._sweeping = True
            connection.loop.call_later(self._keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close the connections kept idle longer than ``keepalive`` (a look every
        ``keepalive`` seconds while some are kept; each list is oldest first)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for idle in self._idle.values():
            while idle and (idle[0].dead or idle[0].idle_for(now) >= self._keepalive):
                self._drop(idle.pop(0))
        self._sweeping = any(self._idle.values())
        if self._sweeping:
            loop.call_later(self._keepalive, self._sweep)

    def _drop(self, connection: Connection) -> None:
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
