"""httpx's async transport interface over one pooled aiohttp session.

httpx's own async pool collapses under concurrency (749 req/s at 64 concurrent requests against
1,126 at one, on this machine); aiohttp's holds up. This transport keeps httpx's types — so a
user's ``transport=`` (``httpx.MockTransport``, ...) or ``http_client=`` plugs into the same
send chain — and sends over aiohttp with as little work per request as possible:

- the session and its connector are created on first use, inside the running event loop, with a
  configurable connection limit (``None``: no limit) and keep-alive;
- request headers go to aiohttp as plain pairs; ``aiohttp.ClientTimeout`` objects are cached;
- bodies are passed through undecoded (``auto_decompress=False``): httpx decodes a compressed
  body exactly as with any other transport;
- aiohttp's errors become httpx's (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
  ``ReadError``, ``PoolTimeout``), keeping the original as ``__cause__``;
- a whole answer's read limit of :data:`~atdak_agents._timers.COARSE_FROM` seconds or more
  (120 s by default) is kept on the event loop's coarse clock, not by aiohttp, which re-arms an
  asyncio timer at every network read (two or three timers a request, each a heap push and a
  clean-up: about a twentieth of an agent run's CPU at 64 runs at once). The limit is the
  same: the answer must begin within it, and the rest of its body must not stall for longer;
  it fires up to a :data:`~atdak_agents._timers.TICK` late, as every coarse limit does. A
  request that may wait for a free connection (as many in flight as the pool allows), and a
  stream (its chunks are read by the caller), keep aiohttp's timer.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

from .._timers import COARSE_FROM, expired
from .._timers import timeout as limit_scope
from ._http import WholeResponse

__all__ = ["AiohttpTransport"]

_READ_SIZE = 64 * 1024
_READ_TIMEOUT = "Timeout on reading data from socket"  # aiohttp's words for its read limit


def _map_error(exc: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp (or asyncio) failure."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError)):
        return httpx.ReadTimeout(message)
    if isinstance(exc, asyncio.TimeoutError):
        return httpx.PoolTimeout(message or "no connection became free in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return httpx.RemoteProtocolError(message)
    return httpx.ReadError(message)


class _ResponseStream(httpx.AsyncByteStream):
    """The body of an aiohttp response as httpx's async byte stream."""

    __slots__ = ("_owner", "_response")

    def __init__(self, response: aiohttp.ClientResponse, owner: AiohttpTransport) -> None:
        self._response = response
        self._owner: AiohttpTransport | None = owner  # whose count of requests it is in

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                data = await content.readany()
                if not data:
                    return
                yield data
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _map_error(exc) from exc

    async def aclose(self) -> None:
        self._response.release()
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._busy -= 1


_OWN_HEADERS = ("User-Agent", "Content-Type")  # aiohttp would add its own when not given


def _not_given(headers: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """Which of aiohttp's automatic headers to skip: those the request does not set itself
    (aiohttp never adds one the request sets; skipping costs work per request, so only when
    needed)."""
    given = {name.lower() for name, _ in headers}
    return tuple(h for h in _OWN_HEADERS if h.lower() not in given) or None


async def _read_in_pieces(content: aiohttp.StreamReader, read: float) -> bytes:
    """A body that did not come with its headers, read as it arrives: no wait for more of it
    may last longer than ``read`` seconds."""
    parts: list[bytes] = []
    while True:
        scope = limit_scope(read)
        try:
            async with scope:
                part = await content.readany()
        except asyncio.TimeoutError as exc:
            if expired(scope):
                raise httpx.ReadTimeout(_READ_TIMEOUT) from exc
            raise
        if not part:
            return b"".join(parts)
        parts.append(part)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool behind httpx's ``AsyncBaseTransport`` interface.

    ``max_connections``: the most open connections (``None``: no limit). ``keepalive``: seconds
    an idle connection is kept. Create it anywhere; its session is opened on first use in the
    running event loop.
    """

    def __init__(self, *, max_connections: int | None = 1000, keepalive: float = 30.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}
        # Requests sent or waiting for a connection, streams until closed: while there are no
        # more than connections, none waits for one (so a coarse read limit starts at sending)
        self._busy = 0
        # the header list a client sends with every request, and the headers it leaves out
        self._usual: tuple[tuple[tuple[str, str], ...], tuple[str, ...] | None] = ((), None)

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._keepalive,
            ssl=httpx.create_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )
        return self._session

    def _timeout(
        self, limits: dict[str, float | None], *, with_read: bool = True
    ) -> aiohttp.ClientTimeout:
        """aiohttp's limits (without the read limit unless ``with_read``), one object per set."""
        key = (limits.get("connect"), limits.get("read") if with_read else None, limits.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            timeout = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)
            self._timeouts[key] = timeout
        return timeout

    def _skipped(self, headers: list[tuple[str, str]]) -> tuple[str, ...] | None:
        usual, skipped = self._usual
        if len(headers) != len(usual) or any(map(operator.ne, headers, usual)):
            skipped = _not_given(headers)
            self._usual = (tuple(headers), skipped)
        return skipped

    def _request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: aiohttp.ClientTimeout,
    ) -> Any:
        """aiohttp's awaitable for one request (the status and headers come with it)."""
        session = self._session or self._open()
        return session.request(
            method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            timeout=timeout,
            skip_auto_headers=self._skipped(headers),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return as soon as the status and headers arrived."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        limits = request.extensions.get("timeout") or {}
        return await self.send(
            request.method, str(request.url), headers, request.content, limits, request=request
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        limits: dict[str, float | None],
        *,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """The same without building an ``httpx.Request`` first (the clients' own hot path)."""
        self._busy += 1  # until the stream is closed
        try:
            response = await self._request(method, url, headers, body, self._timeout(limits))
        except BaseException as exc:
            self._busy -= 1
            if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError)):
                raise _map_error(exc) from exc
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, self),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def fetch(
        self,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        limits: dict[str, float | None],
    ) -> WholeResponse:
        """``POST`` ``body`` and read the whole answer (the connection is back in the pool when
        this returns). A long read limit is kept on the coarse clock (see the module's notes):
        the answer must begin within it, and each further wait for its body end within it —
        unless the request may have to wait for a free connection (a wait that is not the
        server's silence): then aiohttp keeps it, from the moment the request is written."""
        read = limits.get("read")
        self._busy += 1
        free = self._max_connections is None or self._busy <= self._max_connections
        coarse = read if read is not None and read >= COARSE_FROM and free else None
        try:
            if coarse is None:
                response = await self._request("POST", url, headers, body, self._timeout(limits))
            else:
                scope = limit_scope(coarse)
                try:
                    async with scope:
                        timeout = self._timeout(limits, with_read=False)
                        response = await self._request("POST", url, headers, body, timeout)
                except asyncio.TimeoutError as exc:
                    if expired(scope):
                        raise httpx.ReadTimeout(_READ_TIMEOUT) from exc
                    raise
            try:
                if coarse is None or response.content.is_eof():  # (a small answer: at once)
                    content = await response.read()
                else:
                    content = await _read_in_pieces(response.content, coarse)
            finally:
                response.release()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _map_error(exc) from exc
        finally:
            self._busy -= 1
        return WholeResponse(response.status, response.raw_headers, content)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
