"""The run API (start, read, stream events, answer, cancel, resume, delete) and the listings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..graph.checkpoint import RUN_STATUSES
from ._errors import HTTPError
from ._events import follow
from ._http import HEARTBEAT, SSE_HEADERS, check_input_size, read_model, sse_event
from ._models import AnswerRequest, RunRequest
from ._served import ServedWorkflow
from ._service import WorkflowService

__all__ = [
    "answer_run",
    "cancel_run",
    "delete_run",
    "get_run",
    "health",
    "list_models",
    "list_runs",
    "list_workflows",
    "resume_run",
    "run_events",
    "start_run",
]

_MAX_LIST = 1000

log = logging.getLogger("atdak_agents.server")


async def start_run(service: WorkflowService, request: Request) -> Response:
    body = await read_model(request, RunRequest)
    manager = service.manager
    served = manager.workflow(body.workflow)
    served.check_session(body.session_id)
    check_input_size(body.inputs, 0, service.config.max_input_chars)
    live = await manager.start(
        served,
        body.inputs,
        session_id=body.session_id,
        key_id=request.state.key_id,
        tokens=body.tokens,
        kind="api",
    )
    info = await manager.info(live.run.id)
    return service.respond(info, 202, {"Location": f"/v1/runs/{live.run.id}"})


async def get_run(service: WorkflowService, request: Request) -> Response:
    return service.respond(await service.manager.info(request.path_params["run_id"]))


async def list_runs(service: WorkflowService, request: Request) -> Response:
    query = request.query_params
    status = query.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise HTTPError(
            400,
            f"status must be one of {', '.join(RUN_STATUSES)}",
            param="status",
            code="invalid_status",
        )
    limit = _int_param(query.get("limit"), "limit", default=100, low=1, high=_MAX_LIST)
    runs = await service.manager.list(
        workflow=query.get("workflow"),
        status=status,
        session_id=query.get("session_id"),
        limit=limit,
    )
    return service.respond({"object": "list", "data": runs})


async def answer_run(service: WorkflowService, request: Request) -> Response:
    body = await read_model(request, AnswerRequest)
    if "answer" not in body.model_fields_set:
        raise HTTPError(400, "answer: Field required", param="answer", code="invalid_body")
    check_input_size(body.answer, 0, service.config.max_input_chars)
    run_id = request.path_params["run_id"]
    manager = service.manager
    await manager.resume(run_id, key_id=request.state.key_id, answer=body.answer)
    return service.respond(await manager.info(run_id), 202)


async def resume_run(service: WorkflowService, request: Request) -> Response:
    run_id = request.path_params["run_id"]
    manager = service.manager
    await manager.resume(run_id, key_id=request.state.key_id)
    return service.respond(await manager.info(run_id), 202)


async def cancel_run(service: WorkflowService, request: Request) -> Response:
    run_id = request.path_params["run_id"]
    await service.manager.cancel(run_id)
    return service.respond(await service.manager.info(run_id))


async def delete_run(service: WorkflowService, request: Request) -> Response:
    """Forget a stopped run (checkpoints and events); 409 while it runs: cancel it first."""
    return service.respond(await service.manager.delete(request.path_params["run_id"]))


# --------------------------------------------------------------------------- events


async def run_events(service: WorkflowService, request: Request) -> Response:
    """The run's events as SSE from after ``Last-Event-ID`` (or ``?after=``); 204 when there
    is nothing newer and the run is not running (so an ``EventSource`` stops reconnecting)."""
    run_id = request.path_params["run_id"]
    manager = service.manager
    info = await manager.info(run_id)  # 404 for an unknown run
    after = _after(request, info["last_event_id"])
    cancel = _bool_param(request.query_params.get("cancel_on_disconnect"), "cancel_on_disconnect")
    if not info["live"] and after >= info["last_event_id"]:
        return Response(status_code=204)
    stream = _events(service, run_id, after, cancel)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


async def _events(
    service: WorkflowService, run_id: str, after: int, cancel_on_disconnect: bool
) -> AsyncIterator[bytes]:
    manager = service.manager

    def channel() -> Any:
        live = manager.live.get(run_id)
        return live.channel if live is not None else None

    finished = False
    try:
        yield b"retry: 1000\n\n"
        async for item in follow(
            run_id,
            after,
            manager.events,
            channel,
            heartbeat=service.config.heartbeat,
            stop=lambda: manager.stopping,  # clients reconnect with Last-Event-ID after a restart
        ):
            yield HEARTBEAT if item is None else sse_event(item)
        finished = True
    except Exception as exc:  # the stream has started: log it and end it (clients reconnect)
        log.error("event stream of run %s: %s", run_id, service.mask(repr(exc)))
    finally:
        if cancel_on_disconnect and not finished and run_id in manager.live:
            manager.in_background(manager.cancel(run_id))


def _after(request: Request, last: int) -> int:
    raw = request.headers.get("last-event-id")
    if raw is None:
        raw = request.query_params.get("after")
    after = _int_param(raw, "Last-Event-ID", default=0, low=0, high=None)
    if after > last:
        raise HTTPError(
            400,
            f"event id {after} is beyond this run's last event ({last})",
            param="Last-Event-ID",
            code="unknown_event_id",
        )
    return after


def _int_param(raw: str | None, name: str, *, default: int, low: int, high: int | None) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        message = f"{name} must be an integer {bounds}"
        raise HTTPError(400, message, param=name, code="invalid_param")
    return value


def _bool_param(raw: str | None, name: str) -> bool:
    if raw is None or raw.lower() in ("", "false", "0", "no"):
        return False
    if raw.lower() in ("true", "1", "yes"):
        return True
    raise HTTPError(400, f"{name} must be true or false", param=name, code="invalid_param")


# --------------------------------------------------------------------------- listings


async def list_workflows(service: WorkflowService, request: Request) -> Response:
    data = [workflow_info(served) for served in service.workflows.values()]
    return service.respond({"object": "list", "data": data})


async def list_models(service: WorkflowService, request: Request) -> Response:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "atdak-agents"}
        for name in service.workflows
    ]
    return service.respond({"object": "list", "data": data})


async def health(service: WorkflowService, request: Request) -> Response:
    manager = service._manager
    stopping = manager is not None and manager.stopping
    return service.respond(
        {
            "status": "stopping" if stopping else "ok",
            "workflows": len(service.workflows),
            "live_runs": len(manager.live) if manager is not None else 0,
        }
    )


def workflow_info(served: ServedWorkflow) -> dict[str, Any]:
    spec = served.spec
    chat = served.chat
    return {
        "name": served.name,
        "description": spec.description,
        "inputs": {
            name: {
                "type": item.type,
                "description": item.description,
                "required": item.required and item.default is None,
                "default": item.default,
                "example": item.example,
            }
            for name, item in spec.inputs.items()
        },
        "outputs": list(spec.outputs),
        "nodes": len(spec.nodes),
        "chat": {
            "input": chat.input,
            "history": chat.history,
            "output": chat.output,
            "streams_from": sorted(chat.streams_from),
        },
    }
