"""Benchmark: what tracing adds to the graph engine's per-step overhead.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_tracing.py`` (``--quick`` measures
less, for a smoke test).

Two graphs of trivial function nodes (each returns a one-key update), no checkpointer:
**chain3** (three nodes in a row) and **chain1000**. Each runs in four modes:

- **off**: nobody listens (the engine's own cost);
- **jsonl**: a :class:`JsonlSink` on one open file shared by the runs (a long-lived process
  appending its runs to a trace file), with the run's default privacy settings (a redactor):
  per node one line, its ``node_finished``;
- **jsonl+console**: the same, plus a :class:`ConsoleSink` writing to ``os.devnull``
  (events are then built as objects too, ``node_started`` included);
- **live**: a consumer iterating ``run.events()`` (every event: node starts, state updates).

The engine's *per-step overhead* is (time per run - bare Python calling the same functions on a
dict) / nodes per run; each mode's overhead is set against **off**. Time is the process's CPU
time (``time.process_time``, system time of the file writes included): on a machine shared with
other work it is far steadier than wall time. Modes alternate round by round; each figure is
the best round.

Floor (issue 6): tracing to JSONL adds at most 25% to the engine's per-step overhead. The script
exits 1 when it is missed.

A second table runs the same chains with an :class:`SQLiteCheckpointer` (one file shared by the
runs: the durable configuration a real deployment uses), off and with the JSONL sink, and sets
the trace's cost against that per-step cost (each step then also writes ``checkpoint_saved``,
which flushes the trace).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, TextIO

import orjson

from atdak_agents.graph.build import Graph
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
from atdak_agents.tracing import ConsoleSink, JsonlSink

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 7
DURABLE_ROUNDS = 3 if QUICK else 15  # a checkpointed step's disk writes vary: more rounds
LENGTHS = (3, 1000)
DURABLE_LENGTHS = (3, 100)
TARGET_SECONDS = 0.05 if QUICK else 0.2  # each round runs a graph for about this long
FLOOR = 1.25


def bump(state: Any) -> dict[str, Any]:
    return {"n": state["n"] + 1}


def chain(length: int) -> Graph:
    g = GraphBuilder(f"chain{length}")
    g.state("n", int, default=0)
    names = [f"n{i}" for i in range(length)]
    for name in names:
        g.function(name, bump, writes=["n"])
    g.chain(*names, "end")
    return g.build()


def bare(length: int) -> Callable[[], None]:
    def run() -> None:
        state = {"n": 0}
        for _ in range(length):
            state.update(bump(state))

    return run


Mode = Callable[[Graph], Awaitable[Any]]


def modes(trace: IO[bytes], devnull: TextIO) -> dict[str, Mode]:
    async def off(graph: Graph) -> Any:
        return await graph.run()

    async def jsonl(graph: Graph) -> Any:
        return await graph.run(sinks=[JsonlSink(trace)])

    async def jsonl_console(graph: Graph) -> Any:
        return await graph.run(sinks=[JsonlSink(trace), ConsoleSink(devnull)])

    async def live(graph: Graph) -> Any:
        run = graph.start()
        async for _ in run.events():
            pass
        return run.result()

    return {"off": off, "jsonl": jsonl, "jsonl+console": jsonl_console, "live": live}


def checkpointed_modes(trace: IO[bytes], checkpointer: SQLiteCheckpointer) -> dict[str, Mode]:
    async def off(graph: Graph) -> Any:
        return await graph.run(checkpointer=checkpointer)

    async def jsonl(graph: Graph) -> Any:
        return await graph.run(checkpointer=checkpointer, sinks=[JsonlSink(trace)])

    return {"sqlite": off, "sqlite+jsonl": jsonl}


async def seconds_per_run(mode: Mode, graph: Graph, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        await mode(graph)
    return (time.process_time() - started) / repeat


def best_seconds(call: Callable[[], object], repeat: int) -> float:
    """Seconds per call of ``call`` (CPU time), the best of the rounds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(repeat):
            call()
        best = min(best, (time.process_time() - started) / repeat)
    return best


def bare_seconds(length: int) -> float:
    return best_seconds(bare(length), max(1, int(20_000 / length)))


async def samples(length: int, all_modes: dict[str, Mode], rounds: int) -> dict[str, list[float]]:
    """Per-step overhead in µs of each mode, round by round (modes alternate in each round)."""
    graph = chain(length)
    probe = await seconds_per_run(next(iter(all_modes.values())), graph, 3)
    repeat = max(1, int(TARGET_SECONDS / max(probe, 1e-6)))
    taken: dict[str, list[float]] = {name: [] for name in all_modes}
    for _ in range(rounds):
        for name, mode in all_modes.items():
            taken[name].append(await seconds_per_run(mode, graph, repeat))
    baseline = bare_seconds(length)
    return {name: [(v - baseline) / length * 1e6 for v in values] for name, values in taken.items()}


async def measure(length: int, all_modes: dict[str, Mode]) -> dict[str, float]:
    """Per-step overhead in µs of each mode (best of the rounds)."""
    taken = await samples(length, all_modes, ROUNDS)
    return {name: min(values) for name, values in taken.items()}


async def measure_all(all_modes: dict[str, Mode]) -> dict[int, dict[str, float]]:
    return {length: await measure(length, all_modes) for length in LENGTHS}


async def measure_checkpointed(folder: Path, trace: IO[bytes]) -> dict[int, dict[str, float]]:
    """Per-step cost with the SQLite checkpointer: the median of the rounds, and (``added``)
    the median of each round's difference between the two modes — a step's disk writes vary
    by more than the trace costs, and pairing the modes round by round cancels most of it."""
    async with SQLiteCheckpointer(folder / "runs.db") as checkpointer:
        durable = checkpointed_modes(trace, checkpointer)
        results: dict[int, dict[str, float]] = {}
        for length in DURABLE_LENGTHS:
            taken = await samples(length, durable, DURABLE_ROUNDS)
            pairs = zip(taken["sqlite+jsonl"], taken["sqlite"], strict=True)
            results[length] = {name: statistics.median(v) for name, v in taken.items()}
            results[length]["added"] = statistics.median(a - b for a, b in pairs)
        return results


def bare_line_seconds() -> float:
    """The least a JSONL trace can do per node, with no engine around it: read the clock at its
    start and end, count its span id, make its scope current and reset it, build its
    ``node_finished`` dict, serialise it with orjson and append it to a buffer (what
    :meth:`EventBus.leave_node` does, minus routing and privacy). Best of the rounds, in
    seconds per node: set against the 25% budget, it shows how much of the budget a JSON line
    per node leaves."""
    var: ContextVar[object] = ContextVar("bench_scope", default=None)
    buffer = bytearray()
    run_id, spans = "0" * 32, [0]
    node_updates = {"n": 1}

    def one_node() -> None:
        started = time.time()
        spans[0] += 1
        span_id = f"{spans[0]:016x}"
        token = var.set(span_id)
        var.reset(token)
        now = time.time()
        record = {
            "type": "node_finished", "run_id": run_id, "span_id": span_id,
            "parent_span_id": "0" * 16, "step": 1, "node": "n1", "ts": now, "seq": spans[0],
            "kind": "function", "started": started, "duration": now - started,
            "updated": [*node_updates], "values": node_updates, "error": None,
        }  # fmt: skip
        buffer.extend(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        if len(buffer) > 1 << 16:
            buffer.clear()

    # (less the loop and a call, which are not part of the line)
    return best_seconds(one_node, 20_000) - best_seconds(node_updates.copy, 20_000)


def table(results: dict[int, dict[str, float]], baseline: str) -> bool:
    """Print the figures and ratios against ``baseline``; whether jsonl missed the floor."""
    short, long = results
    print(f"{'mode':<15}{f'chain{short}':>10}{'ratio':>8}{f'chain{long}':>12}{'ratio':>8}")
    missed = False
    for name in results[short]:
        row = f"{name:<15}"
        for length in (short, long):
            value, off = results[length][name], results[length][baseline]
            row += f"{value:>{10 if length == short else 12}.2f}{value / off:>7.2f}x"
            if name == "jsonl" and value / off > FLOOR:
                missed = True
        print(row)
    return missed


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.jsonl"
        with open(path, "ab") as trace, open(os.devnull, "w", encoding="utf-8") as devnull:
            results = asyncio.run(measure_all(modes(trace, devnull)))
            durable = asyncio.run(measure_checkpointed(Path(folder), trace))
        size = path.stat().st_size
    print(f"per-step overhead, µs (CPU time; best of {ROUNDS} rounds)\n")
    missed = table(results, "off")
    print(f"\n(trace written: {size / 1e6:.1f} MB)")
    print(f"floor: jsonl at most {FLOOR:.2f}x off per step: {'MISSED' if missed else 'met'}")
    line = bare_line_seconds() * 1e6
    for length in LENGTHS:
        budget = (FLOOR - 1) * results[length]["off"]
        print(
            f"chain{length}: the floor leaves {budget:.2f} µs per step for tracing; one "
            f"node_finished line, made with nothing around it, takes {line:.2f} µs "
            f"({line / budget:.2f}x the budget)"
        )
    print(f"\nwith the SQLite checkpointer (each step committed; median of {DURABLE_ROUNDS})\n")
    table({n: {k: v for k, v in r.items() if k != "added"} for n, r in durable.items()}, "sqlite")
    for length in DURABLE_LENGTHS:
        added = durable[length]["added"]
        share = added / durable[length]["sqlite"]
        print(
            f"chain{length}: the JSONL trace adds {added:.2f} µs per checkpointed step "
            f"({share:.1%}; median of the rounds' paired differences)"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
