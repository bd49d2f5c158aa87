"""The send chains of the chat-completions clients (retry policy in :mod:`._retry`, errors in
:mod:`._errors`).

The send path is a short chain whose names tell the lifecycle::

    send ─▶ _send_with_retries ─▶ _send_once ─▶ _dispatch (the httpx transport or client)
                   │
                   └─ _decide_retry: the one place where "retry or not, and after how long" is taken

:class:`AsyncChannel` runs it over one HTTP/1.1 connection pool per client (:mod:`._h1`),
called directly: httpx's own async pool collapses under concurrency, and aiohttp's client does
several times the work per request (see ``tests/benchmarks/bench_provider.py``).
:class:`SyncChannel` runs the same chain over ``httpx.HTTPTransport``. Users may pass any httpx
transport (e.g. ``httpx.MockTransport``) or a whole ``httpx.AsyncClient`` / ``httpx.Client``
for proxies and the like.

A call's ``deadline`` bounds all its attempts and waits together; each attempt is bounded by
the total timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar, cast

import httpx

from .._timers import expired
from .._timers import timeout as limit_scope
from ..exceptions import APITimeoutError, ProviderError, UsageError
from ..tracing.bus import emit
from ..tracing.events import ModelRetrying
from ._errors import (
    connection_error,
    is_timeout,
    is_transport_failure,
)
from ._h1 import H1Pool, WholeResponse
from ._retry import (
    Deadline,
    RetryDecision,
    RetryPolicy,
    Timeouts,
    retry_reason,
)

__all__ = [
    "AsyncChannel",
    "FastRequest",
    "SyncChannel",
    "WholeResponse",
    "aread",
    "body_of",
    "is_encoded",
]

logger = logging.getLogger("atdak_agents.providers")

T = TypeVar("T")

# --------------------------------------------------------------------------- the send chain


class _Channel:
    """What the sync and async send chains share: settings, request building, retry decisions."""

    def __init__(
        self,
        *,
        url: str,
        headers: Mapping[str, str],
        timeouts: Timeouts,
        policy: RetryPolicy,
        secret: str | None,
    ) -> None:
        self.url = url
        self.headers = dict(headers)
        self._plain_headers = httpx.Headers(self.headers)  # normalised once, copied per request
        self.timeouts = timeouts
        self.policy = policy
        self.secret = secret
        self._url = httpx.URL(url)
        self._user_client: httpx.Client | httpx.AsyncClient | None = None
        t = timeouts
        self._timeout_ext = {"connect": t.connect, "read": t.read, "write": t.read, "pool": t.total}

    def build_request(
        self, body: bytes, *, stream: bool, extra_headers: Mapping[str, str] | None = None
    ) -> httpx.Request:
        """The ``POST`` of a JSON body (``Accept: text/event-stream`` for a stream)."""
        headers: Mapping[str, str] | httpx.Headers = self._plain_headers
        if stream or extra_headers:
            headers = {**self.headers, **(extra_headers or {})}
            if stream:
                headers["Accept"] = "text/event-stream"
        if self._user_client is not None:  # the user's client: its headers, cookies, auth apply
            return self._user_client.build_request(
                "POST",
                self._url,
                headers=headers,
                content=body,
                timeout=httpx.Timeout(**self._timeout_ext),
            )
        return httpx.Request(
            "POST",
            self._url,
            headers=headers,
            content=body,
            extensions={"timeout": self._timeout_ext},
        )

    def call_deadline(self, seconds: float | None) -> Deadline | None:
        return None if seconds is None else Deadline(seconds)

    def attempt_limit(self, deadline: Deadline | None) -> tuple[float | None, Deadline | None]:
        """Seconds this attempt may take, and the call's deadline when that is what sets the
        limit (``None``: the total timeout does; see :meth:`_timeout_error`)."""
        total = self.timeouts.total
        if deadline is None:
            return total, None
        remaining = max(deadline.remaining(), 0.0)
        if total is None or remaining < total:
            return remaining, deadline
        return total, None

    def _decide_retry(
        self, attempt: int, error: ProviderError, max_retries: int, deadline: Deadline | None
    ) -> RetryDecision:
        """Retry or not after failed attempt ``attempt`` (1-based), and how long to wait first.

        Every retry decision of both clients is taken here (a hook point for tracing).
        """
        reason = retry_reason(error)
        if reason is None:
            return RetryDecision(attempt, None, None, error)
        if attempt > max_retries:
            return RetryDecision(
                attempt, f"{reason}; no retries left ({max_retries=})", None, error
            )
        retry_after = getattr(error, "retry_after", None)
        wait = self.policy.wait_before_retry(attempt, retry_after)
        if deadline is not None and wait >= deadline.remaining():
            why = f"{reason}; the {deadline.seconds:g}s deadline leaves no time to wait {wait:.2f}s"
            return RetryDecision(attempt, why, None, error)
        logger.info(
            "retrying %s in %.2fs after attempt %d of %d: %s",
            self.url,
            wait,
            attempt,
            max_retries + 1,
            reason,
        )
        emit(ModelRetrying, attempt=attempt, reason=reason, wait=wait)
        return RetryDecision(attempt, reason, wait, error)

    def _timeout_error(self, deadline: Deadline | None) -> APITimeoutError:
        """The error of an attempt past its limit: the call's ``deadline``, or (``None``) the
        total timeout (the words are made here, not for every attempt)."""
        if deadline is not None:
            why = f"the call's deadline of {deadline.seconds:g}s"
        else:
            why = f"the total timeout of {self.timeouts.total:g}s"
        return APITimeoutError(
            f"no complete answer from {self.url} within {why}; allow more time (timeout=..., "
            "deadline=...) or check the endpoint",
            url=self.url,
        )


class FastRequest:
    """A request for the channel's own pool, without building an ``httpx.Request``.

    ``whole``: the answer is read to its end before the handler sees it (a
    :class:`WholeResponse`); else it is an ``httpx.Response``
    whose body the handler streams.
    """

    __slots__ = ("body", "headers", "url", "whole")

    def __init__(
        self, url: str, headers: list[tuple[str, str]], body: bytes, *, whole: bool = False
    ) -> None:
        self.url = url
        self.headers = headers
        self.body = body
        self.whole = whole


AsyncHandler = Callable[[httpx.Response | WholeResponse, "float | None"], Awaitable[T]]
SyncHandler = Callable[[httpx.Response, "float | None"], T]


class AsyncChannel(_Channel):
    """The async send chain over one connection pool (:class:`~._h1.H1Pool`), a user's httpx
    transport, or a user's ``httpx.AsyncClient``.

    ``handle(response, ends_at)`` turns a response into the result inside the attempt, so a
    failure while reading (a dropped connection, a status error) is retried like any other;
    ``ends_at`` is the monotonic time at which this attempt must be over.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_connections: int | None = 1000,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self._given_transport = transport
        self._http_client = self._user_client = http_client
        self._max_connections = max_connections
        self._own_pool: H1Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._plain_pairs = list(self.headers.items())
        # The attempt's own limit (a timeout scope around it, never longer than the total)
        # bounds the wait for a pooled connection too: no second timer in the pool for that.
        self._fast_limits = {**self._timeout_ext, "pool": None}

    def prepare_request(
        self, body: bytes, *, stream: bool, extra_headers: Mapping[str, str] | None = None
    ) -> httpx.Request | FastRequest:
        """An ``httpx.Request``, or a :class:`FastRequest` for the default transport (read
        whole before the handler sees it, unless ``stream``)."""
        if self._given_transport is not None or self._http_client is not None:
            return self.build_request(body, stream=stream, extra_headers=extra_headers)
        headers = self._plain_pairs
        if stream or extra_headers:
            merged = {**self.headers, **(extra_headers or {})}
            if stream:
                merged["Accept"] = "text/event-stream"
            headers = list(merged.items())
        return FastRequest(self.url, headers, body, whole=not stream)

    def send(
        self,
        request: httpx.Request | FastRequest,
        handle: AsyncHandler[T],
        *,
        max_retries: int,
        deadline: float | None,
    ) -> Coroutine[Any, Any, T]:
        """Send ``request`` with retries (await it); ``deadline`` bounds all attempts and waits
        together. (The retry loop's own coroutine, not one around it: one level less to create
        and to hold while the answer is awaited.)"""
        return self._send_with_retries(request, handle, max_retries, self.call_deadline(deadline))

    async def _send_with_retries(
        self,
        request: httpx.Request | FastRequest,
        handle: AsyncHandler[T],
        max_retries: int,
        deadline: Deadline | None,
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._send_once(request, handle, deadline)
            except ProviderError as error:
                decision = self._decide_retry(attempt, error, max_retries, deadline)
                if decision.wait is None:
                    raise
            await asyncio.sleep(decision.wait)

    async def _send_once(
        self,
        request: httpx.Request | FastRequest,
        handle: AsyncHandler[T],
        deadline: Deadline | None,
    ) -> T:
        limit, bound_by = self.attempt_limit(deadline)
        ends_at = None if limit is None else time.monotonic() + limit
        phase = "connecting to"
        scope = limit_scope(limit)  # a long limit on the loop's coarse clock
        try:
            async with scope:
                response = await self._dispatch(request)
                phase = "reading the answer from"
                return await handle(response, ends_at)
        except asyncio.TimeoutError as exc:
            if not expired(scope):
                raise connection_error(exc, url=self.url, phase=phase, secret=self.secret) from exc
            raise self._timeout_error(bound_by) from None
        except ProviderError:
            raise
        except Exception as exc:
            if not is_transport_failure(exc):
                raise
            raise connection_error(exc, url=self.url, phase=phase, secret=self.secret) from exc

    def _dispatch(
        self, request: httpx.Request | FastRequest
    ) -> Awaitable[httpx.Response | WholeResponse]:
        """The transport's (or client's) own awaitable for ``request``."""
        if isinstance(request, FastRequest):
            pool, limits = self._pool(), self._fast_limits
            if request.whole:
                return pool.fetch(request.url, request.headers, request.body, limits)
            return pool.send(request.url, request.headers, request.body, limits)
        if self._http_client is not None:
            return self._http_client.send(request, stream=True)
        return cast("httpx.AsyncBaseTransport", self._given_transport).handle_async_request(request)

    def _pool(self) -> H1Pool:
        """This channel's own connection pool (made in the first event loop that uses it)."""
        loop = asyncio.get_running_loop()
        if self._own_pool is None:
            self._own_pool = H1Pool(max_connections=self._max_connections)
            self._loop = loop
        elif loop is not self._loop:
            raise UsageError(
                "this AsyncAtdakClient was first used in another event loop, and its connection "
                "pool belongs to that loop: create one client per event loop (for example "
                "inside your `async def main()`), or close it and make a new one"
            )
        return self._own_pool

    async def close(self) -> None:
        """Close the connection pool this channel created (not a transport or client you gave)."""
        pool, self._own_pool = self._own_pool, None
        if pool is not None:
            await pool.aclose()


async def body_of(response: httpx.Response | WholeResponse) -> bytes:
    """The whole body of ``response`` (decompressed), which is then closed."""
    if isinstance(response, WholeResponse):
        return response.body()
    return await aread(response)


async def aread(response: httpx.Response) -> bytes:
    """The whole body of ``response``, then closed (without httpx's decoding layers unless the
    body is compressed)."""
    stream = response.stream
    try:
        if isinstance(stream, httpx.AsyncByteStream) and not is_encoded(response):
            return b"".join([part async for part in stream])
        return await response.aread()  # decodes a compressed body
    finally:
        await response.aclose()


def is_encoded(response: httpx.Response) -> bool:
    """Whether the body is compressed (gzip, ...) and must go through httpx's decoders."""
    encoding = response.headers.get("content-encoding")
    return encoding is not None and encoding.strip().lower() != "identity"


class SyncChannel(_Channel):
    """The blocking send chain over ``httpx.HTTPTransport`` (or a user's ``httpx.Client``).

    The total limit and the deadline are checked between network reads: a blocking read is
    bounded by the read timeout, which is shortened to what the deadline leaves.
    """

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        max_connections: int | None = 1000,
        **settings: Any,
    ) -> None:
        super().__init__(**settings)
        self._http_client = self._user_client = http_client
        self._owns_transport = transport is None and http_client is None
        self._transport_ = transport or httpx.HTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
        )

    def send(
        self,
        request: httpx.Request,
        handle: SyncHandler[T],
        *,
        max_retries: int,
        deadline: float | None,
    ) -> T:
        """Send ``request`` with retries; ``deadline`` bounds all attempts and waits together."""
        return self._send_with_retries(request, handle, max_retries, self.call_deadline(deadline))

    def _send_with_retries(
        self,
        request: httpx.Request,
        handle: SyncHandler[T],
        max_retries: int,
        deadline: Deadline | None,
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._send_once(request, handle, deadline)
            except ProviderError as error:
                decision = self._decide_retry(attempt, error, max_retries, deadline)
                if decision.wait is None:
                    raise
            time.sleep(decision.wait)

    def _send_once(
        self, request: httpx.Request, handle: SyncHandler[T], deadline: Deadline | None
    ) -> T:
        limit, bound_by = self.attempt_limit(deadline)
        ends_at = None if limit is None else time.monotonic() + limit
        if limit is not None:
            request.extensions["timeout"] = _shortened(self._timeout_ext, limit)
        phase = "connecting to"
        try:
            response = self._dispatch(request)
            phase = "reading the answer from"
            result = handle(response, ends_at)
        except ProviderError:
            raise
        except Exception as exc:
            if not is_transport_failure(exc):
                raise
            if ends_at is not None and time.monotonic() >= ends_at and is_timeout(exc):
                raise self._timeout_error(bound_by) from exc
            raise connection_error(exc, url=self.url, phase=phase, secret=self.secret) from exc
        return result

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        if self._http_client is not None:
            return self._http_client.send(request, stream=True)
        return self._transport_.handle_request(request)

    def close(self) -> None:
        """Close the connection pool this channel created (not a transport or client you gave)."""
        if self._owns_transport:
            self._transport_.close()


def _shortened(timeouts: dict[str, float | None], limit: float) -> dict[str, float | None]:
    return {k: limit if v is None else min(v, limit) for k, v in timeouts.items()}
