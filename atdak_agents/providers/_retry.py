"""How the clients retry: timeouts, backoff, ``Retry-After``, deadlines, what is retried.

Retried: connection errors, timeouts, 408, 409, 429 and 5xx, with exponential backoff and jitter,
honouring ``Retry-After`` (seconds or an HTTP date, capped). A call's ``deadline`` bounds all its
attempts and waits together. The decision itself is taken in one place,
``_Channel._decide_retry`` in :mod:`._http`.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InvalidParameterError,
    ProviderError,
)

__all__ = [
    "Deadline",
    "RetryDecision",
    "RetryPolicy",
    "Timeouts",
    "parse_retry_after",
    "retry_reason",
    "validate_deadline",
    "validate_max_retries",
]

_RETRY_STATUSES = frozenset({408, 409, 429})


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
