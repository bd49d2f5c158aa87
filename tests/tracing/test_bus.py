from __future__ import annotations

import asyncio
import dataclasses
import json

from atdak_agents.tracing import (
    EventBus,
    MemorySink,
    Redactor,
    Scope,
    current_scope,
    emit,
    scope,
    span,
)
from atdak_agents.tracing.events import (
    EventBase,
    NodeFinished,
    NodeStarted,
    StateUpdated,
    TokenDelta,
    ToolCalled,
    ToolReturned,
    event_from_json,
    event_to_json,
)


def make_scope(bus: EventBus) -> Scope:
    return Scope(bus, bus.run_id, "root-span", None, step=1, node="a")


def test_emit_outside_a_run_does_nothing() -> None:
    assert current_scope() is None
    assert emit(NodeStarted, kind="llm") is None


def test_emit_with_nobody_listening_creates_no_event() -> None:
    bus = EventBus("r")
    with scope(make_scope(bus)):
        assert emit(NodeStarted, kind="llm") is None
    assert bus.last_seq == 0


def test_events_are_numbered_and_carry_their_scope() -> None:
    sink = MemorySink()
    bus = EventBus("r", [sink])
    with scope(make_scope(bus)):
        emit(NodeStarted, kind="llm")
        with span(node="a/tool") as child:
            emit(ToolCalled, tool="t", call_id="1")
    first, second = sink.events
    assert (first.seq, second.seq) == (1, 2)
    assert first.span_id == "root-span" and first.node == "a"
    assert child is not None
    assert second.span_id == child.span_id != "root-span"
    assert second.parent_span_id == "root-span"
    assert second.node == "a/tool" and second.step == 1


async def test_subscription_streams_live_with_filters() -> None:
    bus = EventBus("r")
    everything = bus.subscribe()
    no_tokens = bus.subscribe(exclude={"token"})
    private = bus.subscribe(content=False)
    received: list[str] = []

    async def consume() -> None:
        async for event in no_tokens:
            received.append(event.type)

    consumer = asyncio.create_task(consume())
    with scope(make_scope(bus)):
        emit(TokenDelta, text="你", size=1)
        await asyncio.sleep(0)
        emit(NodeStarted, kind="llm")
    bus.close()
    await consumer
    assert received == ["node_started"]
    assert [e.type for e in everything.drain()] == ["token", "node_started"]
    token = private.drain()[0]
    assert isinstance(token, TokenDelta) and token.text is None and token.size == 1


async def test_concurrent_tasks_keep_their_own_spans() -> None:
    sink = MemorySink()
    bus = EventBus("r", [sink])

    async def branch(name: str) -> None:
        with span(node=name):
            await asyncio.sleep(0)
            emit(NodeStarted, kind="function")

    with scope(make_scope(bus)):
        await asyncio.gather(branch("left"), branch("right"))
    nodes = sorted(e.node or "" for e in sink.events)
    assert nodes == ["left", "right"]
    assert len({e.span_id for e in sink.events}) == 2


# --------------------------------------------------------------------------- line sinks


class LineCollector:
    """A line sink keeping what it receives."""

    takes_lines = True

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write_line(self, line: bytes) -> None:
        self.lines.append(line)

    def close(self) -> None:
        return None


def emit_some(bus: EventBus) -> None:
    with scope(make_scope(bus)):
        emit(NodeStarted, kind="function")
        emit(StateUpdated, keys=["n"], values={"n": [1, "two"]})
        emit(ToolCalled, tool="t", call_id="c1")  # not every field given: defaults fill in
        with span(node="a/b"):
            emit(NodeFinished, kind="llm", duration=0.5, updated=["n"], error=None)


def test_only_line_sinks_listening_no_event_objects_are_built() -> None:
    bus = EventBus("r", [LineCollector()])
    with scope(make_scope(bus)):
        assert emit(NodeStarted, kind="llm") is None
    assert bus.last_seq == 1


def test_line_path_and_object_path_write_the_same_events() -> None:
    lines_only, beside_objects = LineCollector(), LineCollector()
    emit_some(EventBus("r", [lines_only]))
    memory = MemorySink()
    emit_some(EventBus("r", [beside_objects, memory]))
    fast = [event_from_json(line) for line in lines_only.lines]
    slow = [event_from_json(line) for line in beside_objects.lines]
    assert all(line.endswith(b"\n") for line in lines_only.lines)
    assert [strip_ids(e) for e in fast] == [strip_ids(e) for e in slow]
    assert [strip_ids(e) for e in fast] == [strip_ids(e) for e in memory.events]
    assert isinstance(fast[2], ToolCalled) and fast[2].arguments is None


def strip_ids(event: EventBase) -> EventBase:
    return dataclasses.replace(event, ts=0.0, span_id="", parent_span_id=None)


# --------------------------------------------------------------------------- privacy on the bus


async def test_bus_privacy_applies_to_every_sink_and_subscriber() -> None:
    lines, memory = LineCollector(), MemorySink()
    redactor = Redactor(secrets=["hunter2-password"])
    bus = EventBus("r", [lines, memory], content=False, redactor=redactor)
    live = bus.subscribe()
    with scope(make_scope(bus)):
        emit(ToolReturned, tool="t", content="私密 hunter2-password", size=19)
        emit(NodeFinished, kind="function", error="ValueError: hunter2-password is wrong")
    bus.close()
    received = [*memory.events, *live.drain(), *(event_from_json(x) for x in lines.lines)]
    assert len(received) == 6
    for event in received:
        text = event_to_json(event).decode()
        assert "hunter2" not in text and "私密" not in text
    returned = [e for e in received if isinstance(e, ToolReturned)]
    assert all(e.content is None and e.size == 19 for e in returned)
    finished = [e for e in received if isinstance(e, NodeFinished)]
    assert all(e.error == "ValueError: *** is wrong" for e in finished)


def test_secrets_are_masked_on_the_line_path_even_when_json_escapes_them() -> None:
    lines = LineCollector()
    secret = 'pa"ss\\word-42'
    bus = EventBus("r", [lines], redactor=Redactor(secrets=[secret]))
    with scope(make_scope(bus)):
        emit(StateUpdated, keys=["k"], values={"k": f"x {secret} y"})
    (line,) = lines.lines
    assert secret not in json.loads(line)["values"]["k"]
    assert json.loads(line)["values"]["k"] == "x *** y"
