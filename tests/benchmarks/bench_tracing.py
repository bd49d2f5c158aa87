"""Benchmark: what tracing adds to the graph engine's per-step overhead.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_tracing.py`` (``--quick`` measures
less, for a smoke test).

Two graphs of trivial function nodes (each returns a one-key update, so every step also emits a
``state_updated`` event), no checkpointer: **chain3** (three nodes in a row) and **chain1000**.
Each runs in four modes:

- **off**: nobody listens (the engine's own cost);
- **jsonl**: a :class:`JsonlSink` on one open file shared by the runs (a long-lived process
  appending its runs to a trace file), with the run's default privacy settings (a redactor);
- **jsonl+console**: the same, plus a :class:`ConsoleSink` writing to ``os.devnull``
  (events are then built as objects too);
- **live**: a consumer iterating ``run.events()``.

The engine's *per-step overhead* is (time per run - bare Python calling the same functions on a
dict) / nodes per run; each mode's overhead is set against **off**. Time is the process's CPU
time (``time.process_time``, system time of the file writes included): on a machine shared with
other work it is far steadier than wall time. Modes alternate round by round; each figure is
the best round.

Floor (issue 6): tracing to JSONL adds at most 25% to the engine's per-step overhead. The script
exits 1 when it is missed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from atdak_agents.graph.build import Graph
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.tracing import ConsoleSink, JsonlSink

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 7
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


def modes(trace: IO[bytes], devnull: IO[str]) -> dict[str, Mode]:
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


async def seconds_per_run(mode: Mode, graph: Graph, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        await mode(graph)
    return (time.process_time() - started) / repeat


def bare_seconds(length: int) -> float:
    run = bare(length)
    repeat = max(1, int(20_000 / length))
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(repeat):
            run()
        best = min(best, (time.process_time() - started) / repeat)
    return best


async def measure(length: int, all_modes: dict[str, Mode]) -> dict[str, float]:
    """Per-step overhead in µs of each mode (best of the rounds)."""
    graph = chain(length)
    probe = await seconds_per_run(all_modes["off"], graph, 3)
    repeat = max(1, int(TARGET_SECONDS / max(probe, 1e-6)))
    best = {name: float("inf") for name in all_modes}
    for _ in range(ROUNDS):
        for name, mode in all_modes.items():
            best[name] = min(best[name], await seconds_per_run(mode, graph, repeat))
    baseline = bare_seconds(length)
    return {name: (value - baseline) / length * 1e6 for name, value in best.items()}


async def measure_all(all_modes: dict[str, Mode]) -> dict[int, dict[str, float]]:
    return {length: await measure(length, all_modes) for length in (3, 1000)}


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.jsonl"
        with open(path, "ab") as trace, open(os.devnull, "w", encoding="utf-8") as devnull:
            results = asyncio.run(measure_all(modes(trace, devnull)))
        size = path.stat().st_size
    print(f"per-step overhead, µs (CPU time; best of {ROUNDS} rounds)\n")
    print(f"{'mode':<15}{'chain3':>10}{'ratio':>8}{'chain1000':>12}{'ratio':>8}")
    missed = False
    for name in results[3]:
        row = f"{name:<15}"
        for length in (3, 1000):
            value, off = results[length][name], results[length]["off"]
            row += f"{value:>{10 if length == 3 else 12}.2f}{value / off:>7.2f}x"
            if name == "jsonl" and value / off > FLOOR:
                missed = True
        print(row)
    print(f"\n(trace written: {size / 1e6:.1f} MB)")
    print(f"floor: jsonl at most {FLOOR:.2f}x off per step: {'MISSED' if missed else 'met'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
