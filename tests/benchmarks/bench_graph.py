"""Benchmark: the graph engine's own cost per step, against LangGraph, in one run.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_graph.py`` (LangGraph comes with the
``bench`` extra: ``pip install -e '.[bench]'``). ``--quick`` measures less, for a smoke test.

The same three graphs of trivial nodes (each returns a one-key update) are built in atdak_agents
and in LangGraph:

- **chain3**: three nodes in a row;
- **map10**: a node makes a list of 10 items, a map runs a trivial node on each item in
  parallel (atdak_agents: a ``map`` node; LangGraph: ``Send`` fan-out), and a node gathers them;
- **chain1000**: a thousand nodes in a row.

Each graph runs without a checkpointer and with each side's SQLite checkpointer on a file on
disk, with the same durability intent: WAL, ``synchronous=NORMAL`` (a committed step survives the
process being killed), and every step committed before the next one starts (LangGraph's
``durability="sync"``; atdak_agents always does this).

The **baseline** is bare Python calling the same node functions on a dict, in the same order.
A graph's *per-step overhead* is (time per run - baseline per run) / node executions per run
(chain3: 3, map10: 12, chain1000: 1000). Each figure is the best of several rounds in which the
four variants take turns (the machine may be shared).

Floors (issue 5): without a checkpointer, atdak_agents' per-step overhead is at most a tenth of
LangGraph's; with SQLite, below LangGraph's with its SQLite saver; per-step cost flat from 3 to
1,000 nodes (chain1000 at most 1.5x chain3). The script exits 1 when a floor is missed.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from typing_extensions import TypedDict

from atdak_agents.graph.build import Graph
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer

QUICK = "--quick" in sys.argv
REPEATS = 3 if QUICK else 5
TARGET_SECONDS = 0.05 if QUICK else 0.25  # each repeat runs the graph for about this long
ITEMS = list(range(10))

# --------------------------------------------------------------------------- the trivial nodes


def bump(state: Any) -> dict[str, Any]:
    return {"n": state["n"] + 1}


def make_items(state: Any) -> dict[str, Any]:
    return {"items": ITEMS}


def work(item: Any) -> Any:
    return item


def gather(state: Any) -> dict[str, Any]:
    return {"total": len(state["results"])}


@dataclass(frozen=True)
class Case:
    name: str
    nodes: int  # node executions per run
    bare: Callable[[], None]


def bare_chain(length: int) -> Callable[[], None]:
    def run() -> None:
        state = {"n": 0}
        for _ in range(length):
            state.update(bump(state))

    return run


def bare_map() -> None:
    state: dict[str, Any] = {"results": []}
    state.update(make_items(state))
    state["results"] = [work(item) for item in state["items"]]
    state.update(gather(state))


CASES = [
    Case("chain3", 3, bare_chain(3)),
    Case("map10", 12, bare_map),
    Case("chain1000", 1000, bare_chain(1000)),
]

# --------------------------------------------------------------------------- atdak_agents


def atdak_graph(case: str) -> Graph:
    g = GraphBuilder(case)
    if case == "map10":
        g.state("items", list)
        g.state("results", list)
        g.state("total", int)
        g.function("make_items", make_items, writes=["items"])
        g.map("each", "state.items", work, writes="results", concurrency=10)
        g.function("gather", gather, writes=["total"])
        g.chain("make_items", "each", "gather", "end")
        return g.build()
    g.state("n", int, default=0)
    names = [f"n{i}" for i in range(int(case.removeprefix("chain")))]
    for name in names:
        g.function(name, bump, writes=["n"])
    g.chain(*names, "end")
    return g.build()


def atdak_runner(
    case: str, checkpointer: SQLiteCheckpointer | None
) -> Callable[[], Awaitable[Any]]:
    graph = atdak_graph(case)

    async def run() -> Any:
        result = await graph.run(checkpointer=checkpointer)
        assert result.status == "done", result.error
        return result

    return run


# --------------------------------------------------------------------------- LangGraph


class ChainState(TypedDict):
    n: int


class MapState(TypedDict, total=False):
    items: list[int]
    results: Annotated[list[Any], operator.add]
    total: int
    item: int


def lg_work(state: Any) -> dict[str, Any]:
    return {"results": [work(state["item"])]}


def langgraph_graph(case: str, checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    if case == "map10":
        builder: Any = StateGraph(MapState)
        builder.add_node("make_items", make_items)
        builder.add_node("work", lg_work)
        builder.add_node("gather", gather)
        builder.add_edge(START, "make_items")
        builder.add_conditional_edges(
            "make_items", lambda s: [Send("work", {"item": i}) for i in s["items"]], ["work"]
        )
        builder.add_edge("work", "gather")
        builder.add_edge("gather", END)
        return builder.compile(checkpointer=checkpointer)
    builder = StateGraph(ChainState)
    names = [f"n{i}" for i in range(int(case.removeprefix("chain")))]
    for name in names:
        builder.add_node(name, bump)
    builder.add_edge(START, names[0])
    for source, target in itertools.pairwise(names):
        builder.add_edge(source, target)
    builder.add_edge(names[-1], END)
    return builder.compile(checkpointer=checkpointer)


def langgraph_runner(case: str, checkpointer: Any) -> Callable[[], Awaitable[Any]]:
    graph = langgraph_graph(case, checkpointer)
    inputs: dict[str, Any] = {"n": 0} if case.startswith("chain") else {"results": []}

    async def run() -> Any:
        config: dict[str, Any] = {"recursion_limit": 10_000}
        if checkpointer is not None:
            config["configurable"] = {"thread_id": uuid.uuid4().hex}
            return await graph.ainvoke(inputs, config, durability="sync")
        return await graph.ainvoke(inputs, config)

    return run


async def langgraph_saver(path: Path) -> Any:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = await aiosqlite.connect(path)
    saver = AsyncSqliteSaver(conn)
    await saver.setup()  # WAL
    await conn.execute("PRAGMA synchronous = NORMAL")
    async with conn.execute("PRAGMA synchronous") as cursor:
        assert (await cursor.fetchone()) == (1,)  # NORMAL, as atdak_agents' default
    return saver


# --------------------------------------------------------------------------- measuring


async def runs_per_repeat(run: Callable[[], Awaitable[Any]]) -> int:
    """Warm up, and size a repeat to last about TARGET_SECONDS."""
    started = time.perf_counter()
    await run()
    once = time.perf_counter() - started
    return max(1, min(5_000, int(TARGET_SECONDS / max(once, 1e-6))))


async def time_once(run: Callable[[], Awaitable[Any]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await run()
    return (time.perf_counter() - started) / count


def time_bare(case: Case) -> float:
    count, best = 20_000 // case.nodes + 1, float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(count):
            case.bare()
        best = min(best, (time.perf_counter() - started) / count)
    return best


@dataclass
class Row:
    case: Case
    bare: float
    times: dict[str, float]  # side -> seconds per run

    def per_step(self, side: str) -> float:
        """Microseconds of overhead per node execution."""
        return (self.times[side] - self.bare) / self.case.nodes * 1e6


SIDES = ("atdak", "langgraph", "atdak+sqlite", "langgraph+sqlite")


async def measure(case: Case, folder: Path) -> Row:
    """Seconds per run for each side: the best of REPEATS rounds, the sides taking turns in
    each round so that a burst of load elsewhere on the machine hits them all alike."""
    row = Row(case, time_bare(case), {})
    store = SQLiteCheckpointer(folder / f"atdak-{case.name}.db")
    saver = await langgraph_saver(folder / f"langgraph-{case.name}.db")
    try:
        runners = {
            "atdak": atdak_runner(case.name, None),
            "langgraph": langgraph_runner(case.name, None),
            "atdak+sqlite": atdak_runner(case.name, store),
            "langgraph+sqlite": langgraph_runner(case.name, saver),
        }
        counts = {side: await runs_per_repeat(run) for side, run in runners.items()}
        row.times = {side: float("inf") for side in runners}
        for _ in range(REPEATS):
            for side, run in runners.items():
                row.times[side] = min(row.times[side], await time_once(run, counts[side]))
    finally:
        await store.close()
        await saver.conn.close()
    for side in ("atdak", "langgraph"):
        _check_wal(folder, side, case.name)
    return row


def _check_wal(folder: Path, side: str, case: str) -> None:
    path = folder / f"{side}-{case}.db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal", path


# --------------------------------------------------------------------------- report


def report(rows: list[Row]) -> list[str]:
    print(f"{'graph':<10} {'bare/run':>10} " + " ".join(f"{s:>17}" for s in SIDES))
    for row in rows:
        cells = " ".join(f"{row.per_step(s):>14.1f} µs" for s in SIDES)
        print(f"{row.case.name:<10} {row.bare * 1e6:>7.1f} µs {cells}")
    print("(per-step overhead: (time per run - bare Python per run) / node executions per run)")
    print()
    print("time per run, and ratios (LangGraph / atdak_agents; higher is better for atdak):")
    misses: list[str] = []
    for row in rows:
        plain = row.per_step("langgraph") / row.per_step("atdak")
        saved = row.per_step("langgraph+sqlite") / row.per_step("atdak+sqlite")
        runs = ", ".join(f"{s} {row.times[s] * 1e3:.3f} ms" for s in SIDES)
        print(f"  {row.case.name}: {runs}")
        print(f"    no checkpointer {plain:.1f}x, SQLite {saved:.1f}x")
        if plain < 10:
            misses.append(f"{row.case.name}: no-checkpointer ratio {plain:.1f}x < 10x")
        if saved <= 1:
            misses.append(f"{row.case.name}: SQLite ratio {saved:.2f}x <= 1x")
    by_name = {row.case.name: row for row in rows}
    for side in ("atdak", "atdak+sqlite"):
        growth = by_name["chain1000"].per_step(side) / by_name["chain3"].per_step(side)
        print(f"  {side}: per-step cost chain1000 / chain3 = {growth:.2f}")
        if growth > 1.5:
            misses.append(f"{side}: per-step cost grows {growth:.2f}x from 3 to 1,000 nodes")
    return misses


async def main() -> int:
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [await measure(case, Path(tmp)) for case in CASES]
    misses = report(rows)
    print()
    for miss in misses:
        print(f"FLOOR MISSED: {miss}")
    if not misses:
        print("all floors met")
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
