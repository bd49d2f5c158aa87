"""Benchmark: 500 concurrent chat requests to a 3-node workflow served by ``atdak-agents serve``.

Run on demand: ``.venv/bin/python tests/benchmarks/bench_server.py [--requests N] [--latency S]``.

Three processes, as in a deployment: the local Atdak server (the upstream model endpoint,
``atdak-agents local-server``), the workflow server (``atdak-agents serve``, checkpointing every
step to SQLite), and this process firing N concurrent chat requests (plain, then streamed) with
AsyncAtdakClient. Each request asks a unique question that the echoing upstream returns as the
answer, so every answer is checked against its question: nothing lost, mixed up or answered
twice. The runs the server stored are checked too (N done runs per round, 3 model calls each).

Printed: throughput (requests/s), p50/p99 latency, the server's peak memory (VmHWM), and, as
the baseline measured in the same run, the same N runs made in-process with ``graph.run`` (same
workflow, same upstream, SQLite checkpoints) — so the ratio is what serving over HTTP costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

KEY = "sk-bench-upstream-0000"
WORKFLOW = """
name: three
model: atdak-gpt-4-mini
inputs: {question: {type: string}}
state:
  category: {type: string}
  draft: {type: string}
  answer: {type: string}
outputs: {answer: state.answer}
nodes:
  classify: {llm: {prompt: "Classify: {{ inputs.question }}", writes: category}}
  draft: {llm: {prompt: "Draft an answer to: {{ inputs.question }}", writes: draft}}
  polish: {llm: {prompt: "{{ inputs.question }}", writes: answer}}
edges: ["classify -> draft -> polish -> end"]
"""


@dataclass
class Round:
    label: str
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# --------------------------------------------------------------------------- processes


def start(
    command: list[str], pattern: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    for line in iter(process.stdout.readline, ""):  # (a profiler may print first)
        found = re.search(pattern, line)
        if found:
            return process, found.group(1)
    process.kill()
    raise SystemExit(f"{' '.join(command)} did not start")


def peak_memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, in MB (Linux /proc)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# --------------------------------------------------------------------------- load


async def chat_round(url: str, n: int, *, stream: bool) -> tuple[Round, list[str]]:
    """N concurrent requests through AsyncAtdakClient (a pooled aiohttp client, as a service
    calling the server would use); returns the round and the run ids of the answers."""
    from atdak_agents.providers.client import AsyncAtdakClient

    questions = [f"question {i} {uuid.uuid4().hex}" for i in range(n)]
    latencies: list[float] = []
    async with AsyncAtdakClient(
        base_url=f"{url}/v1", api_key="unused-on-loopback", max_connections=n + 10, timeout=300
    ) as client:

        async def ask(question: str) -> tuple[str, str]:
            messages = [{"role": "user", "content": question}]
            started = time.perf_counter()
            if stream:
                pieces, run_id = [], ""
                answer_stream = await client.chat.completions.create(
                    model="three", messages=messages, stream=True
                )
                async with answer_stream:
                    async for chunk in answer_stream:
                        run_id = chunk.id
                        if chunk.choices:
                            pieces.append(chunk.choices[0].delta.content or "")
                answer = "".join(pieces)
            else:
                completion = await client.chat.completions.create(model="three", messages=messages)
                answer, run_id = completion.choices[0].message.content or "", completion.id
            latencies.append(time.perf_counter() - started)
            return answer, run_id.removeprefix("chatcmpl-")

        started = time.perf_counter()
        results = await asyncio.gather(*(ask(q) for q in questions))
        elapsed = time.perf_counter() - started
    wrong = [(q, a) for q, (a, _) in zip(questions, results, strict=True) if a != q]
    assert not wrong, f"{len(wrong)} answers do not match their question, e.g. {wrong[0]}"
    run_ids = [run_id for _, run_id in results]
    assert len(set(run_ids)) == n, "a run answered two requests"
    label = "streamed" if stream else "plain"
    return Round(f"served, {label}", n, elapsed, latencies), run_ids


async def check_stored(url: str, run_ids: list[str]) -> None:
    """Every run is stored as done, with its three model calls (so none was repeated)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        runs = (await http.get("/v1/runs", params={"status": "done", "limit": 1000})).json()
    stored = {run["id"]: run for run in runs["data"]}
    missing = [run_id for run_id in run_ids if run_id not in stored]
    assert not missing, f"{len(missing)} runs are not stored as done"
    calls = {stored[run_id]["usage"]["requests"] for run_id in run_ids}
    assert calls == {3}, f"model calls per run: {calls}"


async def direct_round(upstream: str, n: int, folder: Path, *, stream: bool) -> Round:
    """The baseline: the same runs in-process with ``graph.run`` (SQLite checkpoints); streamed:
    driven by ``run.events()`` with the answer's tokens."""
    from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
    from atdak_agents.providers.client import AsyncAtdakClient
    from atdak_agents.workflow import load_workflow

    graph = load_workflow(folder / "three.yaml").graph
    latencies: list[float] = []
    async with (
        AsyncAtdakClient(base_url=upstream, api_key=KEY, max_connections=n + 10) as client,
        SQLiteCheckpointer(folder / "direct.db") as store,
    ):

        async def one(question: str) -> None:
            started = time.perf_counter()
            run = graph.start({"question": question}, provider=client, checkpointer=store)
            if stream:
                pieces = [
                    getattr(e, "text", "") or ""
                    async for e in run.events(include={"token"})
                    if e.node == "polish"
                ]
                assert "".join(pieces) == question
            result = await run.until_done() if not stream else run.result()
            assert result.output["answer"] == question
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(f"direct {i} {uuid.uuid4().hex}") for i in range(n)))
        elapsed = time.perf_counter() - started
    label = "streamed" if stream else "plain"
    return Round(f"in-process, {label}", n, elapsed, latencies)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.0, help="upstream seconds per answer")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (best kept)")
    parser.add_argument("--profile", metavar="FILE", help="sample the server with py-spy")
    args = parser.parse_args()
    n = args.requests
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDAK_")}
    cli = [sys.executable, "-m", "atdak_agents.cli"]
    spy = str(Path(sys.executable).with_name("py-spy"))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "three.yaml").write_text(textwrap.dedent(WORKFLOW).lstrip(), encoding="utf-8")
        upstream_cmd = [*cli, "local-server", "--port", "0", "--api-key", KEY, "--no-record"]
        upstream_cmd += ["--latency", str(args.latency), "--chunk-size", "8"]
        upstream, upstream_url = start(upstream_cmd, r"on (http://\S+)", env)
        served_env = {**env, "ATDAK_API_KEY": KEY, "ATDAK_BASE_URL": upstream_url}
        server_cmd = [*cli, "serve", str(folder), "--port", "0", "--db", str(folder / "s.db")]
        server_cmd += ["--max-runs-per-key", str(n * 2), "--log-level", "warning"]
        try:
            server, url = start(server_cmd, r"on (http://127\.0\.0\.1:\d+)", served_env)
        except BaseException:
            upstream.terminate()
            raise
        if args.profile:  # sample the server while it is under load
            record = [spy, "record", "--pid", str(server.pid), "-o", args.profile, "-f", "raw"]
            sampler = subprocess.Popen([*record, "--duration", "20", "--nonblocking"])
        try:
            idle, _ = peak_memory_mb(server.pid)
            best = asyncio.run(measure(url, upstream_url, n, folder, args.rounds))
            _, peak = peak_memory_mb(server.pid)
        finally:
            for process in (server, upstream):
                process.terminate()
                process.wait(60)
            if args.profile:
                sampler.wait(60)
    report(n, args.latency, best, idle, peak, args.rounds)


async def measure(url: str, upstream: str, n: int, folder: Path, rounds: int) -> dict[str, Round]:
    """Each way measured ``rounds`` times, alternating (the machine is shared); best kept."""
    await chat_round(url, 20, stream=False)  # warm up both sides
    await direct_round(upstream, 20, folder, stream=False)
    best: dict[str, Round] = {}
    for _ in range(rounds):
        for stream in (False, True):
            served, run_ids = await chat_round(url, n, stream=stream)
            await check_stored(url, run_ids)
            direct = await direct_round(upstream, n, folder, stream=stream)
            for r in (served, direct):
                if r.label not in best or r.rps > best[r.label].rps:
                    best[r.label] = r
    return best


def report(
    n: int, latency: float, best: dict[str, Round], idle: float, peak: float, rounds: int
) -> None:
    print(
        f"{n} concurrent chat requests, 3-node workflow (3 model calls each), upstream "
        f"latency {latency * 1000:.0f} ms, every step checkpointed to SQLite; best of {rounds}"
    )
    print(f"{'':22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs in-process':>14}")
    for kind in ("plain", "streamed"):
        baseline = best[f"in-process, {kind}"]
        for r in (best[f"served, {kind}"], baseline):
            ratio = r.rps / baseline.rps
            print(
                f"{r.label:22} {r.rps:8.1f} {r.percentile(0.5):8.0f} "
                f"{r.percentile(0.99):8.0f} {ratio:13.2f}x"
            )
    print(f"server memory: {idle:.0f} MB idle, {peak:.0f} MB peak (VmHWM)")
    print(
        f"checked: {2 * n * rounds} served answers matched their questions, each from its own "
        "run, stored as done with exactly 3 model calls (none lost, none duplicated)"
    )


if __name__ == "__main__":
    main()
