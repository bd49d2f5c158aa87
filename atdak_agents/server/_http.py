"""Small HTTP pieces shared by the endpoints: JSON in and out, SSE framing, size checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ._errors import HTTPError
from ._events import StoredEvent

__all__ = [
    "DONE",
    "HEARTBEAT",
    "SSE_HEADERS",
    "check_input_size",
    "json_response",
    "read_model",
    "sse_data",
    "sse_event",
]

M = TypeVar("M", bound=BaseModel)

DONE = b"data: [DONE]\n\n"
HEARTBEAT = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS, default=str),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


async def read_model(request: Request, model: type[M]) -> M:
    """The request's JSON body validated as ``model`` (a 400 error saying what is wrong)."""
    body = await request.body()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, where = _first_problem(exc)
        raise HTTPError(400, message, param=where, code="invalid_body") from None


def _first_problem(exc: ValidationError) -> tuple[str, str | None]:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or None
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where or 'body'}: {first['msg']}{more}", where


def check_input_size(inputs: Any, texts: int, limit: int) -> None:
    """Refuse inputs larger than ``limit`` characters (``texts``: characters already counted)."""
    size = texts + (len(json.dumps(inputs, ensure_ascii=False, default=str)) if inputs else 0)
    if size > limit:
        raise HTTPError(
            413,
            f"the workflow input is {size} characters, over this server's limit of {limit} "
            "(max_input_chars)",
            code="input_too_large",
        )


def sse_event(event: StoredEvent) -> bytes:
    """A run event as an SSE message: ``id`` is its ``seq``, ``event`` its type."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), event.data)


def sse_data(payload: Any) -> bytes:
    """A ``data:`` line of JSON, as chat streams send them."""
    return b"data: " + orjson.dumps(payload, default=str) + b"\n\n"
