"""The engine's event stream (live, nested, filtered) and its pictures."""

from __future__ import annotations

from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.tracing import JsonlSink, MemorySink, read_jsonl


def nested_graph() -> GraphBuilder:
    inner = GraphBuilder("inner")
    inner.input("item", int)
    inner.state("double", int)
    inner.function("twice", lambda inputs: {"double": inputs["item"] * 2}, writes=["double"])
    inner.chain("twice", "end")
    g = GraphBuilder("outer")
    g.state("xs", list, default=[1, 2])
    g.state("ys", list)
    g.map("each", "state.xs", inner.spec(), writes="ys")
    g.chain("each", "end")
    return g


async def test_live_events_drive_the_run_and_carry_nested_paths() -> None:
    run = nested_graph().build().start()
    seen = [event async for event in run.events()]
    types = [e.type for e in seen]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    nodes = sorted({e.node for e in seen if e.type == "node_started"})
    assert nodes == [
        "each",
        "each[0]/inner",
        "each[0]/inner/twice",
        "each[1]/inner",
        "each[1]/inner/twice",
    ]
    item = next(e for e in seen if e.node == "each[1]/inner/twice")
    parent = next(e for e in seen if e.type == "node_started" and e.node == "each[1]/inner")
    assert item.parent_span_id is not None
    assert parent.type == "node_started"
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert run.result().state["ys"] == [{"double": 2}, {"double": 4}]


async def test_filtered_subscription_and_sinks_agree(tmp_path: object) -> None:
    sink = MemorySink()
    run = nested_graph().build().start(sinks=[sink])
    only_finishes = [e async for e in run.events(include={"node_finished"})]
    assert {e.type for e in only_finishes} == {"node_finished"}
    assert len(sink.events) > len(only_finishes)
    assert sink.closed


async def test_jsonl_trace_of_a_run_reads_back(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "trace.jsonl"
    result = await nested_graph().build().run(sinks=[JsonlSink(path)])
    events = list(read_jsonl(path))
    assert events[-1].type == "run_finished"
    assert events[-1].output == result.output


def test_mermaid_and_dot_show_nodes_routes_and_joins() -> None:
    g = GraphBuilder("pic")
    g.state("ok", bool, default=False)
    g.function("a", lambda: None)
    g.function("b", lambda: None)
    g.function("c", lambda: None)
    g.router("check", [("state.ok", "end")], otherwise="a", max_iterations=2)
    g.edge("a", "b").edge("a", "c").edge(["b", "c"], "check")
    graph = g.build()
    mermaid = graph.to_mermaid()
    assert mermaid.startswith("flowchart TD")
    assert 'check{"check (router)"}' in mermaid
    assert 'check -.->|"state.ok"| end_node' in mermaid
    assert 'b -->|"all of b, c"| check' in mermaid
    dot = graph.to_dot()
    assert dot.startswith('digraph "pic" {')
    assert '"check" [shape=diamond' in dot
    assert '"check" -> "a" [style=dashed, label="otherwise (≤2)"];' in dot
