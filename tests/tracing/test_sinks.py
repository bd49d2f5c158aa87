from __future__ import annotations

import io
from pathlib import Path

import pytest
import structlog

from atdak_agents.tracing import EventBus, JsonlSink, Redactor, StructlogSink, read_jsonl
from atdak_agents.tracing.events import ModelRequest, RunFinished, ToolReturned


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
