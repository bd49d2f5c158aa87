"""Running coroutines inline up to their first wait; maps of plain functions without a Task per
item, and back to concurrency when an item waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atdak_agents.exceptions import NodeError
from atdak_agents.graph._stepping import Resumed, first_step
from atdak_agents.graph.builder import GraphBuilder


async def test_first_step_of_a_coroutine_that_does_not_wait() -> None:
    async def plain() -> str:
        return "done"

    assert first_step(plain()) == (True, "done")


async def test_a_coroutine_that_waits_is_resumed_where_it_stopped() -> None:
    seen: list[str] = []

    async def two_waits() -> str:
        seen.append("start")
        await asyncio.sleep(0)
        seen.append("middle")
        await asyncio.sleep(0.01)
        return "end"

    coroutine = two_waits()
    finished, waiting_on = first_step(coroutine)
    assert not finished and seen == ["start"]
    assert await Resumed(coroutine, waiting_on) == "end"
    assert seen == ["start", "middle"]


async def test_errors_and_cancellation_reach_the_resumed_coroutine() -> None:
    cleaned: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad item")

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("slow")

    coroutine = failing()
    _, waiting_on = first_step(coroutine)
    with pytest.raises(ValueError, match="bad item"):
        await Resumed(coroutine, waiting_on)
    slow_one = slow()
    _, waiting_on = first_step(slow_one)
    task = asyncio.ensure_future(Resumed(slow_one, waiting_on))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["slow"]


def _map_graph(body: Any, concurrency: int = 4) -> Any:
    g = GraphBuilder("mapped")
    g.state("items", list, default=list(range(6)))
    g.state("out", list)
    g.map("each", "state.items", body, writes="out", concurrency=concurrency)
    g.chain("each", "end")
    return g.build()


async def test_a_map_of_plain_functions_stops_making_a_task_per_item() -> None:
    tasks: list[list[Any]] = [[], []]
    run_index = 0

    def square(item: int) -> int:
        tasks[run_index].append(asyncio.current_task())
        return item * item

    graph = _map_graph(square)
    first = await graph.run()
    run_index = 1
    second = await graph.run()
    assert first.state["out"] == second.state["out"] == [0, 1, 4, 9, 16, 25]
    assert len(set(tasks[0])) == 6  # first run: a task per item, while it learns
    assert len(set(tasks[1])) == 1  # then the items run in the map's own task


async def test_a_map_goes_back_to_concurrency_when_an_item_waits() -> None:
    active = peak = 0
    wait_from = {"item": 99}

    async def maybe_wait(item: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if item >= wait_from["item"]:
            await asyncio.sleep(0.02)
        active -= 1
        return item + 100

    graph = _map_graph(maybe_wait, concurrency=3)
    assert (await graph.run()).state["out"] == [100, 101, 102, 103, 104, 105]
    assert peak == 1  # nothing waited: learned to run one by one
    wait_from["item"] = 2  # from item 2 on, items wait
    result = await graph.run()
    assert result.state["out"] == [100, 101, 102, 103, 104, 105]
    assert peak == 3  # item 2 waited where it was; items 3-5 then ran together (limit 3)


async def test_a_failing_item_in_a_map_run_one_by_one() -> None:
    def fussy(item: int) -> int:
        if item == 3 and failing["on"]:
            raise ValueError("item 3 is bad")
        return item

    failing = {"on": False}
    graph = _map_graph(fussy)
    assert (await graph.run()).status == "done"
    failing["on"] = True
    run = graph.start()
    with pytest.raises(NodeError, match=r"node 'each\[3\]/each_body'|item 3 is bad"):
        await run.step()
    assert run.result().status == "failed"
