"""Traces of real graph runs: map progress, run-wide privacy settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tracing_graphs import mapping_graph, nested_pausing_graph

from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.checkpoint import InMemoryCheckpointer
from atdak_agents.tracing import JsonlSink, MemorySink, Redactor, read_jsonl
from atdak_agents.tracing.events import (
    MapStarted,
    NodeFinished,
    RunInterrupted,
    RunStarted,
    StateUpdated,
)


async def test_a_map_announces_how_many_items_it_runs_before_running_them() -> None:
    sink = MemorySink()
    await mapping_graph().build().run({"xs": [1, 2, 3, 4, 5]}, sinks=[sink])
    (announce,) = sink.of_type("map_started")
    assert isinstance(announce, MapStarted)
    assert (announce.items, announce.concurrency, announce.node) == (5, 3, "each")
    items = [e for e in sink.of_type("node_finished") if e.parent_span_id == announce.span_id]
    assert len(items) == 5  # progress: the children of the map's span
    assert announce.seq < min(e.seq for e in items)


def leaky(inputs: Any) -> dict[str, Any]:
    return {"note": f"token is {inputs['token']}", "reply": "a private reply"}


@pytest.mark.parametrize("live", [False, True])
async def test_run_wide_privacy_settings_reach_every_sink(tmp_path: Path, live: bool) -> None:
    g = GraphBuilder("privacy")
    g.input("token", str)
    g.state("note", str)
    g.state("reply", str)
    g.function("leak", leaky, writes=["note", "reply"])
    g.chain("leak", "end")
    path = tmp_path / "trace.jsonl"
    memory = MemorySink()
    run = g.build().start(
        {"token": "tok-1234567890"},
        sinks=[JsonlSink(path), memory],
        redactor=Redactor(secrets=["tok-1234567890"]),
        trace_content=live,  # once with contents (masked), once without
    )
    streamed = [e async for e in run.events()]
    text = path.read_text(encoding="utf-8")
    assert "tok-1234567890" not in text
    for event in [*memory.events, *streamed, *read_jsonl(path)]:
        assert "tok-1234567890" not in json.dumps(event.__class__.__name__ + repr(event))
    update = next(e for e in memory.events if isinstance(e, StateUpdated))
    (written,) = [e for e in read_jsonl(path) if isinstance(e, NodeFinished)]
    if live:
        assert update.values == {"note": "token is ***", "reply": "a private reply"}
        assert written.values == update.values  # the node's line: masked the same way
    else:
        assert update.values is None and "a private reply" not in text
        assert written.values is None and written.updated == ["note", "reply"]


async def test_the_api_key_from_the_environment_is_always_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ATDAK_API_KEY", "atdak-live-key-0000")
    g = GraphBuilder("echo")
    g.input("token", str)
    g.state("note", str)
    g.function("leak", lambda inputs: {"note": inputs["token"]}, writes=["note"])
    g.chain("leak", "end")
    memory = MemorySink()
    await g.build().run({"token": "atdak-live-key-0000"}, sinks=[memory])
    assert "atdak-live-key-0000" not in repr(memory.events)


async def test_a_trace_is_one_tree_even_through_maps_and_subgraphs() -> None:
    sink = MemorySink()
    await nested_pausing_graph().build().run(sinks=[sink])
    spans = {e.span_id for e in sink.events}
    roots = [e for e in sink.events if e.parent_span_id is None]
    assert {e.span_id for e in roots} == {sink.events[0].span_id}  # one root: the run
    assert all(e.parent_span_id in spans for e in sink.events if e.parent_span_id)
    nested = [e for e in sink.of_type("run_started") if e.parent_span_id is not None]
    assert sorted(e.node or "" for e in nested) == ["each[0]/inner", "each[1]/inner", "sub"]


async def test_a_pause_for_a_human_and_the_resumed_run_are_in_the_trace() -> None:
    checkpointer = InMemoryCheckpointer()
    graph = nested_pausing_graph().build()
    first = MemorySink()
    paused = await graph.run(sinks=[first], checkpointer=checkpointer)
    last = first.events[-1]
    assert isinstance(last, RunInterrupted) and last.question == "Send 2?"
    second = MemorySink()
    await graph.resume(paused.run_id, answer="yes", checkpointer=checkpointer, sinks=[second])
    started = second.events[0]
    assert isinstance(started, RunStarted) and started.resumed
    assert second.events[-1].type == "run_finished"


async def test_a_default_jsonl_trace_is_one_tree_with_a_line_per_node(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    await nested_pausing_graph().build().run(sinks=[JsonlSink(path)])
    events = list(read_jsonl(path))
    assert not {e.type for e in events} & {"node_started", "state_updated", "token"}
    spans = {e.span_id for e in events}
    assert all(e.parent_span_id in spans for e in events if e.parent_span_id)
    nodes = [e for e in events if isinstance(e, NodeFinished)]
    assert sorted(e.node or "" for e in nodes) == [
        "ask",
        "each",
        "each[0]/inner",
        "each[0]/inner/twice",
        "each[1]/inner",
        "each[1]/inner/twice",
        "sub",
        "sub/twice",
    ]
    each = next(e for e in nodes if e.node == "each")
    assert each.values == {"ys": [{"double": 2}, {"double": 4}]} and each.updated == ["ys"]
    assert all(e.started <= e.ts for e in nodes)
    inner = [e for e in events if isinstance(e, RunStarted) and e.parent_span_id]
    assert {e.parent_span_id for e in inner} <= {e.span_id for e in nodes}  # under their node
