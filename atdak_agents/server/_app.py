"""``create_app``: an ASGI application serving workflows (Starlette underneath).

::

    app = create_app("workflows/")              # uvicorn module:app, or `atdak-agents serve`
    app = create_app([graph], provider=client)  # graphs built in Python, a given endpoint
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _api
from ._chat import chat_completions
from ._chatmap import ChatMapping
from ._config import ServerConfig
from ._errors import HTTPError, error_payload
from ._http import json_response
from ._openapi import openapi_document
from ._served import WorkflowSource, collect_workflows
from ._service import Upstream, WorkflowService

__all__ = ["WorkflowApp", "create_app"]

log = logging.getLogger("atdak_agents.server")

Handler = Callable[[WorkflowService, Request], Awaitable[Response]]


class WorkflowApp(Starlette):
    """The ASGI app :func:`create_app` returns; ``service`` holds its workflows and runs.

    Mounted inside another app (whose lifespan does not reach mounted apps), it starts on its
    first request; give the host app's lifespan ``app.running()`` to also stop it cleanly.
    """

    service: WorkflowService
    document: dict[str, Any]

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document this app serves at ``/openapi.json``."""
        return self.document

    def running(self) -> Any:
        """An async context manager that starts the service and stops it gracefully."""
        return _running(self.service)


@asynccontextmanager
async def _running(service: WorkflowService) -> AsyncIterator[None]:
    await service.start()
    try:
        yield
    finally:
        await service.close()


def create_app(
    workflows: WorkflowSource | Iterable[WorkflowSource],
    *,
    config: ServerConfig | None = None,
    provider: Upstream | Mapping[str, Upstream] | None = None,
    memory: Any = None,
    chat: Mapping[str, ChatMapping | Mapping[str, Any]] | None = None,
    secrets: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> WorkflowApp:
    """An ASGI app serving ``workflows`` over HTTP.

    ``workflows``: graphs, specs, loaded workflows, workflow files or folders of them (every
    problem of every file is reported at once). ``config``: keys, database and limits
    (:class:`ServerConfig`). ``provider``: the model endpoint for every run — client settings
    (``ProviderSpec(base_url=..., api_key=...)``: one pooled client, opened and closed by the
    server) or a chat model you own; default: one pooled client from ``ATDAK_API_KEY`` and
    ``ATDAK_BASE_URL`` (and one per workflow ``provider:`` section); a mapping gives them per
    workflow name. ``memory``: the memory store of
    workflows that declare none. ``chat``: per-workflow :class:`ChatMapping` overrides.
    ``secrets``: more values to mask in every answer, event and log line. ``env``: replaces
    ``os.environ`` for ``${NAME}`` in workflow files.
    """
    config = config or ServerConfig()
    served = collect_workflows(workflows, chat=chat, env=env)
    service = WorkflowService(served, config, provider=provider, memory=memory, secrets=secrets)
    document = openapi_document(served)

    async def openapi(request: Request) -> Response:
        return json_response(document)

    app = WorkflowApp(
        routes=[Route("/openapi.json", openapi, methods=["GET"]), *_routes(service)],
        exception_handlers={
            HTTPError: _http_error(service),
            HTTPException: _starlette_error,
            Exception: _crash(service),
        },
        lifespan=lambda app: _running(service),
    )
    app.service = service
    app.document = document
    app.add_middleware(Guard, service=service)
    return app


_ROUTES: list[tuple[str, str, Handler, frozenset[str]]] = [
    ("/healthz", "GET", _api.health, frozenset()),
    ("/v1/models", "GET", _api.list_models, frozenset()),
    ("/v1/workflows", "GET", _api.list_workflows, frozenset()),
    ("/v1/chat/completions", "POST", chat_completions, frozenset()),
    ("/v1/runs", "POST", _api.start_run, frozenset()),
    ("/v1/runs", "GET", _api.list_runs, frozenset({"workflow", "status", "session_id", "limit"})),
    ("/v1/runs/{run_id}", "GET", _api.get_run, frozenset()),
    ("/v1/runs/{run_id}", "DELETE", _api.delete_run, frozenset()),
    (
        "/v1/runs/{run_id}/events",
        "GET",
        _api.run_events,
        frozenset({"after", "cancel_on_disconnect"}),
    ),
    ("/v1/runs/{run_id}/answer", "POST", _api.answer_run, frozenset()),
    ("/v1/runs/{run_id}/cancel", "POST", _api.cancel_run, frozenset()),
    ("/v1/runs/{run_id}/resume", "POST", _api.resume_run, frozenset()),
]


def _routes(service: WorkflowService) -> list[Route]:
    return [
        Route(path, _bind(service, handler, query), methods=[method], name=f"{method} {path}")
        for path, method, handler, query in _ROUTES
    ]


def _bind(
    service: WorkflowService, handler: Handler, query: frozenset[str]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        unknown = sorted(set(request.query_params) - query)
        if unknown:
            allowed = ", ".join(sorted(query)) or "none"
            raise HTTPError(
                400,
                f"unknown query parameter {unknown[0]!r} (this endpoint takes: {allowed})",
                param=unknown[0],
                code="unknown_parameter",
            )
        try:
            return await handler(service, request)
        except HTTPError:
            raise
        except Exception as exc:  # answered here, so no unmasked traceback reaches a log
            return _crashed(service, request, exc)

    endpoint.__name__ = handler.__name__
    return endpoint


# --------------------------------------------------------------------------- errors


def _http_error(service: WorkflowService) -> Callable[[Request, Exception], Response]:
    def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        payload = exc.payload()
        payload["error"]["message"] = service.mask(exc.message)
        return json_response(payload, exc.status, exc.headers)

    return handle


def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no such endpoint: {request.url.path} (see /openapi.json)"}.get(
        exc.status_code, str(exc.detail)
    )
    return json_response(error_payload(exc.status_code, message), exc.status_code, exc.headers)


def _crash(service: WorkflowService) -> Callable[[Request, Exception], Response]:
    def handle(request: Request, exc: Exception) -> Response:
        return _crashed(service, request, exc)

    return handle


def _crashed(service: WorkflowService, request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, service.mask(repr(exc)))
    message = "internal server error; the server's log says more"
    return json_response(error_payload(500, message, code="internal_error"), 500)


# --------------------------------------------------------------------------- the guard


class Guard:
    """Every request passes here first: the body limit, the server keys, and (for an app
    whose lifespan never ran, e.g. a mounted one) the service's start."""

    def __init__(self, app: ASGIApp, service: WorkflowService) -> None:
        self.app = app
        self.service = service
        self.limit = service.config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._admit(scope)
        except HTTPError as exc:
            await _send_error(send, exc, self.service)
            return
        await self.app(scope, self._limited(receive), send)

    async def _admit(self, scope: Scope) -> None:
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise _too_large(self.limit)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.startswith("/v1/"):
            scope.setdefault("state", {})["key_id"] = self.service.authenticate(scope)
            if not self.service.started:
                await self.service.start()

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        return counted


def _too_large(limit: int) -> HTTPError:
    return HTTPError(
        413,
        f"the request body is over this server's limit of {limit} bytes (max_body_bytes)",
        code="body_too_large",
    )


async def _send_error(send: Send, exc: HTTPError, service: WorkflowService) -> None:
    response = json_response(
        error_payload(exc.status, service.mask(exc.message), code=exc.code, param=exc.param),
        exc.status,
        exc.headers,
    )
    await response({"type": "http"}, _nothing, send)


async def _nothing() -> Message:  # pragma: no cover - a Response never reads the request
    return {"type": "http.disconnect"}
