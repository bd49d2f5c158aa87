"""From HTTP failures to atdak_agents' typed errors, with the API key redacted from all of them.

Status errors carry the server's message (from an OpenAI-style ``{"error": {...}}`` body, any
other JSON, plain text, or nothing), its ``code`` and ``type``, the request id, ``Retry-After``
and a hint on how to fix the problem. Every text that comes from the server passes through
:func:`redact` before it is kept.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import httpx

from ..exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ContextLengthExceededError,
    status_error_class,
)
from ._retry import parse_retry_after

__all__ = [
    "connection_error",
    "describe_failure",
    "error_from_payload",
    "is_timeout",
    "is_transport_failure",
    "redact",
    "status_error",
]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id")
_BODY_EXCERPT = 2000


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (the API key) replaced by ``***``."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text


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


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException))


def is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a network-level failure (as opposed to a bug or a cancellation)."""
    return isinstance(exc, (httpx.TransportError, OSError, asyncio.TimeoutError))


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
    if is_timeout(exc):
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
