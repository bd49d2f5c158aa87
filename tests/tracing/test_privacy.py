"""Nothing secret reaches any sink or the live stream, on a real model-calling run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tracing_graphs import QUESTION, run_triage

from atdak_agents.tracing import (
    ConsoleSink,
    JsonlSink,
    MemorySink,
    OtelSink,
    Redactor,
    StructlogSink,
    event_to_json,
    read_jsonl,
)
from atdak_agents.tracing.events import ModelRequest, ModelResponse, ToolReturned

CARD = "4111-1111-1111-1111"
PASSWORD = "hunter2-is-my-password"
API_KEY = "sk-atdak-live-0123456789"


async def traced_everywhere(tmp_path: Path, **options: Any) -> dict[str, str]:
    """A triage run whose question carries a card number, a password and an API key, with every
    kind of sink attached; returns what each of them received, as text."""
    question = f"{QUESTION} card {CARD}, password {PASSWORD}, key {API_KEY}"
    console, memory, exporter = io.StringIO(), MemorySink(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    redactor = Redactor(secrets=[PASSWORD])
    redactor.add_pattern(r"\b\d{4}-\d{4}-\d{4}-\d{4}\b")
    streamed: list[Any] = []
    with structlog.testing.capture_logs() as logs:
        await run_triage(
            [
                JsonlSink(tmp_path / "trace.jsonl"),
                ConsoleSink(console),
                memory,
                StructlogSink(),
                OtelSink(provider, content=True),
            ],
            stream_to=streamed,
            redactor=redactor,
            question=question,
            **options,
        )
    spans = [
        json.dumps({"name": s.name, **dict(s.attributes or {})}, ensure_ascii=False)
        for s in exporter.get_finished_spans()
    ]
    return {
        "jsonl": (tmp_path / "trace.jsonl").read_text(encoding="utf-8"),
        "console": console.getvalue(),
        "memory": "\n".join(event_to_json(e).decode() for e in memory.events),
        "live": "\n".join(event_to_json(e).decode() for e in streamed),
        "structlog": json.dumps(logs, ensure_ascii=False, default=str),
        "otel": "\n".join(spans),
    }


@pytest.mark.parametrize("content", [True, False])
async def test_no_secret_reaches_any_sink(tmp_path: Path, content: bool) -> None:
    received = await traced_everywhere(tmp_path, trace_content=content)
    for sink, text in received.items():
        assert text, f"{sink} received nothing"
        for secret in (CARD, PASSWORD, API_KEY):
            assert secret not in text, f"{secret!r} reached the {sink} sink"
    if content:  # masked, not dropped: the rest of the question is there
        assert "card ***, password ***, key ***" in received["jsonl"]
        assert "card ***, password ***, key ***" in received["otel"]


async def test_without_content_sizes_and_token_counts_stay(tmp_path: Path) -> None:
    await traced_everywhere(tmp_path, trace_content=False)
    events = list(read_jsonl(tmp_path / "trace.jsonl"))
    requests = [e for e in events if isinstance(e, ModelRequest)]
    responses = [e for e in events if isinstance(e, ModelResponse)]
    results = [e for e in events if isinstance(e, ToolReturned)]
    assert requests and all(r.messages is None and r.size > 0 for r in requests)
    assert all(r.estimated_tokens > 0 and r.budget > 0 for r in requests)
    assert all(r.content is None and r.size > 0 and r.prompt_tokens > 0 for r in responses)
    assert all(r.content is None and r.size > 0 for r in results)
    assert not [e for e in events if e.type == "token" and e.text is not None]
    text = (tmp_path / "trace.jsonl").read_text(encoding="utf-8")
    assert QUESTION not in text and "正在运输中" not in text
