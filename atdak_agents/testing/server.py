"""A local, Atdak-compatible chat-completions server: the embedded default and the test bed.

It implements the contract over real HTTP on 127.0.0.1 — JSON answers and SSE streams, the
bearer-key check, OpenAI-style error bodies, ``usage`` figures, the context-window check of the
known models — and answers with a pluggable responder (see :mod:`.responders`), including faults
on purpose. Run it inside a running event loop or in a background thread::

    async with LocalAtdakServer(["你好！"]) as server:      # in the current event loop
        client = server.async_client()

    with LocalAtdakServer(latency=0.2) as server:           # in a background thread
        client = server.client()

or from the command line: ``atdak-agents local-server --port 8000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from aiohttp import web

from ..providers.profiles import ModelRegistry, default_registry
from ..providers.streaming import estimate_tokens
from . import _answers
from .responders import (
    ReceivedRequest,
    Reply,
    ReplyLike,
    Responder,
    as_responder,
    resolve_reply,
)

if TYPE_CHECKING:
    from ..providers.client import AsyncAtdakClient, AtdakClient

__all__ = ["DEFAULT_API_KEY", "LocalAtdakServer", "TokenCounter"]

DEFAULT_API_KEY = "sk-local-atdak"

TokenCounter: TypeAlias = Callable[[Any, str], int]
"""``counter(text_or_messages, model) -> tokens``: how the server fills ``usage``."""

_HANG_SECONDS = 3600.0
_SPLIT_PAUSE = 0.005  # between the writes of a "split_utf8" stream, so they arrive apart


class LocalAtdakServer:
    """A real HTTP server speaking the Atdak chat-completions contract.

    ``responder``: who answers (a callable, a list of replies, a string, or ``None`` to echo).
    ``api_key``: the bearer key it requires (``None``: any). ``latency``: seconds added before
    every answer (load tests). ``chunk_size``: characters per stream chunk. ``native_tools``:
    accept OpenAI-style ``tools`` (``True``, or a collection of model names). ``token_counter``:
    fills ``usage`` (default: atdak_agents' estimator). ``registry``: models whose context
    window is enforced (unknown models are accepted). ``record``: keep every request in
    ``requests``.
    """

    def __init__(
        self,
        responder: Responder | Sequence[ReplyLike | Responder] | str | Reply | None = None,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        chunk_size: int = 4,
        native_tools: bool | Collection[str] = False,
        token_counter: TokenCounter | None = None,
        registry: ModelRegistry | None = None,
        record: bool = True,
    ) -> None:
        self.responder = responder  # the setter normalises it
        self.api_key = api_key
        self.host = host
        self.port = port
        self.latency = latency
        self.chunk_size = chunk_size
        self.native_tools = native_tools
        self.token_counter: TokenCounter = token_counter or estimate_tokens
        self.registry = registry if registry is not None else default_registry
        self.record = record
        self.requests: list[ReceivedRequest] = []
        self._count = 0
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- configuration

    @property
    def responder(self) -> Responder:
        """Who answers; assign a callable, a list of replies, a string or ``None`` (echo)."""
        return self._responder

    @responder.setter
    def responder(
        self, value: Responder | Sequence[ReplyLike | Responder] | str | Reply | None
    ) -> None:
        self._responder = as_responder(value)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the port is known once the server started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give a client: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def client(self, **options: Any) -> AtdakClient:
        """An :class:`~atdak_agents.AtdakClient` pointed at this server (``options`` passed on)."""
        from ..providers.client import AtdakClient

        options.setdefault("api_key", self.api_key or "any-key")
        return AtdakClient(base_url=self.base_url, **options)

    def async_client(self, **options: Any) -> AsyncAtdakClient:
        """An :class:`~atdak_agents.AsyncAtdakClient` pointed at this server."""
        from ..providers.client import AsyncAtdakClient

        options.setdefault("api_key", self.api_key or "any-key")
        return AsyncAtdakClient(base_url=self.base_url, **options)

    def reset(
        self, responder: Responder | Sequence[ReplyLike | Responder] | str | Reply | None = None
    ) -> None:
        """Forget recorded requests and set a new responder (for a server shared by tests)."""
        self.requests.clear()
        self.responder = responder

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> LocalAtdakServer:
        """Start serving in the running event loop."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        sock = socket.create_server((self.host, self.port), backlog=4096)
        self.port = sock.getsockname()[1]
        await web.SockSite(runner, sock, backlog=4096).start()
        self._runner = runner
        self._stopping = asyncio.Event()
        return self

    async def stop(self) -> None:
        """Stop serving (ends hanging answers first)."""
        if self._stopping is not None:
            self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def serve_forever(self) -> None:
        """Start, then serve until cancelled (used by ``atdak-agents local-server``)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def start_in_thread(self) -> LocalAtdakServer:
        """Start serving in a background thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # report to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="atdak-local-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop_in_thread(self) -> None:
        """Stop a server started with :meth:`start_in_thread` and wait for its thread."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopping is not None:
            loop.call_soon_threadsafe(self._stopping.set)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = self._thread_loop = None

    def __enter__(self) -> LocalAtdakServer:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_in_thread()

    async def __aenter__(self) -> LocalAtdakServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        return f"LocalAtdakServer({self.base_url!r}, {state}, responder={self._responder!r})"

    # ----------------------------------------------------------------- handlers

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "owned_by": "atdak"} for name in self.registry.names()
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = await self._receive(request)
        rid = f"req_{received.index}"
        if not received.authorized:
            message = (
                "Incorrect API key provided. You can find your API key in your account settings."
            )
            return _error(
                401, message, kind="invalid_request_error", code="invalid_api_key", rid=rid
            )
        body = received.body
        problem = _answers.check_body(body, native_tools=self._native_tools(received.model))
        if problem is not None:
            return _error(400, problem[0], kind="invalid_request_error", param=problem[1], rid=rid)
        prompt_tokens = self.token_counter(body["messages"], received.model)
        too_long = self._context_problem(received.model, prompt_tokens, body.get("max_tokens"))
        if too_long is not None:
            return _error(
                400,
                too_long,
                kind="invalid_request_error",
                code="context_length_exceeded",
                param="messages",
                rid=rid,
            )
        reply = await resolve_reply(self._responder, received)
        wait = self.latency + reply.delay
        if wait > 0:
            await asyncio.sleep(wait)
        return await self._answer(request, received, reply, prompt_tokens, rid)

    async def _receive(self, request: web.Request) -> ReceivedRequest:
        index = self._count
        self._count += 1
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        auth = request.headers.get("Authorization", "")
        authorized = self.api_key is None or auth == f"Bearer {self.api_key}"
        headers = {
            k: ("***" if k.lower() == "authorization" else v) for k, v in request.headers.items()
        }
        received = ReceivedRequest(
            index=index, path=request.path, headers=headers, body=body, authorized=authorized
        )
        if self.record:
            self.requests.append(received)
        return received

    def _native_tools(self, model: str) -> bool:
        if isinstance(self.native_tools, bool):
            return self.native_tools
        return model in self.native_tools

    def _context_problem(
        self, model: str, prompt_tokens: int, max_tokens: int | None
    ) -> str | None:
        profile = self.registry.find(model)
        if profile is None or prompt_tokens + (max_tokens or 0) <= profile.context_window:
            return None
        return (
            f"This model's maximum context length is {profile.context_window} tokens. However, "
            f"you requested {prompt_tokens + (max_tokens or 0)} tokens ({prompt_tokens} in the "
            f"messages, {max_tokens or 0} in the completion). Please reduce the length of the "
            "messages or completion."
        )

    async def _answer(
        self,
        request: web.Request,
        received: ReceivedRequest,
        reply: Reply,
        prompt_tokens: int,
        rid: str,
    ) -> web.StreamResponse:
        if reply.fault == "hang":
            await self._hang()
        if reply.fault == "disconnect":
            return await _drop(request)
        if reply.status >= 400:
            return _status_answer(reply, rid)
        usage = self._usage(reply, prompt_tokens, received.model)
        if received.stream:
            return await self._stream(request, received, reply, usage, rid)
        return await self._json(request, received, reply, usage, rid)

    async def _hang(self) -> None:
        assert self._stopping is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), _HANG_SECONDS)

    def _usage(self, reply: Reply, prompt_tokens: int, model: str) -> dict[str, int]:
        if reply.usage is not None:
            return dict(reply.usage)
        completion = self.token_counter(reply.text, model) if reply.text else 0
        for call in _answers.tool_calls_of(reply, 0):
            completion += self.token_counter(
                call["function"]["name"] + call["function"]["arguments"], model
            )
        completion = max(completion, 1)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    async def _json(
        self,
        request: web.Request,
        received: ReceivedRequest,
        reply: Reply,
        usage: Mapping[str, int],
        rid: str,
    ) -> web.StreamResponse:
        body = _answers.completion_body(
            reply,
            completion_id=f"chatcmpl-{received.index}",
            model=received.model,
            created=int(time.time()),
            usage=usage,
            empty=reply.fault == "empty_choices",
        )
        headers = {"x-request-id": rid, **reply.headers}
        if reply.fault == "malformed_sse":
            return web.Response(body=b"{not json", content_type="application/json", headers=headers)
        if reply.fault == "drop_mid_stream":
            response = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            return await _drop(request, response)
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def _stream(
        self,
        request: web.Request,
        received: ReceivedRequest,
        reply: Reply,
        usage: Mapping[str, int],
        rid: str,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-request-id": rid,
                **reply.headers,
            }
        )
        await response.prepare(request)
        created = int(time.time())
        cid = f"chatcmpl-{received.index}"
        events = list(
            _answers.stream_events(
                reply,
                completion_id=cid,
                model=received.model,
                created=created,
                chunk_size=self.chunk_size,
                request_index=received.index,
            )
        )
        if reply.fault == "empty_choices":
            events.insert(0, _answers.usage_event(cid, received.model, created, usage))
        if reply.fault in ("drop_mid_stream", "malformed_sse", "stream_error"):
            return await self._broken_stream(request, response, reply, events)
        if reply.stream_usage or _include_usage(received.body):
            events.append(_answers.usage_event(cid, received.model, created, usage))
        if reply.fault != "no_done":
            events.append(b"data: [DONE]\n\n")
        await self._write_events(response, reply, events)
        await response.write_eof()
        return response

    async def _write_events(
        self, response: web.StreamResponse, reply: Reply, events: list[bytes]
    ) -> None:
        if reply.fault == "split_utf8":
            for piece in _answers.split_inside_characters(b"".join(events)):
                await response.write(piece)
                await asyncio.sleep(_SPLIT_PAUSE)
            return
        for event in events:
            await response.write(event)
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)

    async def _broken_stream(
        self, request: web.Request, response: web.StreamResponse, reply: Reply, events: list[bytes]
    ) -> web.StreamResponse:
        await self._write_events(response, reply, events[: reply.fault_after])
        if reply.fault == "drop_mid_stream":
            return await _drop(request, response)
        if reply.fault == "malformed_sse":
            await response.write(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n')
        else:  # stream_error
            status = reply.status if reply.status >= 400 else 500
            message = reply.error or "The server had an error while processing your request."
            error = {
                "message": message,
                "type": reply.error_type or "server_error",
                "code": reply.error_code or status,
            }
            await response.write(_answers.sse(json.dumps({"error": error}, ensure_ascii=False)))
        await response.write_eof()
        return response


def _include_usage(body: Any) -> bool:
    options = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _error(
    status: int,
    message: str,
    *,
    kind: str,
    rid: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = _answers.error_body(message, kind=kind, code=code, param=param)
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={"x-request-id": rid, **(headers or {})},
    )


def _status_answer(reply: Reply, rid: str) -> web.Response:
    headers = dict(reply.headers)
    if reply.retry_after is not None:
        value = reply.retry_after
        headers["Retry-After"] = value if isinstance(value, str) else f"{value:g}"
    if reply.body is not None:
        raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return web.Response(status=reply.status, body=raw, headers={"x-request-id": rid, **headers})
    kind = reply.error_type or ("invalid_request_error" if reply.status < 500 else "server_error")
    message = reply.error or f"error {reply.status}"
    return _error(reply.status, message, kind=kind, code=reply.error_code, rid=rid, headers=headers)


async def _drop(
    request: web.Request, response: web.StreamResponse | None = None
) -> web.StreamResponse:
    """Close the connection under a request (after what was written so far is sent)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError  # nothing more to send: end the handler quietly
