"""The console view: what it prints live, on a terminal or not; a replay prints the same."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tracing_graphs import ANSWER, mapping_graph, nested_pausing_graph, run_triage, triage_trace

from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.tracing import ConsoleSink, EventBus, JsonlSink, MemorySink, read_jsonl, replay
from atdak_agents.tracing.events import (
    ModelRequest,
    ModelResponse,
    ModelRetrying,
    NodeFinished,
    NodeStarted,
    RunFinished,
    RunStarted,
    ToolCalled,
    ToolReturned,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def timeless(text: str) -> str:
    return re.sub(r"\d+(\.\d+)? (ms|s)\b", "T", text)


async def test_a_model_calling_run_live_and_replayed_prints_the_same(tmp_path: Path) -> None:
    live = io.StringIO()
    trace = await triage_trace(tmp_path / "trace.jsonl", ConsoleSink(live))
    again = io.StringIO()
    replay(trace, ConsoleSink(again))
    assert again.getvalue() == live.getvalue()
    lines = timeless(live.getvalue()).splitlines()
    calls = [e for e in read_jsonl(trace) if isinstance(e, ModelResponse)]
    first, agent = calls[0], calls[1:]
    prompt = sum(c.prompt_tokens for c in agent)
    answer = sum(c.completion_tokens for c in agent)
    assert all(c.cost is not None for c in calls)  # the test registry prices the model
    cost = sum(c.cost or 0.0 for c in agent)
    assert lines[0].startswith("▶ support-triage  run ")
    assert lines[1:5] == [
        "  ● classify (llm)",
        f"    → atdak-gpt-4-mini  2 messages · ~{first.prompt_tokens} tokens of 109,440 (0.1%)",
        '    {"category": "shipping"}',  # streamed as it arrived
        f"    ← ~{first.prompt_tokens} in / {first.completion_tokens} out · T · ${first.cost:.4f}",
    ]
    assert lines[5] == (
        f"  ✓ classify  T  wrote category  ~{first.prompt_tokens} in / 7 out  ${first.cost:.4f}"
    )
    assert '    ⚙ lookup_order {"order_id": "10423"}' in lines
    assert f"    {ANSWER}" in lines
    assert f"  ✓ shipping_agent  T  wrote answer  ~{prompt} in / {answer} out  ${cost:.4f}" in lines
    total = first.prompt_tokens + prompt
    run_cost = 0.0
    for call in calls:  # added in the order the run added them: the same rounding
        run_cost += call.cost or 0.0
    assert lines[-1] == (
        f"■ done in T · 2 steps · 3 model calls · ~{total} in / {answer + 7} out · 1 tool call"
        f" · ${run_cost:.4f}"
    )


async def test_replay_on_a_terminal_matches_the_live_terminal_view(tmp_path: Path) -> None:
    live = Terminal()
    trace = await triage_trace(tmp_path / "trace.jsonl", ConsoleSink(live))
    again = Terminal()
    replay(trace, ConsoleSink(again))
    assert again.getvalue() == live.getvalue()
    assert "\x1b[32m✓\x1b[0m" in live.getvalue()  # colour on a terminal


async def test_nested_runs_show_as_indented_nodes_and_a_pause_shows_the_question() -> None:
    out = io.StringIO()
    await nested_pausing_graph().build().run(sinks=[ConsoleSink(out)])
    lines = timeless(out.getvalue()).splitlines()
    assert lines[1:] == [
        "  ● each (map)",
        "    2 items",
        "    1/2",
        "  ✓ each  T  wrote ys",
        "  ● sub (subgraph)",
        "    ● twice (function)",
        "    ✓ twice  T  wrote double",
        "  ✓ sub  T  wrote one",
        "  ● ask (human)",
        "  ✓ ask  T",
        "⏸ waiting for input: Send 2? · 3 steps",
    ]


async def test_map_progress_in_plain_text_comes_at_each_quarter() -> None:
    out = io.StringIO()
    await mapping_graph().build().run({"xs": list(range(10))}, sinks=[ConsoleSink(out)])
    lines = timeless(out.getvalue()).splitlines()
    assert lines[1:] == [
        "  ● each (map)",
        "    10 items",
        "    3/10",
        "    5/10",
        "    8/10",
        "  ✓ each  T  wrote squares",
        "■ done in T · 1 step",
    ]


async def test_map_progress_on_a_terminal_is_a_bar_redrawn_in_place() -> None:
    out = Terminal()
    await mapping_graph().build().run({"xs": list(range(8))}, sinks=[ConsoleSink(out)])
    text = out.getvalue()
    assert text.count("\r\x1b[K") >= 8  # cleared and redrawn as each item finished
    assert "8/8" in text and "█" in text
    assert "\x1b[" in text


async def test_no_color_is_honoured_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = Terminal()
    await mapping_graph().build().run({"xs": [1, 2]}, sinks=[ConsoleSink(out)])
    assert not re.search(r"\x1b\[[0-9;]+m", out.getvalue())


def fail(state: object) -> None:
    raise ValueError("the order system is down")


async def test_a_failing_node_and_run_are_shown_with_their_errors() -> None:
    g = GraphBuilder("fails")
    g.function("boom", fail)
    g.chain("boom", "end")
    out = io.StringIO()
    await g.build().run(sinks=[ConsoleSink(out)])
    lines = timeless(out.getvalue()).splitlines()
    assert lines[2] == "  ✗ boom  T  ValueError: the order system is down"
    assert lines[3].startswith("✗ failed after T: node 'boom'")


async def test_a_node_stopped_by_cancellation_says_so(tmp_path: Path) -> None:
    entered = asyncio.Event()

    async def slow(state: Any) -> dict[str, Any]:
        entered.set()
        await asyncio.sleep(30)
        return {}

    g = GraphBuilder("slow")
    g.function("wait", slow)
    g.chain("wait", "end")
    out = io.StringIO()
    trace = tmp_path / "trace.jsonl"
    task = asyncio.ensure_future(g.build().run(sinks=[ConsoleSink(out), JsonlSink(trace)]))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    shown = timeless(out.getvalue())
    assert "✗ wait  T  cancelled: the run was stopped while this node ran" in shown
    assert "CancelledError" not in shown
    finished = [e for e in read_jsonl(trace) if e.type == "node_finished"]
    assert finished[0].error is not None and finished[0].error.startswith("cancelled: ")


def test_synthetic_calls_show_fitting_retries_tool_errors_costs_and_previews() -> None:
    out = io.StringIO()
    bus = EventBus("r", [ConsoleSink(out, tokens=False)])
    ids = {"span_id": "n1", "parent_span_id": "root", "node": "agent", "run_id": "r"}
    call = {**ids, "span_id": "m1", "parent_span_id": "n1"}
    tool = {**ids, "span_id": "t1", "parent_span_id": "n1"}
    turn = {**ids, "span_id": "m0", "parent_span_id": "n1"}
    for event in [
        RunStarted(run_id="r", span_id="root", graph="g", resumed=True),
        NodeStarted(**ids, kind="agent"),
        ModelRequest(**turn, model="atdak-llama-70b", message_count=3, estimated_tokens=900),
        ModelResponse(**turn, model="atdak-llama-70b", content='{"tool_calls": [...]}'),
        ToolCalled(**tool, tool="refund", call_id="c1", arguments=None, size=17),
        ToolReturned(**tool, tool="refund", call_id="c1", content="not allowed", is_error=True),
        ModelRetrying(**call, model="m", attempt=1, reason="HTTP 429", wait=1.5),
        ModelRequest(
            **call,
            model="atdak-llama-70b",
            message_count=30,
            estimated_tokens=27000,
            budget=30000,
            fit={"messages": 42, "sent": 30, "dropped_or_changed": 12},
        ),
        ModelResponse(
            **call,
            model="atdak-llama-70b",
            prompt_tokens=27012,
            completion_tokens=400,
            cost=0.0123,
            latency=2.5,
            finish_reason="length",
            content="A long\nanswer that was cut",
        ),
        NodeFinished(**ids, kind="agent", duration=3.0, updated=["answer"]),
        RunFinished(
            run_id="r",
            span_id="root",
            duration=3.2,
            usage={"requests": 2, "input_tokens": 27012, "output_tokens": 400, "cost": 0.0123},
        ),
    ]:
        bus.publish(event)
    assert out.getvalue().splitlines() == [
        "▶ g (resumed)  run r",
        "  ● agent (agent)",
        "    → atdak-llama-70b  3 messages · ~900 tokens",
        "    ← 0 in / 0 out · 0.0 ms",  # a tool-calling turn: its markup is not shown
        "    ⚙ refund (17 chars)",
        "    ✗ refund failed after 0.0 ms: not allowed",
        "    ↻ retry 1 in 1.50 s: HTTP 429",
        "    → atdak-llama-70b  30 messages · ~27,000 tokens of 30,000 (90.0%) · fitted: "
        "12 dropped or shortened",
        "    A long answer that was cut",
        "    ← 27,012 in / 400 out · 2.50 s · length · $0.0123",
        "  ✓ agent  3.00 s  wrote answer  27,012 in / 400 out  $0.0123",
        "■ done in 3.20 s · 0 steps · 2 model calls · 27,012 in / 400 out · $0.0123",
    ]


@pytest.mark.parametrize("tokens", [True, False])
async def test_the_console_asks_for_streaming_only_when_it_shows_tokens(tokens: bool) -> None:
    out, memory = io.StringIO(), MemorySink()
    await run_triage([ConsoleSink(out, tokens=tokens), memory])
    assert bool(memory.of_type("token")) is tokens
    assert f"    {ANSWER}" in out.getvalue().splitlines()  # streamed, or as a preview
    responses = [e for e in memory.events if isinstance(e, ModelResponse)]
    assert all(r.usage_estimated is tokens for r in responses)  # exact usage unless streamed


# --------------------------------------------------------------------------- replay


def fan_out_graph() -> GraphBuilder:
    """Two branches at once: ``slow`` waits without a word while ``quick`` starts after it and
    finishes first, then a map — the order a replay must rebuild without node starts."""

    async def slow() -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return {"log": "slow"}

    async def quick() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"log": "quick"}

    g = GraphBuilder("fan")
    g.state("log", list, reducer="append")
    g.state("squares", list)
    g.function("start", lambda: {"log": "start"}, writes=["log"])
    g.function("slow", slow, writes=["log"])
    g.function("quick", quick, writes=["log"])
    g.map("each", "state.log", lambda item: len(item), writes="squares")
    g.edge("start", "slow").edge("start", "quick").edge(["slow", "quick"], "each")
    g.edge("each", "end")
    return g


def failing_graph() -> GraphBuilder:
    g = GraphBuilder("fails")
    g.function("boom", fail)
    g.chain("boom", "end")
    return g


@pytest.mark.parametrize("graph", [fan_out_graph, nested_pausing_graph, failing_graph])
async def test_plain_output_replays_exactly_from_a_default_trace(
    tmp_path: Path, graph: Callable[[], GraphBuilder]
) -> None:
    live, trace = io.StringIO(), tmp_path / "trace.jsonl"
    await graph().build().run(sinks=[ConsoleSink(live), JsonlSink(trace)])
    assert "node_started" not in trace.read_text(encoding="utf-8")
    again = io.StringIO()
    replay(trace, ConsoleSink(again))
    assert again.getvalue() == live.getvalue()
    assert live.getvalue().count("●") >= 1


async def test_fan_out_shows_both_starts_before_either_end() -> None:
    out = io.StringIO()
    await fan_out_graph().build().run(sinks=[ConsoleSink(out)])
    lines = [line.strip().split("  ")[0] for line in out.getvalue().splitlines()[3:7]]
    assert lines == ["● slow (function)", "● quick (function)", "✓ quick", "✓ slow"]


async def test_a_terminal_view_replays_exactly_from_a_trace_with_every_event(
    tmp_path: Path,
) -> None:
    live, trace = Terminal(), tmp_path / "all.jsonl"
    await triage_trace(
        tmp_path / "default.jsonl", ConsoleSink(live), JsonlSink(trace, events="all")
    )
    assert any(e.type == "token" for e in read_jsonl(trace))
    again = Terminal()
    replay(trace, ConsoleSink(again))
    assert again.getvalue() == live.getvalue()
