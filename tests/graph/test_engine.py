"""The engine: steps, routing, joins, deterministic merges, maps, subgraphs, policies, limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atdak_agents.exceptions import GraphValidationError, NodeError, UsageError
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.expressions import Expression
from atdak_agents.graph.spec import FunctionNode, NodeSpec, RetryPolicy


async def test_steps_one_at_a_time_and_reports_each(counter: GraphBuilder) -> None:
    run = counter.build().start()
    first = await run.step()
    assert (first.step, first.nodes, first.updated, first.status) == (1, ["a"], ["n"], "running")
    assert run.state["n"] == 2
    second = await run.step()
    assert second.nodes == ["b"] and run.state["n"] == 4
    result = await run.until_done()
    assert result.status == "done"
    assert result.state["n"] == 94  # 1→2→4→5→10→11→22→23→46→47→94
    assert result.steps == 10


def test_run_sync_and_outputs() -> None:
    g = GraphBuilder("outputs")
    g.input("name", str)
    g.state("greeting", str)
    g.function("greet", lambda inputs: {"greeting": f"你好, {inputs['name']}"}, writes=["greeting"])
    g.output("text", "state.greeting + '!'")
    g.chain("greet", "end")
    result = g.build().run_sync({"name": "世界"})
    assert result.output == {"text": "你好, 世界!"}


async def test_run_sync_inside_an_event_loop_is_a_clear_error(counter: GraphBuilder) -> None:
    with pytest.raises(UsageError, match="await"):
        counter.build().run_sync()


@pytest.mark.parametrize(
    ("reducer", "updates", "expected"),
    [
        ("replace", ["a", "b"], "b"),
        ("append", ["a", "b"], ["a", "b"]),
        ("extend", [["a"], ["b", "c"]], ["a", "b", "c"]),
        ("merge", [{"a": 1}, {"b": 2}], {"a": 1, "b": 2}),
        ("add", [2, 3], 5),
    ],
)
def test_reducers(reducer: str, updates: list[Any], expected: Any) -> None:
    g = GraphBuilder("reducers")
    g.state("value", reducer=reducer)
    g.function("first", lambda: {"value": updates[0]}, writes=["value"])
    g.function("second", lambda: {"value": updates[1]}, writes=["value"])
    g.chain("first", "second", "end")
    assert g.build().run_sync().state["value"] == expected


def test_custom_reducer_function() -> None:
    g = GraphBuilder("custom")
    g.state("best", int, reducer=max, default=0)
    g.function("a", lambda: {"best": 7}, writes=["best"])
    g.function("b", lambda: {"best": 3}, writes=["best"])
    g.chain("a", "b", "end")
    assert g.build().run_sync().state["best"] == 7


async def test_parallel_branches_merge_in_a_deterministic_order() -> None:
    """b and c run concurrently; c finishes first, but b's update is applied first (edge order)."""
    finished: list[str] = []

    def branch(name: str, delay: float) -> Any:
        async def run() -> dict[str, Any]:
            await asyncio.sleep(delay)
            finished.append(name)
            return {"log": name}

        return run

    g = GraphBuilder("fan")
    g.state("log", list, reducer="append")
    g.function("start", lambda: {"log": "start"}, writes=["log"])
    g.function("b", branch("b", 0.05), writes=["log"])
    g.function("c", branch("c", 0.0), writes=["log"])
    g.function("d", lambda state: {"log": f"d after {len(state['log'])}"}, writes=["log"])
    g.edge("start", "b").edge("start", "c").edge(["b", "c"], "d").edge("d", "end")
    run = g.build().start()
    await run.step()
    report = await run.step()
    assert report.nodes == ["b", "c"]
    assert finished == ["c", "b"]
    result = await run.until_done()
    assert result.state["log"] == ["start", "b", "c", "d after 3"]


async def test_join_waits_for_branches_of_different_lengths() -> None:
    g = GraphBuilder("join")
    g.state("log", list, reducer="append")
    for name in ("start", "short", "long1", "long2", "join"):
        g.function(name, (lambda n: lambda: {"log": n})(name), writes=["log"])
    g.edge("start", "short").edge("start", "long1").edge("long1", "long2")
    g.edge(["short", "long2"], "join").edge("join", "end")
    result = await g.build().run()
    assert result.state["log"] == ["start", "short", "long1", "long2", "join"]
    assert result.state["log"].count("join") == 1


async def test_router_iteration_cap_goes_to_exhausted_target() -> None:
    g = GraphBuilder("capped")
    g.state("tries", int, reducer="add", default=0)
    g.state("gave_up", bool, default=False)
    g.function("attempt", lambda: {"tries": 1}, writes=["tries"])
    g.function("give_up", lambda: {"gave_up": True}, writes=["gave_up"])
    g.node(
        "again",
        NodeSpec.model_validate(
            {
                "router": [
                    {"when": "state.tries > 99", "to": "end"},
                    {"otherwise": "attempt", "max_iterations": 2, "exhausted": "give_up"},
                ]
            }
        ),
    )
    g.chain("attempt", "again").edge("give_up", "end")
    result = await g.build().run()
    assert (result.state["tries"], result.state["gave_up"]) == (3, True)


async def test_map_runs_items_concurrently_within_the_limit_and_keeps_input_order() -> None:
    active = 0
    peak = 0

    async def shout(item: str) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01 * (5 - len(item)))  # later items finish first
        active -= 1
        return item.upper()

    g = GraphBuilder("map")
    g.state("words", list, default=["a", "bb", "ccc", "dddd", "e", "ff"])
    g.state("loud", list)
    g.map("shout_all", "state.words", shout, writes="loud", concurrency=2)
    g.chain("shout_all", "end")
    result = await g.build().run()
    assert result.state["loud"] == ["A", "BB", "CCC", "DDDD", "E", "FF"]
    assert peak == 2


async def test_map_over_a_subgraph_and_a_subgraph_node() -> None:
    inner = GraphBuilder("square")
    inner.input("item", int)
    inner.state("result", int)
    inner.function("sq", lambda inputs: {"result": inputs["item"] ** 2}, writes=["result"])
    inner.output("value", "state.result")
    inner.chain("sq", "end")

    g = GraphBuilder("outer")
    g.state("numbers", list, default=[1, 2, 3])
    g.state("squares", list)
    g.state("total", int)
    g.map("each", "state.numbers", inner.build(), writes="squares")
    summer = GraphBuilder("summer")
    summer.input("values", list)
    summer.state("sum", int)
    summer.function(
        "add", lambda inputs: {"sum": sum(v["value"] for v in inputs["values"])}, writes=["sum"]
    )
    summer.chain("add", "end")
    g.subgraph("sum_them", summer, inputs={"values": "state.squares"}, outputs={"total": "sum"})
    g.chain("each", "sum_them", "end")
    result = await g.build().run()
    assert result.state["squares"] == [{"value": 1}, {"value": 4}, {"value": 9}]
    assert result.state["total"] == 14


async def test_node_timeout_and_retry_policy() -> None:
    calls = 0

    async def flaky() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("flaky backend")
        return {"ok": True}

    async def slow() -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    g = GraphBuilder("policies")
    g.state("ok", bool)
    g.function("flaky", flaky, writes=["ok"], retry=RetryPolicy(attempts=3, backoff=0))
    g.function("slow", slow, timeout=0.05)
    g.chain("flaky", "slow", "end")
    result = await g.build().run()
    assert calls == 3
    assert result.status == "failed"
    assert "node 'slow'" in (result.error or "")
    assert "timed out after 0.05 s" in (result.error or "")


async def test_failed_node_ends_the_run_with_a_clear_error() -> None:
    g = GraphBuilder("bad")
    g.state("x", int)
    g.function("oops", lambda: ["not", "a", "dict"], writes=["x"])
    g.chain("oops", "end")
    run = g.build().start()
    with pytest.raises(NodeError, match="returned list; return a dict of state updates"):
        await run.step()
    assert run.result().status == "failed"


async def test_undeclared_write_is_an_error_not_dropped() -> None:
    g = GraphBuilder("undeclared")
    g.state("x", int)
    g.function("sneaky", lambda: {"y": 1})
    g.chain("sneaky", "end")
    result = await g.build().run()
    assert result.status == "failed"
    assert "wrote state key 'y', which is not declared" in (result.error or "")


@pytest.mark.parametrize(
    ("kind", "written", "fits"),
    [
        (int, "3", False),
        (int, True, False),  # a bool is not a number here, though Python says it is an int
        (float, True, False),
        (float, 3, True),  # an integer is a number
        (int, None, True),  # None fits every key
        (str, 3, False),
        (list, (1, 2), True),
        (dict, [("a", 1)], False),
    ],
)
async def test_a_wrong_type_write_fails_the_run(kind: type, written: Any, fits: bool) -> None:
    g = GraphBuilder("typed")
    g.state("x", kind)
    g.function("write", lambda: {"x": written}, writes=["x"])
    g.chain("write", "end")
    result = await g.build().run()
    if fits:
        assert result.status == "done" and result.state["x"] == written
    else:
        assert result.status == "failed"
        assert "to state key 'x', which is declared" in (result.error or "")


async def test_step_limit_interrupts_resumably(counter: GraphBuilder) -> None:
    counter.limits(steps=3)
    result = await counter.build().run()
    assert result.status == "interrupted"
    assert "steps" in (result.reason or "")
    assert result.steps == 3


async def test_wall_time_limit() -> None:
    async def nap() -> None:
        await asyncio.sleep(1)

    g = GraphBuilder("sleepy")
    g.function("nap", nap)
    g.chain("nap", "end")
    g.limits(wall_seconds=0.05)
    result = await g.build().run()
    assert result.status == "interrupted"
    assert "wall time" in (result.reason or "")


def test_inputs_are_checked() -> None:
    g = GraphBuilder("inputs")
    g.input("question", str, description="what the user asked")
    g.input("lang", str, default="zh")
    g.state("x")
    g.function("f", lambda: {"x": 1}, writes=["x"])
    g.chain("f", "end")
    graph = g.build()
    with pytest.raises(UsageError, match="missing input 'question'"):
        graph.start({})
    with pytest.raises(UsageError, match="unknown input 'questoin'"):
        graph.start({"question": "q", "questoin": "typo"})
    with pytest.raises(UsageError, match="input 'question' should be string, got int"):
        graph.start({"question": 3})
    assert graph.start({"question": "q"}).env.inputs == {"question": "q", "lang": "zh"}


async def test_function_node_given_inputs_and_context() -> None:
    seen: dict[str, Any] = {}

    def look(state: Any, inputs: Any, context: Any) -> None:
        seen.update(path=context.path, inputs=dict(inputs), state=dict(state))

    g = GraphBuilder("ctx")
    g.input("q", str)
    g.function("look", look)
    g.chain("look", "end")
    await g.build().run({"q": "hi"})
    assert seen == {"path": "look", "inputs": {"q": "hi"}, "state": {}}


async def test_state_given_to_nodes_is_read_only() -> None:
    def mutate(state: Any) -> None:
        state["x"] = 1

    g = GraphBuilder("ro")
    g.state("x")
    g.function("mutate", mutate)
    g.chain("mutate", "end")
    result = await g.build().run()
    assert result.status == "failed"
    assert "does not support item assignment" in (result.error or "")


def test_node_spec_for_map_body_accepts_function_nodes() -> None:
    body = NodeSpec(function=FunctionNode(function=lambda item: {"r": item}, writes=["r"]))
    g = GraphBuilder("m")
    g.state("items", list, default=[1, 2])
    g.state("out", list)
    g.map("m", "state.items", body, writes="out")
    g.chain("m", "end")
    assert g.build().run_sync().state["out"] == [1, 2]


async def test_router_expressions_are_sandboxed_and_strict() -> None:
    def build(condition: str) -> Any:
        g = GraphBuilder("guarded")
        g.state("items", list, default=[1])
        g.function("a", lambda: None)
        g.router("r", [(condition, "end")], otherwise="end")
        g.chain("a", "r")
        return g.build()

    assert (await build("state.items | length == 1").run()).status == "done"  # key, not dict.items
    with pytest.raises(GraphValidationError, match="undefined variable 'state.itmes'"):
        build("state.itmes == 1")
    with pytest.raises(GraphValidationError, match="state.__class__"):
        build("state.__class__.__mro__")
    with pytest.raises(NodeError, match="refused|undefined"):
        Expression("state.__class__.__mro__").evaluate({"state": {}}, where="r")
    with pytest.raises(NodeError, match="node 'r': expression 'missing > 1'"):
        Expression("missing > 1").evaluate({}, where="r")


def test_list_and_dict_keys_without_default_start_empty() -> None:
    g = GraphBuilder("empty")
    g.state("items", list)
    g.state("index", dict)
    g.state("name", str)
    g.function(
        "look",
        lambda state: {"name": f"{len(state['items'])}/{len(state['index'])}"},
        writes=["name"],
    )
    g.chain("look", "end")
    assert g.build().run_sync().state == {"items": [], "index": {}, "name": "0/0"}
