from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
import structlog

from atdak_agents.exceptions import UsageError
from atdak_agents.tracing import (
    EventBus,
    JsonlSink,
    MemorySink,
    Redactor,
    StructlogSink,
    read_jsonl,
    replay,
)
from atdak_agents.tracing.events import (
    EVENT_TYPES,
    CheckpointSaved,
    ModelRequest,
    NodeFinished,
    NodeStarted,
    RunFinished,
    RunInterrupted,
    RunStarted,
    StateUpdated,
    TokenDelta,
    ToolCalled,
    ToolReturned,
)
from atdak_agents.tracing.sinks import FLUSH_DELAY, restore_node_starts


def test_jsonl_trace_is_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "run.jsonl"
    bus = EventBus("r", [JsonlSink(path)])
    bus.publish(ToolReturned(run_id="r", tool="lookup", content="订单已发货", size=5))
    bus.publish(RunFinished(run_id="r", status="done"))
    bus.close()
    events = list(read_jsonl(path))
    assert [e.type for e in events] == ["tool_returned", "run_finished"]
    assert events[0].content == "订单已发货"
    assert "订单已发货" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes


def test_jsonl_is_flushed_when_the_run_ends_even_if_not_closed(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    sink = JsonlSink(path)
    sink.write(RunFinished(run_id="r"))
    assert path.read_text(encoding="utf-8").count("\n") == 1
    sink.close()


def test_secrets_and_key_patterns_are_masked_in_jsonl() -> None:
    buffer = io.BytesIO()
    redactor = Redactor(secrets=["hunter2-db-password"])
    sink = JsonlSink(buffer, redactor=redactor)
    sink.write(
        ModelRequest(
            run_id="r",
            messages=[{"role": "user", "content": "use hunter2-db-password and sk-abcdefghijkl"}],
        )
    )
    sink.close()
    text = buffer.getvalue().decode()
    assert "hunter2" not in text and "sk-abcdefghijkl" not in text
    assert "***" in text


def test_content_off_keeps_sizes(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    sink = JsonlSink(path, content=False)
    sink.write(ToolReturned(run_id="r", tool="t", content="private", size=7))
    sink.close()
    (event,) = read_jsonl(path)
    assert event.content is None and event.size == 7


def test_bad_trace_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "run_finished", "run_id": "r"}\nnot json\n', encoding="utf-8")
    events = read_jsonl(path)
    next(events)
    with pytest.raises(ValueError, match=f"{path}:2"):
        next(events)


def test_structlog_sink_logs_typed_fields_and_masks_secrets() -> None:
    with structlog.testing.capture_logs() as logs:
        sink = StructlogSink(redactor=Redactor(secrets=["topsecret-value"]))
        sink.write(ToolReturned(run_id="r", tool="t", content="topsecret-value!", size=16))
    (entry,) = logs
    assert entry["event"] == "tool_returned"
    assert entry["tool"] == "t" and entry["run_id"] == "r"
    assert entry["content"] == "***!"


def test_only_flushing_event_types_start_with_c_or_r() -> None:
    """JsonlSink tells a flushing line by its tenth byte (and ``run_started``, which does not
    flush, by its fourteenth); a new type must keep that true."""
    flushing = {"checkpoint_saved", "run_finished", "run_failed", "run_interrupted"}
    assert {name for name in EVENT_TYPES if name[0] in "cr" and name[4] != "s"} == flushing
    assert [name for name in EVENT_TYPES if name[0] == "r" and name[4] == "s"] == ["run_started"]
    # a pause (flushed at once) is told from a run's end (handed to an open file) by byte 13
    assert [name for name in EVENT_TYPES if name[0] == "r" and name[4] == "i"] == [
        "run_interrupted"
    ]
    ends = {name for name in EVENT_TYPES if name[0] == "r" and name[4] == "f"}
    assert ends == {"run_finished", "run_failed"}


def test_lines_are_batched_until_a_checkpoint_or_the_end_of_the_run(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    sink = JsonlSink(path)
    bus = EventBus("r", [sink])
    bus.publish(RunStarted(run_id="r", graph="g"))
    bus.publish(NodeFinished(run_id="r", kind="function"))
    assert path.read_bytes() == b""  # held in memory, the run's start too
    bus.publish(CheckpointSaved(run_id="r", checkpoint_id="r:1"))
    assert path.read_text(encoding="utf-8").count("\n") == 3
    for _ in range(2000):  # more than a batch: written without waiting for a checkpoint
        bus.publish(ToolReturned(run_id="r", content="字" * 20, size=20))
    assert path.stat().st_size > 65536
    bus.close()
    assert len(list(read_jsonl(path))) == 2003


def test_a_trace_keeps_one_line_per_node_unless_asked_for_everything(tmp_path: Path) -> None:
    default, everything = tmp_path / "default.jsonl", tmp_path / "all.jsonl"
    chosen = tmp_path / "chosen.jsonl"
    bus = EventBus(
        "r",
        [
            JsonlSink(default),
            JsonlSink(everything, events="all"),
            JsonlSink(chosen, events=["token"]),
        ],
    )
    for event in [
        RunStarted(run_id="r", graph="g"),
        NodeStarted(run_id="r", kind="llm"),
        TokenDelta(run_id="r", text="hi", size=2),
        NodeFinished(run_id="r", kind="llm", updated=["n"], values={"n": "hi"}),
        StateUpdated(run_id="r", keys=["n"], values={"n": "hi"}),
        RunFinished(run_id="r"),
    ]:
        bus.publish(event)
    bus.close()
    assert [e.type for e in read_jsonl(default)] == ["run_started", "node_finished", "run_finished"]
    assert len(list(read_jsonl(everything))) == 6
    assert [e.type for e in read_jsonl(chosen)] == ["token"]
    assert [e.seq for e in read_jsonl(everything)] == [1, 2, 3, 4, 5, 6]  # the run's stream
    with pytest.raises(UsageError, match="unknown event type 'node_start'"):
        JsonlSink(default, events=["node_start"])


def test_replay_feeds_sinks_and_callables_and_closes_sinks(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    bus = EventBus("r", [JsonlSink(path, events="all")])
    bus.publish(NodeStarted(run_id="r", kind="function", node="a"))
    bus.publish(RunFinished(run_id="r", status="done"))
    bus.close()
    memory, seen = MemorySink(), []
    copy = tmp_path / "copy.jsonl"
    assert replay(path, memory, seen.append, JsonlSink(copy, events="all")) == 2
    assert [e.type for e in memory.events] == ["node_started", "run_finished"] and memory.closed
    assert seen == memory.events
    assert copy.read_bytes() == path.read_bytes()
    assert replay(memory.events, MemorySink(), close=False) == 2
    only_ends = MemorySink(events=["run_finished"])  # a sink gets the types it wants
    replay(path, only_ends)
    assert [e.type for e in only_ends.events] == ["run_finished"]


def finished(span: str, parent: str, ts: float, *, started: float, node: str) -> NodeFinished:
    return NodeFinished(
        run_id="r",
        span_id=span,
        parent_span_id=parent,
        node=node,
        kind="function",
        ts=ts,
        started=started,
        duration=ts - started,
    )


def test_replay_puts_each_nodes_start_back_where_it_was() -> None:
    """Two concurrent nodes (``a`` waits without a word; ``b`` makes a call and ends first) and
    a map item inside ``a``: each restored start lands where the live one was."""
    run = RunStarted(run_id="r", span_id="run", graph="g", ts=1.0)
    call = ModelRequest(run_id="r", span_id="m", parent_span_id="b", node="b", ts=4.0)
    b_done = finished("b", "run", 5.0, started=3.0, node="b")
    item_done = finished("i", "a", 6.0, started=5.5, node="a[0]/x")
    a_done = finished("a", "run", 7.0, started=2.0, node="a")
    end = RunFinished(run_id="r", span_id="run", ts=8.0)
    order = [
        (e.type, e.span_id)
        for e in restore_node_starts([run, call, b_done, item_done, a_done, end])
    ]
    assert order == [
        ("run_started", "run"),
        ("node_started", "a"),
        ("node_started", "b"),
        ("model_request", "m"),
        ("node_finished", "b"),
        ("node_started", "i"),
        ("node_finished", "i"),
        ("node_finished", "a"),
        ("run_finished", "run"),
    ]
    restored = [e for e in restore_node_starts([run, a_done, end]) if isinstance(e, NodeStarted)]
    assert [(e.ts, e.kind, e.node, e.parent_span_id, e.seq) for e in restored] == [
        (2.0, "function", "a", "run", 0)
    ]


def test_replay_leaves_a_trace_that_has_its_starts_as_it_is() -> None:
    events = [
        RunStarted(run_id="r", span_id="run", ts=1.0),
        NodeStarted(run_id="r", span_id="a", parent_span_id="run", ts=2.0),
        finished("a", "run", 3.0, started=2.0, node="a"),
        RunFinished(run_id="r", span_id="run", ts=4.0),
    ]
    assert list(restore_node_starts(events)) == events


def test_structlog_sink_uses_levels_so_the_application_can_filter() -> None:
    with structlog.testing.capture_logs() as logs:
        sink = StructlogSink()
        sink.write(TokenDelta(run_id="r", text="x", size=1))
        sink.write(NodeFinished(run_id="r", node="a", error="ValueError: bad"))
        sink.write(RunFinished(run_id="r"))
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("token", "debug"),
        ("node_finished", "error"),
        ("run_finished", "info"),
    ]


def test_redactor_is_a_structlog_processor_in_a_real_configuration() -> None:
    """The way the docs show it: the redactor in the application's processor chain."""
    output = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(output),
        processors=[
            Redactor(secrets=["very-secret-value"]),
            structlog.processors.JSONRenderer(),
        ],
    )
    StructlogSink(logger).write(
        ToolCalled(run_id="r", tool="login", arguments={"password": "very-secret-value"})
    )
    logger.info("plain", header="Authorization: Bearer abcdefgh12345678")
    first, second = (json.loads(line) for line in output.getvalue().splitlines())
    assert first["event"] == "tool_called" and first["arguments"] == {"password": "***"}
    assert second["header"] == "Authorization: ***"


def test_default_patterns_match_any_case_and_user_patterns_always_run() -> None:
    redactor = Redactor()
    assert redactor.text("BeArEr abcdefgh12345") == "***"
    assert redactor.bytes(b'{"k":"sk-abcdefghijkl"}') == b'{"k":"***"}'
    same = b'{"k":"nothing here"}'
    assert redactor.bytes(same) is same  # nothing to mask: not even decoded
    redactor.add_pattern(r"\b\d{4}-\d{4}-\d{4}-\d{4}\b")
    assert redactor.bytes(b'"card 1234-5678-9012-3456"') == b'"card ***"'
    redactor.add_secret("abc")  # too short to mask safely: ignored
    assert redactor.text("abc") == "abc"
    redactor.add_secret("tops3cret")
    assert "tops3cret" not in repr(redactor)


class CountingFile(io.BufferedWriter):
    """A real file that counts how often it is flushed."""

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "ab"))
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def one_run(bus_id: str, sink: JsonlSink) -> None:
    bus = EventBus(bus_id, [sink])
    bus.publish(RunStarted(run_id=bus_id, graph="g"))
    bus.publish(NodeFinished(run_id=bus_id, kind="function"))
    bus.publish(RunFinished(run_id=bus_id))
    bus.close()


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n")


async def on_disk(path: Path, lines: int) -> float:
    """Seconds until ``path`` holds ``lines`` lines (polled; fails after a second)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (found := lines_in(path)) < lines:
        assert loop.time() - started < 1, f"{path} has {found} lines, not {lines}"
        await asyncio.sleep(0.005)
    return loop.time() - started


async def test_an_open_file_is_flushed_soon_after_runs_end_once_for_them_all(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.jsonl"
    with CountingFile(path) as file:
        for number in range(5):  # many short runs into one open file
            one_run(f"r{number}", JsonlSink(file))
        assert path.read_bytes() == b""  # handed to the file, not flushed yet
        waited = await on_disk(path, 15)
        assert waited < FLUSH_DELAY + 0.5
        assert file.flushes == 1  # one flush for the five runs
        one_run("again", JsonlSink(file))  # a later run: a new deferred flush
        await on_disk(path, 18)
        assert file.flushes == 2
    assert [e.run_id for e in read_jsonl(path)][::3] == ["r0", "r1", "r2", "r3", "r4", "again"]


def test_checkpoints_and_pauses_reach_an_open_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "paused.jsonl"
    with open(path, "ab") as file:
        bus = EventBus("r", [JsonlSink(file)])
        bus.publish(RunStarted(run_id="r", graph="g"))
        bus.publish(CheckpointSaved(run_id="r", checkpoint_id="r:1"))
        assert path.read_bytes().count(b"\n") == 2
        bus.publish(NodeFinished(run_id="r", kind="human"))
        bus.publish(RunInterrupted(run_id="r", reason="waiting"))
        assert path.read_bytes().count(b"\n") == 4
        bus.close()


def test_outside_an_event_loop_an_open_file_is_flushed_when_the_run_ends(tmp_path: Path) -> None:
    path = tmp_path / "sync.jsonl"
    with open(path, "ab") as file:
        sink = JsonlSink(file)
        one_run("r", sink)
        assert path.read_bytes().count(b"\n") == 3
        sink.flush()  # nothing held: nothing more written
        assert path.read_bytes().count(b"\n") == 3


def test_a_flush_left_behind_by_a_closed_loop_does_not_stop_the_next(tmp_path: Path) -> None:
    path = tmp_path / "loops.jsonl"

    async def run(name: str) -> None:
        one_run(name, JsonlSink(file))

    with open(path, "ab") as file:
        asyncio.run(run("first"))  # the loop closes before its deferred flush
        assert path.read_bytes() == b""

        async def second() -> None:
            await run("second")
            await on_disk(path, 6)

        asyncio.run(second())
        sink = JsonlSink(file)
        sink.write(RunStarted(run_id="third", graph="g"))
        sink.flush()  # an explicit flush writes and flushes at once
        assert path.read_bytes().count(b"\n") == 7
