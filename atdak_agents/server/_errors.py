"""HTTP errors as the OpenAI-style body every Atdak client understands.

::

    {"error": {"message": "...", "type": "invalid_request_error", "code": "...", "param": null}}

Handlers raise :class:`HTTPError`; the app turns it into that body. A message says what was
wrong, where and how to fix it, and never holds a key (the app masks secrets in every answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ERROR_TYPES", "HTTPError", "error_payload"]

#: status -> the ``type`` of the error body
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "unavailable_error",
}


class HTTPError(Exception):
    """An answer with an error status; ``code`` is a stable machine-readable reason."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def payload(self) -> dict[str, Any]:
        return error_payload(self.status, self.message, code=self.code, param=self.param)


def error_payload(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The JSON body of an error answer."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}
