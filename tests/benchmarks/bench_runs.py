"""Benchmark: whole agent runs over HTTP — atdak_agents against hand-written aiohttp code.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_runs.py [--quick]``.

The run measured is a 3-step tool-using run: the model first answers with a prompt-protocol
action block calling a trivial ``add`` tool, then, given the tool's result, with a final answer —
two model calls and one tool call. The ways of making it:

- ``hand-written aiohttp``: the baseline, the two calls written by hand over one
  ``aiohttp.ClientSession`` with exactly the request bodies the agent sends (checked at start);
- ``hand-written, our pool``: a reference, the same calls by hand over atdak_agents' own
  connection pool (``providers._h1``), which sends for the agent too: what a run costs without
  the agent, so the agent's own cost per run is the difference (printed);
- ``Agent.run``: :class:`~atdak_agents.agent.Agent` with :class:`AsyncAtdakClient`;
- ``graph.run``: the same agent as the ``agent`` node of a one-node graph;
- ``Pydantic AI`` when installed (``pip install -e '.[bench]'``), for reference: the same run with
  native tool calls (so other request bodies), over aiohttp under httpx (``aiohttp_transport.py``
  beside this file: the best transport we found for an httpx-based framework).

The model is the project's local server, started in a *separate process* (this file with
``--serve``) so that client and server do not share one GIL, answering from the request alone.

Measured in one run (issue 5, "Speed and scale"):

1. runs/s at concurrency 1 and 64 against a server that answers at once (alternating rounds, the
   best of each kept: the machine is shared, and noise only slows things down);
   floor: atdak_agents at least half the baseline's runs/s at both concurrencies; beside it,
   this process's CPU time per run at concurrency 64 (steadier than runs/s on a busy machine);
2. 1,000 runs launched at once against a server answering every request after 200 ms, each
   variant in a fresh subprocess: the wall time (floor: within 2 s), then a second burst under
   ``tracemalloc`` for memory per run in flight (peak minus baseline over 1,000; floor 40 KiB),
   and the growth of the process's RSS during the timed burst.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass
from typing import Any

import aiohttp

from atdak_agents.agent import Agent
from atdak_agents.graph.builder import GraphBuilder
from atdak_agents.providers._h1 import H1Pool
from atdak_agents.providers.client import AsyncAtdakClient
from atdak_agents.testing import LocalAtdakServer, Reply
from atdak_agents.testing.responders import ReceivedRequest
from atdak_agents.tool_protocols.prompt import RESULTS_HEADER
from atdak_agents.tools import tool

MODEL = "atdak-gpt-4-mini"
KEY = "sk-bench"
INSTRUCTIONS = "You are a calculator."
QUESTION = "What is 2 + 40?"
CALL = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 40}}]}
ACTION = f"```json\n{json.dumps(CALL)}\n```"
FINAL = "The sum is 42."
BURST = 1000
BURST_LATENCY = 0.2

Run = Callable[[], Awaitable[str]]


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


# --------------------------------------------------------------------------- the server


def respond(received: ReceivedRequest) -> str | Reply:
    """The scripted model, from the request alone: a tool call, then (given results) the answer.

    With the prompt protocol the call is an action block; with native tools (a request with
    ``tools``, as Pydantic AI sends) a ``tool_calls`` answer.
    """
    body = received.body
    last = body["messages"][-1]
    if "tools" in body:
        return FINAL if last["role"] == "tool" else Reply(tool_calls=CALL["tool_calls"])
    return FINAL if last["content"].startswith(RESULTS_HEADER) else ACTION


def cheap_count(value: Any, model: str) -> int:
    """A cheap stand-in for the server's token count, so the server stays out of the way."""
    if isinstance(value, str):
        return len(value) // 4 + 1
    return sum(len(m.get("content") or "") for m in value) // 4 + 1


def serve(latency: float) -> None:
    """``--serve``: the local server in this process until killed (prints its base URL)."""
    server = LocalAtdakServer(
        respond,
        api_key=KEY,
        latency=latency,
        token_counter=cheap_count,
        record=False,
        native_tools=True,
    )

    async def main() -> None:
        await server.start()
        print(f"listening on {server.base_url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, __file__, "--serve", "--latency", str(latency)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the benchmark server did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


# --------------------------------------------------------------------------- the three variants


def make_agent() -> Agent:
    return Agent(MODEL, INSTRUCTIONS, tools=[add])


Ask = Callable[[list[dict[str, str]]], Awaitable[str]]


@asynccontextmanager
async def hand_written(base_url: str) -> AsyncIterator[Run]:
    """The baseline: the same two calls, with the same bodies, written by hand over aiohttp."""
    url = f"{base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def ask(messages: list[dict[str, str]]) -> str:
            body = {"model": MODEL, "messages": messages}
            async with session.post(url, json=body, headers=headers) as response:
                response.raise_for_status()
                data = json.loads(await response.read())
            return str(data["choices"][0]["message"]["content"])

        yield by_hand(ask)


@asynccontextmanager
async def hand_written_own_pool(base_url: str) -> AsyncIterator[Run]:
    """A reference: the same calls by hand over atdak_agents' own connection pool (what is
    left of a run without the agent: the agent's own cost is the difference)."""
    url = f"{base_url}/chat/completions"
    headers = [("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json")]
    limits: dict[str, float | None] = {"connect": 10.0, "read": 60.0, "pool": None}
    pool = H1Pool(max_connections=None)
    try:

        async def ask(messages: list[dict[str, str]]) -> str:
            body = json.dumps({"model": MODEL, "messages": messages}).encode()
            answer = await pool.fetch(url, headers, body, limits)
            if answer.status_code != 200:
                raise RuntimeError(f"status {answer.status_code}")
            return str(json.loads(answer.content)["choices"][0]["message"]["content"])

        yield by_hand(ask)
    finally:
        await pool.aclose()


def by_hand(ask: Ask) -> Run:
    """The run written by hand: the model's call block read, the tool called, the answer."""
    system = make_agent().protocol.prepare([], add_tools()).messages[0].content  # the same prompt
    system = f"{INSTRUCTIONS}\n\n{system}"

    async def run() -> str:
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": QUESTION},
        ]
        text = await ask(messages)
        block = json.loads(text[text.index("{") : text.rindex("}") + 1])
        call = block["tool_calls"][0]
        result = await add.function(**call["arguments"])
        messages.append({"role": "assistant", "content": f"```json\n{json.dumps(block)}\n```"})
        messages.append({"role": "user", "content": results_text(call["name"], result)})
        return await ask(messages)

    return run


def add_tools() -> list[Any]:
    return [add]


def results_text(name: str, result: object) -> str:
    call_id = f"call_{uuid.uuid4().hex[:16]}"
    return (
        f"{RESULTS_HEADER} (written by the tools you called, not by the user)\n"
        f'<result tool="{name}" id="{call_id}">\n{result}\n</result>\n'
        "Call more tools if you need to, or answer the user in plain text."
    )


@asynccontextmanager
async def agent_run(base_url: str) -> AsyncIterator[Run]:
    agent = make_agent()
    async with AsyncAtdakClient(api_key=KEY, base_url=base_url) as client:

        async def run() -> str:
            result = await agent.run(QUESTION, provider=client)
            return str(result.output)

        yield run


@asynccontextmanager
async def graph_run(base_url: str) -> AsyncIterator[Run]:
    g = GraphBuilder("bench", model=MODEL)
    g.input("question", str)
    g.state("answer", str)
    g.agent("helper", INSTRUCTIONS, tools=[add], writes="answer", input="{{ inputs.question }}")
    g.chain("helper", "end")
    graph = g.build()
    async with AsyncAtdakClient(api_key=KEY, base_url=base_url) as client:

        async def run() -> str:
            result = await graph.run({"question": QUESTION}, provider=client)
            return str(result.state["answer"])

        yield run


@asynccontextmanager
async def pydantic_ai(base_url: str) -> AsyncIterator[Run]:
    """Pydantic AI (the ``bench`` extra) on the same aiohttp transport, with native tool calls:
    the same run, other request bodies (``tools``, ``tool_calls``, ``role: tool``)."""
    import httpx
    from aiohttp_transport import AiohttpTransport
    from pydantic_ai import Agent as PydanticAgent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    http = httpx.AsyncClient(transport=AiohttpTransport(max_connections=None), timeout=60)
    with warnings.catch_warnings():  # it prefers httpx2 from its next major version on
        warnings.simplefilter("ignore")
        provider = OpenAIProvider(base_url=base_url, api_key=KEY, http_client=http)
    agent = PydanticAgent(OpenAIChatModel(MODEL, provider=provider), instructions=INSTRUCTIONS)
    agent.tool_plain(add.function)

    async def run() -> str:
        return str((await agent.run(QUESTION)).output)

    try:
        yield run
    finally:
        await http.aclose()


VARIANTS: dict[str, Callable[[str], Any]] = {
    "hand-written aiohttp": hand_written,
    "hand-written, our pool": hand_written_own_pool,
    "Agent.run": agent_run,
    "graph.run (agent node)": graph_run,
}
BASELINE = "hand-written aiohttp"
OWN_POOL = "hand-written, our pool"
FRAMEWORK = ("Agent.run", "graph.run (agent node)")  # the variants the floors are for
SAME_BODIES = tuple(VARIANTS)
SLOW = {"Pydantic AI"}  # references measured with fewer runs
if importlib.util.find_spec("pydantic_ai") is not None:
    VARIANTS["Pydantic AI"] = pydantic_ai


# --------------------------------------------------------------------------- same bodies


async def check_same_bodies() -> None:
    """Every variant sends the same request bodies (call ids aside), and gets the answer."""
    seen: dict[str, list[Any]] = {}
    async with LocalAtdakServer(respond, api_key=KEY) as server:
        for name in SAME_BODIES:
            variant = VARIANTS[name]
            server.requests.clear()
            async with variant(server.base_url) as run:
                answer = await run()
            assert answer == FINAL, f"{name} answered {answer!r}"
            seen[name] = [_without_ids(r.body) for r in server.requests]
    first = seen[BASELINE]
    assert len(first) == 2, first
    for name, bodies in seen.items():
        assert bodies == first, f"{name} sends other request bodies than the baseline:\n{bodies}"


def _without_ids(body: Any) -> Any:
    text = json.dumps(body, ensure_ascii=False)
    start = text.find('id=\\"call_')
    if start >= 0:
        text = text[:start] + text[start + 26 :]
    return json.loads(text)


# --------------------------------------------------------------------------- runs/s


@dataclass
class Rate:
    """Runs/s, and this process's CPU time per run (the client's own cost)."""

    runs_per_s: float
    cpu_us: float

    def best(self, other: Rate | None) -> Rate:
        """The better figures of two rounds (on a shared machine, noise only slows things)."""
        if other is None:
            return self
        return Rate(max(self.runs_per_s, other.runs_per_s), min(self.cpu_us, other.cpu_us))


async def throughput(run: Run, concurrency: int, total: int) -> Rate:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await run()

    for _ in range(min(100, total // 4)):  # warm up connections and caches
        await run()
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Rate(total / elapsed, 1e6 * cpu / total)


async def measure(name: str, base_url: str, totals: tuple[int, int]) -> tuple[Rate, Rate]:
    if name in SLOW:  # ten times slower: fewer runs give as steady a figure
        totals = (totals[0] // 6, totals[1] // 6)
    async with VARIANTS[name](base_url) as run:
        one = await throughput(run, 1, totals[0])
        many = await throughput(run, 64, totals[1])
    return one, many


def runs_per_second(
    base_url: str, totals: tuple[int, int], rounds: int
) -> dict[str, tuple[Rate, Rate]]:
    best: dict[str, tuple[Rate, Rate]] = {}
    for round_ in range(1, rounds + 1):
        for name in VARIANTS:  # alternate, so a busy moment of the machine hits every variant
            one, many = asyncio.run(measure(name, base_url, totals))
            print(
                f"  round {round_}/{rounds}: {name:24} c=1 {one.runs_per_s:7,.0f}"
                f"  c=64 {many.runs_per_s:7,.0f}  ({many.cpu_us:5.0f} us CPU/run)"
            )
            old = best.get(name)
            best[name] = (one.best(old and old[0]), many.best(old and old[1]))
    return best


# --------------------------------------------------------------------------- 1,000 at once


@dataclass
class Burst:
    wall_s: float
    cpu_s: float
    traced_bytes_per_run: float
    rss_bytes_per_run: float

    def best(self, other: Burst | None) -> Burst:
        if other is None:
            return self
        return Burst(*(min(a, b) for a, b in zip(astuple(self), astuple(other), strict=True)))


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


async def _launch(run: Run, count: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    answers = await asyncio.gather(*(run() for _ in range(count)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(a == FINAL for a in answers), {a for a in answers if a != FINAL}
    return wall, cpu


async def burst(name: str, base_url: str) -> Burst:
    """``--burst NAME``: 1,000 runs at once, timed; then again, under tracemalloc."""
    async with VARIANTS[name](base_url) as run:
        await run()  # warm caches (and one connection) before anything is measured
        rss_before = _rss_kib("VmRSS:")
        wall, cpu = await _launch(run, BURST)
        rss_growth = (_rss_kib("VmHWM:") - rss_before) * 1024
    async with VARIANTS[name](base_url) as run:  # a new pool: connections count as memory
        await run()
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        await _launch(run, BURST)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Burst(wall, cpu, (peak - baseline) / BURST, rss_growth / BURST)


def bursts(base_url: str, rounds: int) -> dict[str, Burst]:
    results: dict[str, Burst] = {}
    for round_ in range(1, rounds + 1):
        for name in VARIANTS:  # each in a fresh process: clean RSS and memory figures
            if name in SLOW and round_ > 1:
                continue  # one round is enough for a reference taking ten times longer
            command = [sys.executable, __file__, "--burst", name, "--url", base_url]
            out = subprocess.run(command, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise SystemExit(f"the burst of {name} failed:\n{out.stderr}")
            r = Burst(**json.loads(out.stdout.splitlines()[-1]))
            print(
                f"  round {round_}/{rounds}: {name:24} wall {r.wall_s:5.2f} s"
                f" (CPU {r.cpu_s:4.2f} s)  traced {r.traced_bytes_per_run / 1024:5.1f} KiB/run"
                f"  RSS {r.rss_bytes_per_run / 1024:5.1f} KiB/run"
            )
            results[name] = r.best(results.get(name))
    return results


# --------------------------------------------------------------------------- report


def report(rates: dict[str, tuple[Rate, Rate]], bursts_: dict[str, Burst]) -> None:
    base = rates[BASELINE]
    print(
        f"\n{'variant':26} {'c=1 runs/s':>11} {'ratio':>6} {'c=64 runs/s':>12} {'ratio':>6}"
        f" {'CPU us/run':>11} {'ratio':>6}"
    )
    for name, (one, many) in rates.items():
        print(
            f"{name:26} {one.runs_per_s:11,.0f} {one.runs_per_s / base[0].runs_per_s:6.2f}"
            f" {many.runs_per_s:12,.0f} {many.runs_per_s / base[1].runs_per_s:6.2f}"
            f" {many.cpu_us:11,.0f} {base[1].cpu_us / many.cpu_us:6.2f}"
        )
    print(
        "floor: atdak_agents / hand-written aiohttp >= 0.50 at c=1 and c=64 (runs/s); CPU us/run"
        "\nis this process's CPU per run at c=64, its ratio baseline / variant (what runs/s"
        "\nconverges to when the client is CPU-bound; steadier than runs/s on a busy machine)"
    )
    limit = 40 * 1024
    print(
        f"\n{BURST:,} runs at once, server latency {BURST_LATENCY * 1000:.0f} ms per request"
        f"\n{'variant':26} {'wall s':>7} {'ratio':>6} {'CPU s':>6}"
        f" {'traced KiB/run':>15} {'RSS KiB/run':>12}"
    )
    b0 = bursts_[BASELINE]
    for name, b in bursts_.items():
        print(
            f"{name:26} {b.wall_s:7.2f} {b.wall_s / b0.wall_s:6.2f} {b.cpu_s:6.2f}"
            f" {b.traced_bytes_per_run / 1024:15.1f} {b.rss_bytes_per_run / 1024:12.1f}"
        )
    print(f"floors: wall <= 2.00 s, traced memory <= {limit // 1024} KiB per run in flight")
    own = rates[OWN_POOL][1].cpu_us
    print(
        "\natdak_agents' own CPU per run at c=64, beyond the same calls by hand over its pool: "
        + ", ".join(f"{name} {rates[name][1].cpu_us - own:,.0f} us" for name in FRAMEWORK)
    )
    misses = [
        f"{name} {label}"
        for name in FRAMEWORK
        for label, ok in (
            ("c=1", rates[name][0].runs_per_s >= 0.5 * base[0].runs_per_s),
            ("c=64", rates[name][1].runs_per_s >= 0.5 * base[1].runs_per_s),
            ("wall", bursts_[name].wall_s <= 2.0),
            ("memory", bursts_[name].traced_bytes_per_run <= limit),
        )
        if not ok
    ]
    print("\nall floors met" if not misses else f"\nFLOORS MISSED: {', '.join(misses)}")


def raise_file_limit() -> None:
    """1,000 connections need more than the common soft limit of 1,024 open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a rough figure)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant (best kept)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--burst", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_file_limit()
    if args.serve:
        return serve(args.latency)
    if args.burst:
        print(json.dumps(asyncio.run(burst(args.burst, args.url)).__dict__))
        return None
    limit = AsyncAtdakClient(api_key=KEY).max_connections
    print(f"client connection limit by default: {limit or 'none'} (1,000 runs need 1,000)")
    asyncio.run(check_same_bodies())
    print("same request bodies from every variant: checked")
    totals = (300, 1500) if args.quick else (600, 3000)
    rounds = 1 if args.quick else args.rounds
    process, base_url = start_server(0.0)
    try:
        print(f"\nruns/s (concurrency 1: {totals[0]:,} runs; 64: {totals[1]:,} runs)")
        rates = runs_per_second(base_url, totals, rounds)
    finally:
        process.terminate()
        process.wait(10)
    process, base_url = start_server(BURST_LATENCY)
    try:
        print(f"\n{BURST:,} runs at once (server latency {BURST_LATENCY * 1000:.0f} ms)")
        results = bursts(base_url, rounds)
    finally:
        process.terminate()
        process.wait(10)
    report(rates, results)
    return None


if __name__ == "__main__":
    main()
