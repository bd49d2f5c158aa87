"""OpenTelemetry export: the span tree, GenAI semantic-convention attributes, errors, contents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_graphs import ANSWER, nested_pausing_graph, triage_trace

from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.tracing import JsonlSink, OtelSink, read_jsonl, replay
from atdak_agents.tracing.events import (
    ModelRequest,
    NodeFinished,
    RunFinished,
    RunStarted,
    ToolCalled,
)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def sink(exporter: InMemorySpanExporter, **options: Any) -> OtelSink:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelSink(provider, **options)


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def parent_of(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    assert span.parent is not None
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


async def test_a_model_calling_run_becomes_workflow_node_chat_and_tool_spans(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    trace = await triage_trace(tmp_path / "trace.jsonl")
    replay(trace, sink(exporter))
    spans = exporter.get_finished_spans()
    names = sorted(s.name for s in spans)
    assert names == [
        "chat atdak-gpt-4-mini",
        "chat atdak-gpt-4-mini",
        "chat atdak-gpt-4-mini",
        "execute_tool lookup_order",
        "invoke_agent shipping_agent",
        "invoke_workflow support-triage",
        "llm classify",
    ]
    named = by_name(spans)
    run = named["invoke_workflow support-triage"]
    assert run.parent is None and run.status.status_code is StatusCode.OK
    assert run.attributes is not None
    assert run.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert run.attributes["gen_ai.workflow.name"] == "support-triage"
    agent = named["invoke_agent shipping_agent"]
    assert parent_of(agent, spans) is run
    assert (
        agent.attributes is not None and agent.attributes["gen_ai.agent.name"] == "shipping_agent"
    )
    tool = named["execute_tool lookup_order"]
    assert parent_of(tool, spans) is agent
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "lookup_order"
    called = next(e for e in read_jsonl(trace) if isinstance(e, ToolCalled))
    assert tool.attributes["gen_ai.tool.call.id"] == called.call_id
    assert "gen_ai.tool.call.arguments" not in tool.attributes  # contents are opt-in
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert {parent_of(c, spans).name for c in chats} == {"llm classify", agent.name}
    requests = [e for e in read_jsonl(trace) if isinstance(e, ModelRequest)]
    for chat, request in zip(sorted(chats, key=lambda s: s.start_time or 0), requests, strict=True):
        attributes = chat.attributes
        assert attributes is not None and chat.kind is SpanKind.CLIENT
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "atdak"
        assert attributes["gen_ai.request.model"] == "atdak-gpt-4-mini"
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert attributes["gen_ai.usage.input_tokens"] == request.estimated_tokens
        assert attributes["atdak.context.budget"] == request.budget
        assert chat.start_time == int(request.ts * 1_000_000_000)  # the event's time


async def test_contents_are_recorded_in_the_conventions_shape_when_asked(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    replay(await triage_trace(tmp_path / "trace.jsonl"), sink(exporter, content=True))
    spans = exporter.get_finished_spans()
    last = max((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.start_time or 0)
    assert last.attributes is not None
    sent = json.loads(str(last.attributes["gen_ai.input.messages"]))
    assert sent[0]["role"] == "system" and sent[0]["parts"][0]["type"] == "text"
    answer = json.loads(str(last.attributes["gen_ai.output.messages"]))
    assert answer == [{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}]}]
    tool = by_name(spans)["execute_tool lookup_order"]
    assert tool.attributes is not None
    assert json.loads(str(tool.attributes["gen_ai.tool.call.arguments"])) == {"order_id": "10423"}
    assert "in transit" in str(tool.attributes["gen_ai.tool.call.result"])


async def test_a_live_run_nests_maps_and_subgraphs_and_ends_paused_spans(
    exporter: InMemorySpanExporter,
) -> None:
    await nested_pausing_graph().build().run(sinks=[sink(exporter)])
    spans = exporter.get_finished_spans()
    named = by_name(spans)
    twice = named["function each[1]/inner/twice"]
    inner_run = parent_of(twice, spans)
    assert inner_run.name == "invoke_workflow inner"
    assert parent_of(inner_run, spans).name == "subgraph each[1]/inner"
    assert parent_of(parent_of(inner_run, spans), spans).name == "map each"
    outer = named["invoke_workflow outer"]
    assert outer.attributes is not None
    assert outer.attributes["atdak.run.status"] == "interrupted"
    assert (named["map each"].attributes or {})["atdak.map.items"] == 2


def broken(state: object) -> None:
    raise ValueError("no such order")


async def test_failures_set_error_status_and_error_type(exporter: InMemorySpanExporter) -> None:
    g = GraphBuilder("fails")
    g.function("boom", broken)
    g.chain("boom", "end")
    await g.build().run(sinks=[sink(exporter)])
    named = by_name(exporter.get_finished_spans())
    node, run = named["function boom"], named["invoke_workflow fails"]
    assert node.status.status_code is StatusCode.ERROR
    assert node.attributes is not None and node.attributes["error.type"] == "ValueError"
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["error.type"] == "NodeError"


def test_opentelemetry_is_imported_only_when_used() -> None:
    code = (
        "import sys, atdak_agents, atdak_agents.tracing\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "atdak_agents.tracing.OtelSink()\n"
        "assert 'opentelemetry.trace' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_opentelemetry_the_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "from atdak_agents.tracing.otel import OtelSink\n"
        "OtelSink()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'atdak-agents[otel]'" in result.stderr


def shape(spans: tuple[ReadableSpan, ...]) -> list[tuple[Any, ...]]:
    """Each span's name, its parent's name, its times, status and attributes."""
    by_id = {s.context.span_id: s.name for s in spans}
    return sorted(
        (
            s.name,
            by_id.get(s.parent.span_id) if s.parent is not None else None,
            s.start_time,
            s.end_time,
            s.status.status_code,
            json.dumps(dict(s.attributes or {}), sort_keys=True, default=str),
        )
        for s in spans
    )


async def test_a_default_trace_exports_the_same_spans_as_the_live_run(tmp_path: Path) -> None:
    """Live, the sink sees each node start; replayed from a default trace (no node_started),
    the same tree comes out, with the same times."""
    live, replayed = InMemorySpanExporter(), InMemorySpanExporter()
    trace = tmp_path / "nested.jsonl"
    await nested_pausing_graph().build().run(sinks=[sink(live), JsonlSink(trace)])
    assert "node_started" not in trace.read_text(encoding="utf-8")
    replay(trace, sink(replayed))
    assert shape(replayed.get_finished_spans()) == shape(live.get_finished_spans())
    assert len(live.get_finished_spans()) == 12  # runs, nodes, map items, subgraphs


def test_a_node_without_a_start_still_gets_its_span(exporter: InMemorySpanExporter) -> None:
    otel = sink(exporter)
    for event in [
        RunStarted(run_id="r", span_id="run", graph="g", ts=1.0),
        NodeFinished(
            run_id="r", span_id="n", parent_span_id="run", node="a", kind="llm", ts=3.0, started=2.0
        ),
        RunFinished(run_id="r", span_id="run", ts=4.0),
    ]:
        otel.write(event)
    node = by_name(exporter.get_finished_spans())["llm a"]
    assert (node.start_time, node.end_time) == (2_000_000_000, 3_000_000_000)
    assert parent_of(node, exporter.get_finished_spans()).name == "invoke_workflow g"
