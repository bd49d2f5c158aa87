"""``POST /v1/chat/completions``: the Atdak contract in front of a workflow.

``model`` names the workflow; the messages become its inputs (see :mod:`._chatmap`); the answer
is its output. With ``stream: true`` the answer streams as chat chunks made of the run's
``token`` events, then a last chunk with ``finish_reason`` and ``usage``, then ``data: [DONE]``.
A session (``X-Session-Id`` or ``session_id``) carries memory across requests, and a session
whose run waits for a human takes the next user message as the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..graph.engine import RunResult
from ._chatmap import last_user_text
from ._errors import HTTPError
from ._events import follow
from ._http import (
    DONE,
    HEARTBEAT,
    SSE_HEADERS,
    check_input_size,
    read_model,
    sse_data,
)
from ._models import SESSION_MAX, ChatRequest
from ._runs import CANCELLED, SHUTDOWN_REASON, LiveRun
from ._service import WorkflowService

__all__ = ["chat_completions"]

log = logging.getLogger("atdak_agents.server")

SESSION_HEADER = "x-session-id"
RUN_HEADER = "X-Run-Id"


async def chat_completions(service: WorkflowService, request: Request) -> Response:
    body = await read_model(request, ChatRequest)
    manager = service.manager
    served = manager.workflow(body.model)
    session = _session(request, body)
    served.check_session(session)
    texts = sum(len(m.text) for m in body.messages)
    check_input_size(body.inputs, texts, service.config.max_input_chars)
    key = request.state.key_id
    waiting = await manager.waiting_in_session(served.name, session) if session else None
    if waiting is not None:
        answer = last_user_text(body.messages)
        live = await manager.resume(waiting.run_id, key_id=key, answer=answer, tokens=body.stream)
    else:
        inputs = served.chat.inputs(body.messages, body.inputs)
        live = await manager.start(
            served, inputs, session_id=session, key_id=key, tokens=body.stream, kind="chat"
        )
    headers = {RUN_HEADER: live.run.id}
    if body.stream:
        stream = _stream(service, live, body)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}
        )
    result = await asyncio.shield(live.finished)
    try:
        payload = _completion(service, live, result)
    except HTTPError as exc:  # the run failed or stopped: the error names it too
        exc.headers.update(headers)
        raise
    return service.respond(payload, headers=headers)


def _session(request: Request, body: ChatRequest) -> str | None:
    session = request.headers.get(SESSION_HEADER)
    if session is None:
        session = body.session_id
    if session is not None and not 0 < len(session) <= SESSION_MAX:
        raise HTTPError(
            400,
            f"a session id has 1 to {SESSION_MAX} characters",
            param="session_id",
            code="invalid_session",
        )
    return session


# --------------------------------------------------------------------------- answers


def _completion(service: WorkflowService, live: LiveRun, result: RunResult) -> dict[str, Any]:
    content, finish = _answer(service, live, result)
    return {
        "id": f"chatcmpl-{live.run.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": live.served.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": _usage(result),
        "run": _run_ref(result),
    }


def _answer(service: WorkflowService, live: LiveRun, result: RunResult) -> tuple[str, str]:
    """The answer text and finish reason of a stopped run (an :class:`HTTPError` if none)."""
    status = result.status
    if status == "done":
        return service.mask(live.served.chat.answer(result.output), live.served), "stop"
    if status == "waiting":
        return service.mask(result.question or "", live.served), "stop"
    if status == "failed":
        error = service.mask(result.error or "unknown error", live.served)
        code = 502 if live.upstream_failed else 500
        raise HTTPError(code, f"run {result.run_id} failed: {error}", code="run_failed")
    reason = result.reason or ""
    if reason == SHUTDOWN_REASON:
        raise HTTPError(
            503,
            f"the server is stopping; run {result.run_id} was checkpointed and continues when "
            "it starts again (GET /v1/runs/{id})",
            code="shutting_down",
            headers={"Retry-After": "5"},
        )
    if reason == CANCELLED:
        raise HTTPError(409, f"run {result.run_id} was cancelled", code="run_cancelled")
    return "", "length"  # a run-wide limit stopped it (resumable)


def _usage(result: RunResult) -> dict[str, int]:
    usage = result.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _run_ref(result: RunResult) -> dict[str, Any]:
    question = result.question if result.status == "waiting" else None
    return {"id": result.run_id, "status": result.status, "question": question}


# --------------------------------------------------------------------------- streaming


async def _stream(
    service: WorkflowService, live: LiveRun, body: ChatRequest
) -> AsyncIterator[bytes]:
    chunk = _Chunks(live, int(time.time()))
    mask = service.mask_bytes
    finished = False
    try:
        yield sse_data(chunk.delta({"role": "assistant", "content": ""}))
        streamed: list[str] = []
        async for text in _tokens(service, live):
            if text is None:
                yield HEARTBEAT
                continue
            streamed.append(text)
            yield mask(sse_data(chunk.delta({"content": text})))
        result = await asyncio.shield(live.finished)
        for part in _ending(service, live, result, "".join(streamed), chunk, body):
            yield mask(part)
        finished = True
    except Exception as exc:  # after the answer started, an error can only be a last chunk
        log.error("chat stream of run %s: %s", live.run.id, service.mask(repr(exc)))
        problem = HTTPError(500, "internal server error; the server's log says more")
        yield sse_data(problem.payload()) + DONE
    finally:
        if not finished and body.cancel_on_disconnect and not live.finished.done():
            service.manager.in_background(service.manager.cancel(live.run.id))


async def _tokens(service: WorkflowService, live: LiveRun) -> AsyncIterator[str | None]:
    """The answer's streamed text pieces (``None`` while waiting, for heartbeats)."""
    writers = live.served.chat.streams_from
    channel = live.channel
    events = follow(
        live.run.id,
        channel.base,
        service.manager.events,
        lambda: channel,
        heartbeat=service.config.heartbeat,
    )
    async for item in events:
        if item is None:
            yield None
        elif item.type == "token" and writers:
            event = item.fields()
            text = event.get("text")
            if text and event.get("node") in writers:
                yield text


def _ending(
    service: WorkflowService,
    live: LiveRun,
    result: RunResult,
    streamed: str,
    chunk: _Chunks,
    body: ChatRequest,
) -> list[bytes]:
    try:
        answer, finish = _answer(service, live, result)
    except HTTPError as exc:
        return [sse_data(exc.payload()), DONE]
    parts = []
    rest = answer[len(streamed) :] if answer.startswith(streamed) else ("" if streamed else answer)
    if rest:
        parts.append(sse_data(chunk.delta({"content": rest})))
    last = chunk.delta({}, finish)
    last["usage"] = _usage(result)
    last["run"] = _run_ref(result)
    parts.append(sse_data(last))
    if body.stream_options is not None and body.stream_options.include_usage:
        parts.append(sse_data({**chunk.head(), "choices": [], "usage": _usage(result)}))
    parts.append(DONE)
    return parts


class _Chunks:
    """Builds the chunks of one streamed answer."""

    def __init__(self, live: LiveRun, created: int) -> None:
        self.id = f"chatcmpl-{live.run.id}"
        self.model = live.served.name
        self.created = created

    def head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**self.head(), "choices": [choice]}
