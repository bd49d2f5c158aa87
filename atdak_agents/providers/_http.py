"""HTTP for the chat-completions clients: timeouts, retries, deadlines and error mapping.

The send path is a short chain whose names tell the lifecycle::

    send ─▶ _send_with_retries ─▶ _send_once ─▶ _dispatch (the httpx transport or client)
                   │
                   └─ _decide_retry: the one place where "retry or not, and after how long" is taken

:class:`AsyncChannel` runs it over an httpx async transport — by default one pooled
``httpx_aiohttp.AiohttpTransport`` per client, called directly: httpx's own async pool collapses
under concurrency (see ``tests/benchmarks/bench_provider.py``). :class:`SyncChannel` runs the same
chain over ``httpx.HTTPTransport``. Users may pass any httpx transport (e.g.
``httpx.MockTransport``) or a whole ``httpx.AsyncClient`` / ``httpx.Client`` for proxies and the
like.

Retried: connection errors, timeouts, 408, 409, 429 and 5xx, with exponential backoff and jitter,
honouring ``Retry-After`` (seconds or an HTTP date, capped). A call's ``deadline`` bounds all its
attempts and waits together. Errors never contain the API key: every text that comes from the
server passes through :func:`redact` first.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from ..exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ContextLengthExceededError,
    InvalidParameterError,
    ProviderError,
    status_error_class,
)

if TYPE_CHECKING:
    from ._aiohttp import AiohttpTransport

if sys.version_info >= (3, 11):
    from asyncio import timeout as _async_timeout
else:  # aiohttp depends on async-timeout on Python 3.10
    from async_timeout import timeout as _async_timeout  # type: ignore[import-not-found]

__all__ = [
    "AsyncChannel",
    "Deadline",
    "RetryDecision",
    "RetryPolicy",
    "SyncChannel",
    "Timeouts",
    "aread",
    "connection_error",
    "is_encoded",
    "parse_retry_after",
    "redact",
    "status_error",
]

logger = logging.getLogger("atdak_agents.providers")

T = TypeVar("T")

_RETRY_STATUSES = frozenset({408, 409, 429})
_REQUEST_ID_HEADERS = ("x-request-id", "request-id")
_BODY_EXCERPT = 2000


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Timeouts:
    """Time limits of one attempt, in seconds (``None``: no limit).

    ``connect``: to open a connection. ``read``: the longest silence between two network reads
    (for a stream, between chunks). ``total``: one attempt from sending to the last byte
    (for a stream: to ``data: [DONE]``). A call's overall limit across retries is the
    ``deadline`` of :class:`~atdak_agents.CallOptions`.
    """

    connect: float | None = 5.0
    read: float | None = 120.0
    total: float | None = 600.0

    @classmethod
    def of(cls, value: float | Timeouts | None) -> Timeouts:
        """From a number (the read and total limit), a ``Timeouts``, or ``None`` (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidParameterError("timeout", value, "a number of seconds > 0, or Timeouts")
        connect = min(float(value), cls.connect or float(value))
        return cls(connect=connect, read=float(value), total=float(value))


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts (how *many* attempts: ``max_retries`` of the client).

    Waits grow as ``initial_backoff * 2**(n-1)`` up to ``max_backoff``, with jitter (each wait is
    between half and all of that). A ``Retry-After`` from the server replaces the backoff, up to
    ``max_retry_after`` seconds.
    """

    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def wait_before_retry(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return base / 2 + random.uniform(0, base / 2)


@dataclass(frozen=True)
class RetryDecision:
    """What happened after a failed attempt: retry after ``wait`` seconds, or give up (``None``).

    ``reason`` says why the failure is worth retrying (or why it is not retried after all).
    """

    attempt: int
    reason: str | None
    wait: float | None
    error: ProviderError


class Deadline:
    """A point in (monotonic) time after which a call gives up."""

    __slots__ = ("ends_at", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()


def validate_max_retries(value: object, parameter: str = "max_retries") -> int:
    """``value`` if it is an int >= 0, else an :class:`InvalidParameterError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(parameter, value, "an integer >= 0 (0 disables retries)")
    return value


def validate_deadline(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidParameterError("deadline", value, "a number of seconds > 0, or None")
    return float(value)


# --------------------------------------------------------------------------- errors


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (the API key) replaced by ``***``."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _error_fields(payload: object, text: str) -> tuple[str, str | None, str | None]:
    """(message, code, type) from an OpenAI-style body, any other JSON, or plain text."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("message") or json.dumps(error, ensure_ascii=False)
        code, kind = error.get("code"), error.get("type")
        return (
            str(message),
            None if code is None else str(code),
            None if kind is None else str(kind),
        )
    if isinstance(error, str) and error:
        return error, None, None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return payload["message"], None, None
    return text.strip()[:_BODY_EXCERPT], None, None


def _is_context_length(code: str | None, message: str) -> bool:
    lowered = message.lower()
    return (
        code == "context_length_exceeded"
        or "context length" in lowered
        or ("context window" in lowered)
    )


def _hint(status: int, error_class: type[APIStatusError], url: str) -> str | None:
    if error_class is ContextLengthExceededError:
        return "shorten the messages or lower max_tokens"
    hints = {
        401: "check the API key: pass api_key=... or set ATDAK_API_KEY",
        403: "this API key may not use this model or endpoint",
        404: f"check the model name and the base URL ({url})",
        429: "rate limited: slow down, or allow more retries with max_retries=...",
    }
    if status >= 500:
        return "the endpoint failed; it was retried up to max_retries times"
    return hints.get(status)


def status_error(
    status: int, headers: Mapping[str, str], body: bytes, *, url: str, secret: str | None
) -> APIStatusError:
    """The typed error for an HTTP error answer (the key redacted from everything kept)."""
    text = redact(body.decode("utf-8", errors="replace"), secret)
    try:
        payload: object = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    return error_from_payload(status, payload, text, headers=headers, url=url)


def error_from_payload(
    status: int,
    payload: object,
    text: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    url: str = "",
) -> APIStatusError:
    """The typed error for a status and an (already redacted) error body."""
    message, code, kind = _error_fields(payload, text)
    if not message:
        message = f"the endpoint answered HTTP {status} with an empty body"
    error_class = status_error_class(status)
    if status == 400 and _is_context_length(code, message):
        error_class = ContextLengthExceededError
    request_id = None
    if headers is not None:
        request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
    return error_class(
        message,
        status_code=status,
        request_id=request_id,
        body=payload if payload is not None else text[:_BODY_EXCERPT],
        code=code,
        error_type=kind,
        retry_after=parse_retry_after(headers) if headers is not None else None,
        hint=_hint(status, error_class, url),
    )


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return True
    if not isinstance(exc, httpx.TimeoutException):
        return False
    cause = exc.__cause__
    # httpx_aiohttp maps a dropped connection to ConnectTimeout: trust only real timeouts.
    from_aiohttp = cause is not None and type(cause).__module__.startswith("aiohttp")
    return not from_aiohttp or isinstance(cause, (TimeoutError, asyncio.TimeoutError))


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a network-level failure (as opposed to a bug or a cancellation)."""
    return isinstance(exc, (httpx.TransportError, OSError, asyncio.TimeoutError)) or (
        type(exc).__module__.startswith("aiohttp") and isinstance(exc, Exception)
    )


def describe_failure(exc: BaseException) -> str:
    """A short description of a network failure, with its underlying cause."""
    cause = exc.__cause__
    detail = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) != detail:
        detail = f"{detail} ({cause})"
    return f"{type(exc).__name__}: {detail}" if str(exc) else detail


def connection_error(
    exc: BaseException, *, url: str, phase: str, secret: str | None
) -> APIConnectionError:
    """:class:`APITimeoutError` or :class:`APIConnectionError` for a failure while ``phase``."""
    detail = redact(describe_failure(exc), secret)
    if _is_timeout(exc):
        return APITimeoutError(
            f"timed out while {phase} {url} ({detail}); allow more time with timeout=... "
            "or check that the endpoint is up",
            url=url,
        )
    return APIConnectionError(
        f"connection failed while {phase} {url}: {detail}; check base_url (or ATDAK_BASE_URL) "
        "and that the endpoint is reachable",
        url=url,
    )


def retry_reason(error: ProviderError) -> str | None:
    """Why ``error`` is worth retrying, or ``None`` when it is not."""
    if isinstance(error, APITimeoutError):
        return "timeout"
    if isinstance(error, APIConnectionError):
        return "connection error"
    if isinstance(error, APIStatusError):
        status = error.status_code
        if status in _RETRY_STATUSES or status >= 500:
            return f"HTTP {status}"
    return None


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

    def attempt_limit(self, deadline: Deadline | None) -> tuple[float | None, str]:
        """Seconds this attempt may take, and what sets that limit (for the error message)."""
        total = self.timeouts.total
        if deadline is None:
            return total, f"the total timeout of {total:g}s" if total else ""
        remaining = max(deadline.remaining(), 0.0)
        if total is None or remaining < total:
            return remaining, f"the call's deadline of {deadline.seconds:g}s"
        return total, f"the total timeout of {total:g}s"

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
        return RetryDecision(attempt, reason, wait, error)

    def _timeout_error(self, why: str) -> APITimeoutError:
        return APITimeoutError(
            f"no complete answer from {self.url} within {why}; allow more time (timeout=..., "
            "deadline=...) or check the endpoint",
            url=self.url,
        )


class FastRequest:
    """A request for the default aiohttp transport, without building an ``httpx.Request``."""

    __slots__ = ("body", "headers", "url")

    def __init__(self, url: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.url = url
        self.headers = headers
        self.body = body


AsyncHandler = Callable[[httpx.Response, "float | None"], Awaitable[T]]
SyncHandler = Callable[[httpx.Response, "float | None"], T]


class AsyncChannel(_Channel):
    """The async send chain over one pooled transport (or a user's ``httpx.AsyncClient``).

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
        self._own_transport: httpx.AsyncBaseTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._plain_pairs = list(self.headers.items())

    def prepare_request(
        self, body: bytes, *, stream: bool, extra_headers: Mapping[str, str] | None = None
    ) -> httpx.Request | FastRequest:
        """An ``httpx.Request``, or a :class:`FastRequest` for the default transport."""
        if self._given_transport is not None or self._http_client is not None:
            return self.build_request(body, stream=stream, extra_headers=extra_headers)
        headers = self._plain_pairs
        if stream or extra_headers:
            merged = {**self.headers, **(extra_headers or {})}
            if stream:
                merged["Accept"] = "text/event-stream"
            headers = list(merged.items())
        return FastRequest(self.url, headers, body)

    async def send(
        self,
        request: httpx.Request | FastRequest,
        handle: AsyncHandler[T],
        *,
        max_retries: int,
        deadline: float | None,
    ) -> T:
        """Send ``request`` with retries; ``deadline`` bounds all attempts and waits together."""
        return await self._send_with_retries(
            request, handle, max_retries, self.call_deadline(deadline)
        )

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
        limit, why = self.attempt_limit(deadline)
        ends_at = None if limit is None else time.monotonic() + limit
        phase = "connecting to"
        scope = _async_timeout(limit)
        try:
            async with scope:
                response = await self._dispatch(request)
                phase = "reading the answer from"
                return await handle(response, ends_at)
        except asyncio.TimeoutError as exc:
            if not _expired(scope):
                raise connection_error(exc, url=self.url, phase=phase, secret=self.secret) from exc
            raise self._timeout_error(why) from None
        except ProviderError:
            raise
        except Exception as exc:
            if not is_transport_failure(exc):
                raise
            raise connection_error(exc, url=self.url, phase=phase, secret=self.secret) from exc

    async def _dispatch(self, request: httpx.Request | FastRequest) -> httpx.Response:
        if isinstance(request, FastRequest):
            transport = cast("AiohttpTransport", self._transport())
            return await transport.send(
                "POST", request.url, request.headers, request.body, self._timeout_ext
            )
        if self._http_client is not None:
            return await self._http_client.send(request, stream=True)
        return await self._transport().handle_async_request(request)

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self._given_transport is not None:
            return self._given_transport
        loop = asyncio.get_running_loop()
        if self._own_transport is None:
            self._own_transport = _aiohttp_transport(self._max_connections, self.timeouts)
            self._loop = loop
        elif loop is not self._loop:
            from ..exceptions import UsageError

            raise UsageError(
                "this AsyncAtdakClient was first used in another event loop, and its connection "
                "pool belongs to that loop: create one client per event loop (for example "
                "inside your `async def main()`), or close it and make a new one"
            )
        return self._own_transport

    async def close(self) -> None:
        """Close the connection pool this channel created (not a transport or client you gave)."""
        transport, self._own_transport = self._own_transport, None
        if transport is not None:
            await transport.aclose()


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


def _expired(scope: Any) -> bool:
    """Whether a timeout scope fired (``asyncio.Timeout.expired()`` / ``async_timeout``'s flag)."""
    expired = scope.expired
    return bool(expired() if callable(expired) else expired)


def _aiohttp_transport(max_connections: int | None, timeouts: Timeouts) -> httpx.AsyncBaseTransport:
    """One pooled aiohttp session behind httpx's transport interface (opened on first use)."""
    from ._aiohttp import AiohttpTransport

    return AiohttpTransport(max_connections=max_connections)


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
        limit, why = self.attempt_limit(deadline)
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
            if ends_at is not None and time.monotonic() >= ends_at and _is_timeout(exc):
                raise self._timeout_error(why) from exc
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
