from __future__ import annotations

import asyncio

from atdak_agents.tracing import EventBus, MemorySink, Scope, current_scope, emit, scope, span
from atdak_agents.tracing.events import NodeStarted, TokenDelta, ToolCalled


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
