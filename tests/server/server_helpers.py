"""Workflows and small tools shared by the server tests."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from atdak_agents.graph.build import Graph
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.spec import ProviderSpec
from atdak_agents.server import BackgroundServer, ServerConfig, create_app
from atdak_agents.testing import LocalAtdakServer

UPSTREAM_KEY = "sk-upstream-7f3a9c1e5b2d4680aa11"

# --------------------------------------------------------------------------- workflows


def echo_graph() -> Graph:
    """One llm node: the answer is the model's reply to the question."""
    g = GraphBuilder("echo", model="atdak-gpt-4-mini", description="Answers in one call")
    g.input("question", str, example="你好")
    g.state("answer", str)
    g.llm("reply", "{{ inputs.question }}", writes="answer")
    g.chain("reply", "end")
    g.output("answer", "state.answer")
    return g.build()


def three_step_graph() -> Graph:
    """classify → draft → polish: three model calls in a row (the load benchmark's shape)."""
    g = GraphBuilder("three", model="atdak-gpt-4-mini")
    g.input("question", str)
    g.state("category", str)
    g.state("draft", str)
    g.state("answer", str)
    g.llm("classify", "Category of: {{ inputs.question }}", writes="category")
    g.llm("draft", "Draft for {{ inputs.question }}", writes="draft")
    g.llm("polish", "{{ inputs.question }}", writes="answer")
    g.chain("classify", "draft", "polish", "end")
    g.output("answer", "state.answer")
    return g.build()


def memory_graph() -> Graph:
    """A conversation kept in memory per session: earlier turns go into the prompt."""
    g = GraphBuilder("remember", model="atdak-gpt-4-mini")
    g.input("message", str, example="我叫小明")
    g.state("history", list)
    g.state("answer", str)
    g.memory_read("recall", writes="history", last=10)
    g.llm(
        "reply",
        "{% for m in state.history %}[{{ m.role }}: {{ m.content }}] {% endfor %}"
        "{{ inputs.message }}",
        writes="answer",
    )
    g.memory_write(
        "save",
        [
            {"role": "user", "content": "{{ inputs.message }}"},
            {"role": "assistant", "content": "{{ state.answer }}"},
        ],
    )
    g.chain("recall", "reply", "save", "end")
    g.output("answer", "state.answer")
    return g.build()


def _finalize(state: Any) -> dict[str, Any]:
    verdict = "sent" if state["approved"] == "yes" else "dropped"
    return {"answer": f"{verdict}: {state['draft']}"}


def approval_graph() -> Graph:
    """draft (model) → a human approves → the answer says what happened."""
    g = GraphBuilder("approve", model="atdak-gpt-4-mini")
    g.input("request", str, example="refund order #10423")
    g.state("draft", str)
    g.state("approved", str)
    g.state("answer", str)
    g.llm("write", "{{ inputs.request }}", writes="draft")
    g.human("review", "Send {{ state.draft }}?", writes="approved", choices=["yes", "no"])
    g.function("finalize", _finalize, writes=["answer"])
    g.chain("write", "review", "finalize", "end")
    g.output("answer", "state.answer")
    return g.build()


class Gate:
    """Lets a test hold a function node inside its step and release it (across threads)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    async def wait(self) -> None:
        self.calls += 1
        self.entered.set()
        # a threading.Event, released from the test's thread: poll it
        while not self.release.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


GATES: dict[str, Gate] = {}


async def _gated(state: Any) -> dict[str, Any]:
    await GATES["slow"].wait()
    return {"log": "slow"}


def _quick(state: Any) -> dict[str, Any]:
    return {"log": "quick"}


def slow_graph() -> Graph:
    """slow (held by ``GATES['slow']``) → quick → quick2: steps a test can stop between."""
    g = GraphBuilder("slow")
    g.state("log", list, reducer="append")
    g.function("slow", _gated, writes=["log"])
    g.function("quick", _quick, writes=["log"])
    g.function("quick2", _quick, writes=["log"])
    g.chain("slow", "quick", "quick2", "end")
    g.output("answer", "state.log")
    return g.build()


def all_graphs() -> list[Graph]:
    return [echo_graph(), three_step_graph(), memory_graph(), approval_graph(), slow_graph()]


# --------------------------------------------------------------------------- serving


def provider_of(upstream: LocalAtdakServer) -> ProviderSpec:
    return ProviderSpec(base_url=upstream.base_url, api_key=upstream.api_key, max_retries=0)


@contextmanager
def serving(
    upstream: LocalAtdakServer,
    tmp_path: Path,
    *,
    graphs: list[Graph] | None = None,
    **config: Any,
) -> Iterator[BackgroundServer]:
    """The server on loopback (a free port) over a database in ``tmp_path``."""
    from atdak_agents.memory import SQLiteStore

    settings = {"database": tmp_path / "server.db", **config}
    app = create_app(
        graphs if graphs is not None else all_graphs(),
        config=ServerConfig(**settings),
        provider=provider_of(upstream),
        memory=SQLiteStore(tmp_path / "memory.db"),
    )
    with BackgroundServer(app) as server:
        yield server


def sse_messages(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """SSE messages (``id``, ``event``, ``data`` parsed as JSON) from a response's lines."""
    message: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "data" in message:
                yield message
            message = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            message["data"] = json.loads(value) if value != "[DONE]" else value
        elif field == "id":
            message["id"] = int(value)
        elif field == "event":
            message["event"] = value


def read_events(
    client: httpx.Client, run_id: str, *, after: int | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The run's SSE events after ``after`` (up to ``limit`` of them, then disconnect)."""
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    got: list[dict[str, Any]] = []
    with client.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
        if response.status_code == 204:
            return got
        assert response.status_code == 200, response.read()
        for message in sse_messages(response.iter_lines()):
            got.append(message)
            if limit is not None and len(got) >= limit:
                break
    return got


def wait_for(client: httpx.Client, run_id: str, *statuses: str, timeout: float = 10.0) -> dict:
    """Poll ``GET /v1/runs/{id}`` until the run has one of ``statuses``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        info = client.get(f"/v1/runs/{run_id}").json()
        if info["status"] in statuses and not info["live"]:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is {info['status']}, not {statuses}: {info}")
        time.sleep(0.01)
