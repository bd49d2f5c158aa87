"""httpx's async transport interface over one pooled aiohttp session: the best transport we
found for frameworks built on httpx (Pydantic AI in ``bench_runs.py``), whose own async pool
collapses under concurrency. (atdak_agents itself sends over its own HTTP/1.1 pool,
``atdak_agents.providers._h1``.)

- the session and its connector are created on first use, inside the running event loop, with a
  configurable connection limit (``None``: no limit) and keep-alive;
- request headers go to aiohttp as plain pairs; ``aiohttp.ClientTimeout`` objects are cached;
- bodies are passed through undecoded (``auto_decompress=False``): httpx decodes a compressed
  body exactly as with any other transport;
- aiohttp's errors become httpx's (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
  ``ReadError``, ``PoolTimeout``), keeping the original as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

_READ_SIZE = 64 * 1024


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

    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

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


_OWN_HEADERS = ("User-Agent", "Content-Type")  # aiohttp would add its own when not given


def _not_given(headers: list[tuple[str, str]]) -> tuple[str, ...] | None:
    """Which of aiohttp's automatic headers to skip: those the request does not set itself
    (aiohttp never adds one the request sets; skipping costs work per request, so only when
    needed)."""
    given = {name.lower() for name, _ in headers}
    return tuple(h for h in _OWN_HEADERS if h.lower() not in given) or None


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

    def _timeout(self, limits: dict[str, float | None]) -> aiohttp.ClientTimeout:
        """aiohttp's limits, one object per set."""
        key = (limits.get("connect"), limits.get("read"), limits.get("pool"))
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
        try:
            response = await self._request(method, url, headers, body, self._timeout(limits))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _map_error(exc) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
