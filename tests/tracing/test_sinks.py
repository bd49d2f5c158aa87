from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog

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
    TokenDelta,
    ToolCalled,
    ToolReturned,
)


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
    """JsonlSink tells a flushing line by its tenth byte; a new type must keep that true."""
    flushing = {"checkpoint_saved", "run_started", "run_finished", "run_failed", "run_interrupted"}
    assert {name for name in EVENT_TYPES if name[0] in "cr"} == flushing


def test_lines_are_batched_until_a_checkpoint_or_the_end_of_the_run(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    sink = JsonlSink(path)
    bus = EventBus("r", [sink])
    bus.publish(NodeStarted(run_id="r", kind="function"))
    assert path.read_bytes() == b""  # held in memory
    bus.publish(CheckpointSaved(run_id="r", checkpoint_id="r:1"))
    assert path.read_text(encoding="utf-8").count("\n") == 2
    for _ in range(2000):  # more than a batch: written without waiting for a checkpoint
        bus.publish(TokenDelta(run_id="r", text="字" * 20, size=20))
    assert path.stat().st_size > 65536
    bus.close()
    assert len(list(read_jsonl(path))) == 2002


def test_replay_feeds_sinks_and_callables_and_closes_sinks(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    bus = EventBus("r", [JsonlSink(path)])
    bus.publish(NodeStarted(run_id="r", kind="function", node="a"))
    bus.publish(RunFinished(run_id="r", status="done"))
    bus.close()
    memory, seen = MemorySink(), []
    copy = tmp_path / "copy.jsonl"
    assert replay(path, memory, seen.append, JsonlSink(copy)) == 2
    assert [e.type for e in memory.events] == ["node_started", "run_finished"] and memory.closed
    assert seen == memory.events
    assert copy.read_bytes() == path.read_bytes()
    assert replay(memory.events, MemorySink(), close=False) == 2


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
