from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

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
    """A line sink keeping what it receives (of the given types, or all)."""

    takes_lines = True

    def __init__(self, *types: str) -> None:
        self.lines: list[bytes] = []
        if types:
            self.event_types = frozenset(types)

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


# --------------------------------------------------------------------------- who gets what


class Typed:
    """An object sink that takes only some types."""

    def __init__(self, *types: str) -> None:
        self.event_types = frozenset(types)
        self.events: list[EventBase] = []

    def write(self, event: EventBase) -> None:
        self.events.append(event)

    def close(self) -> None:
        return None


def test_each_sink_gets_only_the_types_it_wants_and_unwanted_events_are_not_built() -> None:
    finishes, everything = Typed("node_finished"), MemorySink()
    bus = EventBus("r", [finishes])
    assert bus.wanted == {NodeFinished} and bus.active
    with scope(make_scope(bus)):
        assert emit(NodeStarted, kind="llm") is None  # nobody wants it: not built, no seq
        assert bus.last_seq == 0
        emit(NodeFinished, kind="llm")
    bus.add_sink(everything)
    with scope(make_scope(bus)):
        emit(NodeStarted, kind="llm")
        emit(NodeFinished, kind="llm")
    assert [e.seq for e in finishes.events] == [1, 3]  # seq: the run's stream, gaps and all
    assert [(e.type, e.seq) for e in everything.events] == [
        ("node_started", 2),
        ("node_finished", 3),
    ]
    live = bus.subscribe(include={"token"})
    assert TokenDelta in bus.wanted and bus.wants_tokens
    bus.unsubscribe(live)
    assert TokenDelta in bus.wanted and not bus.wants_tokens  # the memory sink takes tokens


def test_a_sink_may_say_what_it_wants_with_a_method() -> None:
    class Picky(Typed):
        def __init__(self) -> None:
            self.events = []

        def wants(self, event_type: str) -> bool:
            return event_type.startswith("tool_")

    picky = Picky()
    bus = EventBus("r", [picky])
    with scope(make_scope(bus)):
        emit(NodeStarted, kind="llm")
        emit(ToolCalled, tool="t", call_id="1")
    assert [e.type for e in picky.events] == ["tool_called"]


def test_span_ids_are_counted_unique_in_a_run_and_shaped_for_opentelemetry() -> None:
    bus = EventBus("r", [MemorySink()])
    root = make_scope(bus)
    ids = [root.child().span_id for _ in range(1100)]  # past the ids formatted in advance
    with scope(root):
        nodes = [bus.enter_node(f"n{i}", 1, "function") for i in range(3)]
        assert current_scope() is nodes[-1]
        for node in reversed(nodes):
            bus.leave_node(node, None)
        assert current_scope() is root
    ids += [node.span_id for node in nodes]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) > 0 for i in ids)
    numbers = [int(i, 16) for i in ids]
    assert numbers == list(range(numbers[0], numbers[0] + len(ids)))  # counted, one by one
    assert len({ids[0][:8], EventBus("r").new_span_id()[:8]}) == 2  # another bus: other ids
    assert nodes[1].parent_span_id == nodes[0].span_id  # entered inside the first


def test_a_node_entered_outside_its_runs_scope_hangs_under_the_runs_root() -> None:
    bus, outer = EventBus("r", [MemorySink()]), EventBus("outer", [MemorySink()])
    bus.root = make_scope(bus)
    alone = bus.enter_node("a", 1, "function")  # no scope current at all
    assert alone.parent_span_id == "root-span" and current_scope() is alone
    bus.leave_node(alone, None)
    assert current_scope() is None
    with scope(Scope(outer, "outer", "outer-node")):  # a run started inside another run's node
        inside = bus.enter_node("b", 1, "function")
        assert inside.parent_span_id == "root-span"
        nested = bus.enter_node("b/c", 1, "function")  # this run's scope is current: under it
        assert nested.parent_span_id == inside.span_id
        bus.leave_node(nested, None)
        bus.leave_node(inside, None)
    rootless = EventBus("x", [MemorySink()])
    first = rootless.enter_node("n", 1, "function")
    assert first.parent_span_id is None
    rootless.leave_node(first, None)
    assert current_scope() is None


def test_a_node_is_one_line_with_when_it_started_and_what_it_wrote() -> None:
    lines, memory = LineCollector("node_finished"), MemorySink()
    for sinks in ([lines], [memory]):
        bus = EventBus("r", sinks)
        with scope(make_scope(bus)):
            node = bus.enter_node("a/b", 2, "function")
            assert current_scope() is node
            bus.leave_node(node, {"n": 1, "text": "two"})
            failed = bus.enter_node("a/c", 2, "function")
            bus.leave_node(failed, None, ValueError("bad"))
    from_lines = [event_from_json(line) for line in lines.lines]
    assert [e.type for e in memory.events] == ["node_started", "node_finished"] * 2
    finished = [e for e in memory.events if isinstance(e, NodeFinished)]

    def timeless(event: EventBase) -> EventBase:
        return dataclasses.replace(strip_ids(event), seq=0, started=0.0, duration=0.0)

    assert [timeless(e) for e in from_lines] == [timeless(e) for e in finished]
    ok, error = from_lines
    assert isinstance(ok, NodeFinished) and isinstance(error, NodeFinished)
    assert (ok.node, ok.step, ok.kind, ok.updated, ok.values) == (
        "a/b",
        2,
        "function",
        ["n", "text"],
        {"n": 1, "text": "two"},
    )
    assert ok.started <= ok.ts and ok.duration == pytest.approx(ok.ts - ok.started)
    assert ok.parent_span_id == "root-span"
    assert (error.updated, error.values, error.error) == ([], None, "ValueError: bad")
    started = memory.events[0]
    assert isinstance(started, NodeStarted) and started.ts == finished[0].started


@pytest.mark.parametrize("lines_only", [True, False])
def test_what_a_node_wrote_is_masked_or_dropped_in_its_line(lines_only: bool) -> None:
    secret = "hunter2-password"
    for content in (True, False):
        lines = LineCollector("node_finished")
        sinks: list[Any] = [lines] if lines_only else [lines, MemorySink()]
        bus = EventBus("r", sinks, content=content, redactor=Redactor(secrets=[secret]))
        with scope(make_scope(bus)):
            node = bus.enter_node("a", 1, "function")
            bus.leave_node(node, {"note": f"pw {secret}", "count": 3, "ok": True})
            node = bus.enter_node("b", 1, "function")
            bus.leave_node(node, {"count": 12345}, RuntimeError(f"{secret} rejected"))
        first, second = (event_from_json(line) for line in lines.lines)
        assert isinstance(first, NodeFinished) and isinstance(second, NodeFinished)
        expected = {"note": "pw ***", "count": 3, "ok": True} if content else None
        assert first.values == expected and first.updated == ["note", "count", "ok"]
        assert second.error == "RuntimeError: *** rejected"
        assert all(secret not in line.decode() for line in lines.lines)
