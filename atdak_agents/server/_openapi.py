"""The OpenAPI 3.1 document of a workflow server, built from the same pydantic models that
validate requests (so the two cannot drift), with the served workflows' names filled in."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..graph.checkpoint import RUN_STATUSES
from ..tracing.events import EVENT_TYPES
from . import _models as m
from ._served import ServedWorkflow

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "The request is malformed or names something invalid (see `error.message`).",
    401: "A missing or wrong server key.",
    403: "The server has no keys and the request did not come from loopback.",
    404: "No such workflow or run.",
    409: "The run is not in a state that allows this (running, ended, not waiting).",
    413: "The body or the workflow input is over the server's limit.",
    429: "This key has too many runs in progress; retry after `Retry-After` seconds.",
    500: "The workflow failed (a node raised).",
    502: "The upstream model endpoint failed.",
    503: "The server is starting or stopping; retry after `Retry-After` seconds.",
}
_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


def _schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    pairs = [(model, "validation") for model in models]
    _, top = models_json_schema(pairs, ref_template=_REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": _ERRORS[code], "content": _json("ErrorBody")} for code in codes
    }


def _ok(status: int, schema: str, description: str, **extra: Any) -> dict[str, Any]:
    return {str(status): {"description": description, "content": _json(schema), **extra}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": _json(schema)}


_AUTH = (401, 403, 503)
_RUN_LINKS = {
    name: {"operationId": op, "parameters": {"run_id": "$response.body#/id"}}
    for name, op in (
        ("GetRun", "getRun"),
        ("RunEvents", "runEvents"),
        ("AnswerRun", "answerRun"),
        ("CancelRun", "cancelRun"),
        ("ResumeRun", "resumeRun"),
        ("DeleteRun", "deleteRun"),
    )
}
# Each SSE message (OpenAPI 3.2 reads a stream's `schema` as one event: data, event, id)
_CHAT_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "string",
                    "description": "a chat.completion.chunk as JSON, an error object, or [DONE]",
                },
            },
        }
    }
}
_EVENT_SSE = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data", "event", "id"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the seq"},
                "event": {"type": "string", "enum": sorted(EVENT_TYPES)},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        "type": "object",
                        "required": ["type", "run_id", "seq"],
                        "properties": {
                            "type": {"type": "string"},
                            "run_id": {"type": "string"},
                            "seq": {"type": "integer", "minimum": 1},
                        },
                    },
                },
            },
        }
    }
}


def _paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Whether the server is up (no key needed)",
                "security": [],
                "responses": _ok(200, "Health", "The server's state"),
            }
        },
        "/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "The served workflows as chat models",
                "responses": {**_ok(200, "ModelList", "One model per workflow"), **_errors(*_AUTH)},
            }
        },
        "/v1/workflows": {
            "get": {
                "operationId": "listWorkflows",
                "summary": "The served workflows: inputs, outputs and chat mapping",
                "responses": {**_ok(200, "WorkflowList", "The workflows"), **_errors(*_AUTH)},
            }
        },
        "/v1/chat/completions": {"post": _chat_operation()},
        "/v1/runs": {"post": _start_operation(), "get": _list_operation()},
        "/v1/runs/{run_id}": {
            "get": {
                "operationId": "getRun",
                "summary": "A run's status, result and usage",
                "parameters": [_RUN_ID],
                "responses": {**_ok(200, "RunInfo", "The run"), **_errors(404, *_AUTH)},
            },
            "delete": _delete_operation(),
        },
        "/v1/runs/{run_id}/events": {"get": _events_operation()},
        "/v1/runs/{run_id}/answer": {"post": _answer_operation()},
        "/v1/runs/{run_id}/cancel": {
            "post": {
                "operationId": "cancelRun",
                "summary": "Stop a run (it stays resumable); a live run's current step is "
                "abandoned, completed steps stay",
                "parameters": [_RUN_ID],
                "responses": {
                    **_ok(200, "RunInfo", "The run, now interrupted (or already ended)"),
                    **_errors(404, 409, *_AUTH),
                },
            }
        },
        "/v1/runs/{run_id}/resume": {
            "post": {
                "operationId": "resumeRun",
                "summary": "Continue an interrupted run from its last checkpoint",
                "parameters": [_RUN_ID],
                "responses": {
                    **_ok(202, "RunInfo", "The run, running again"),
                    **_errors(404, 409, 429, *_AUTH),
                },
            }
        },
    }


def _delete_operation() -> dict[str, Any]:
    return {
        "operationId": "deleteRun",
        "summary": "Delete a stopped run: its checkpoints (steps, journaled calls) and events",
        "description": "A run that is `done`, `failed`, `cut_off`, `waiting` or `interrupted` "
        "can be deleted; a running one is refused with 409 (cancel it first). Forks of the "
        "run keep working.",
        "parameters": [_RUN_ID],
        "responses": {
            **_ok(200, "RunDeleted", "What was deleted"),
            **_errors(404, 409, *_AUTH),
        },
    }


def _chat_operation() -> dict[str, Any]:
    return {
        "operationId": "createChatCompletion",
        "summary": "Chat with a workflow (the Atdak/OpenAI chat-completions contract)",
        "description": "`model` names a served workflow. With `stream: true` the answer is a "
        "text/event-stream of `data: {chunk}` lines ending with `data: [DONE]`.",
        "parameters": [
            {
                "name": "X-Session-Id",
                "in": "header",
                "required": False,
                "description": "The conversation whose memory this request continues.",
                "schema": {"type": "string", "minLength": 1, "maxLength": m.SESSION_MAX},
            }
        ],
        "requestBody": _body("ChatRequest"),
        "responses": {
            "200": {
                "description": "The answer (JSON), or its stream (SSE) when `stream` is true",
                "headers": {"X-Run-Id": {"schema": {"type": "string"}}},
                "content": {**_json("ChatCompletionBody"), **_CHAT_SSE},
            },
            **_errors(400, 404, 409, 413, 429, 500, 502, *_AUTH),
        },
    }


def _start_operation() -> dict[str, Any]:
    return {
        "operationId": "startRun",
        "summary": "Start a run in the background; returns at once with its id",
        "requestBody": _body("RunRequest"),
        "responses": {
            "202": {
                "description": "The run, started",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": _json("RunInfo"),
                "links": _RUN_LINKS,
            },
            **_errors(400, 404, 413, 429, *_AUTH),
        },
    }


def _list_operation() -> dict[str, Any]:
    def query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema}

    return {
        "operationId": "listRuns",
        "summary": "Runs, most recently updated first",
        "parameters": [
            query("workflow", {"type": "string"}),
            query("status", {"type": "string", "enum": list(RUN_STATUSES)}),
            query("session_id", {"type": "string"}),
            query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        ],
        "responses": {**_ok(200, "RunList", "The runs"), **_errors(400, *_AUTH)},
    }


def _events_operation() -> dict[str, Any]:
    return {
        "operationId": "runEvents",
        "summary": "A run's trace events as server-sent events, live until it stops",
        "description": "Each message has `id: <seq>` (the event's per-run number), `event: "
        "<type>` and `data: <event JSON>`. Reconnect with `Last-Event-ID` (or `?after=`) to "
        "get exactly the events after that one. 204 when nothing is newer and the run is not "
        "running. Disconnecting does not stop the run unless `cancel_on_disconnect=true`.",
        "parameters": [
            _RUN_ID,
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
            },
            {
                "name": "cancel_on_disconnect",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
            },
        ],
        "responses": {
            "200": {"description": "The event stream", "content": _EVENT_SSE},
            "204": {"description": "No newer events, and the run is not running"},
            **_errors(400, 404, *_AUTH),
        },
    }


def _answer_operation() -> dict[str, Any]:
    return {
        "operationId": "answerRun",
        "summary": "Answer the human node a waiting run asks; the run continues",
        "parameters": [_RUN_ID],
        "requestBody": _body("AnswerRequest"),
        "responses": {
            **_ok(202, "RunInfo", "The run, running again"),
            **_errors(400, 404, 409, 413, 429, *_AUTH),
        },
    }


_BASE = {
    "openapi": "3.1.0",
    "info": {
        "title": "atdak-agents workflow server",
        "version": "1",
        "description": "Chat with served workflows through the Atdak chat-completions "
        "contract, or run them through the run API and follow their events live.",
    },
    "security": [{"bearerAuth": []}],
}


def openapi_document(workflows: Mapping[str, ServedWorkflow]) -> dict[str, Any]:
    """The document, with ``model`` and ``workflow`` limited to the served names and an
    example request for every workflow that declares example inputs."""
    names = sorted(workflows)
    schemas = _schemas(
        [
            m.ChatRequest,
            m.ChatCompletionBody,
            m.ModelList,
            m.RunRequest,
            m.AnswerRequest,
            m.RunInfo,
            m.RunList,
            m.RunDeleted,
            m.WorkflowList,
            m.Health,
            m.ErrorBody,
        ]
    )
    schemas["ChatRequest"]["properties"]["model"]["enum"] = names
    schemas["RunRequest"]["properties"]["workflow"]["enum"] = names
    document = copy.deepcopy(_BASE)
    document["paths"] = paths = _paths()
    runs, chats = _examples(workflows)
    if runs:
        paths["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["examples"] = runs
    if chats:
        chat = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]
        chat["application/json"]["examples"] = chats
    document["components"] = {
        "schemas": schemas,
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    }
    return document


def _examples(
    workflows: Mapping[str, ServedWorkflow],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Example bodies of ``POST /v1/runs`` and ``POST /v1/chat/completions`` per workflow."""
    runs: dict[str, Any] = {}
    chats: dict[str, Any] = {}
    for name, served in sorted(workflows.items()):
        inputs = {
            key: spec.example if spec.example is not None else spec.default
            for key, spec in served.spec.inputs.items()
            if spec.example is not None or spec.default is not None
        }
        if not inputs:
            continue
        session = {"session_id": "example-session"} if served.needs_session else {}
        runs[name] = {"value": {"workflow": name, "inputs": inputs, **session}}
        chat_input = served.chat.input
        text = inputs.get(chat_input) if chat_input else json.dumps(inputs, ensure_ascii=False)
        if isinstance(text, str) and text:
            message = {"role": "user", "content": text}
            chats[name] = {"value": {"model": name, "messages": [message], **session}}
    return runs, chats
