"""Shutdown and restart: running steps finish and are checkpointed, event streams end and
reconnect, waiting runs are answered on the next server, interrupted runs resume by themselves."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from server_helpers import Gate, all_graphs, provider_of, read_events, serving, wait_for

from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
from atdak_agents.server import BackgroundServer, ServerConfig, create_app
from atdak_agents.testing import LocalAtdakServer


async def _stored(path: Path, run_id: str) -> tuple[str, int, str | None]:
    async with SQLiteCheckpointer(path) as store:
        record = await store.get_run(run_id)
    assert record is not None
    return record.status, record.step, record.error


def _stop_in_background(server: BackgroundServer) -> threading.Thread:
    thread = threading.Thread(target=server.stop)
    thread.start()
    return thread


def test_a_waiting_run_survives_a_restart(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    upstream.responder = ["Dear Bo"]
    with serving(upstream, tmp_path) as first, httpx.Client(base_url=first.url) as http:
        run_id = http.post("/v1/runs", json={"workflow": "approve", "inputs": {"request": "r"}})
        run_id = run_id.json()["id"]
        wait_for(http, run_id, "waiting")
        before = read_events(http, run_id)
    with serving(upstream, tmp_path) as second, httpx.Client(base_url=second.url) as http:
        waiting = http.get(f"/v1/runs/{run_id}").json()
        answered = http.post(f"/v1/runs/{run_id}/answer", json={"answer": "yes"})
        done = wait_for(http, run_id, "done")
        after = read_events(http, run_id, after=before[-1]["id"])
        everything = read_events(http, run_id)
    assert waiting["status"] == "waiting" and waiting["question"] == "Send Dear Bo?"
    assert answered.status_code == 202
    assert done["output"] == {"answer": "sent: Dear Bo"}
    assert before + after == everything
    assert [e["id"] for e in everything] == list(range(1, len(everything) + 1))
    assert _starts(everything) == [False, True]  # started once, resumed once
    assert done["usage"]["requests"] == 1  # the draft was not asked for again


def test_shutdown_finishes_the_running_step_and_the_next_server_resumes(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    db = tmp_path / "server.db"
    with serving(upstream, tmp_path) as first, httpx.Client(base_url=first.url) as http:
        run_id = http.post("/v1/runs", json={"workflow": "slow", "inputs": {}}).json()["id"]
        assert gate.entered.wait(5)
        with http.stream("GET", f"/v1/runs/{run_id}/events") as stream:
            lines = stream.iter_lines()
            seen = [next(lines) for _ in range(3)]  # retry: …, then the first event
            stopping = _stop_in_background(first)
            time.sleep(0.2)  # the server is stopping: it waits for the step to finish
            assert stopping.is_alive()
            gate.release.set()
            rest = list(lines)  # the stream ends by itself: shutdown does not wait for it
        stopping.join(30)
    assert not stopping.is_alive() and "run_started" in "".join(seen + rest)
    status, step, reason = _run(_stored(db, run_id))
    assert (status, step) == ("interrupted", 1) and "server stopped" in (reason or "")
    with serving(upstream, tmp_path) as second, httpx.Client(base_url=second.url) as http:
        done = wait_for(http, run_id, "done")  # resumed by itself at start
        events = read_events(http, run_id)
    assert done["output"] == {"answer": ["slow", "quick", "quick"]}
    assert gate.calls == 1  # the completed step was not run again
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert _starts(events) == [False, True] and events[-1]["event"] == "run_finished"
    assert [e["data"]["reason"] for e in events if e["event"] == "run_interrupted"] == [reason]


def test_a_reader_reconnects_across_a_restart(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    with serving(upstream, tmp_path) as first, httpx.Client(base_url=first.url) as http:
        run_id = http.post("/v1/runs", json={"workflow": "slow", "inputs": {}}).json()["id"]
        assert gate.entered.wait(5)
        early = read_events(http, run_id, limit=2)
        stopping = _stop_in_background(first)
        time.sleep(0.1)
        gate.release.set()
        stopping.join(30)
    with serving(upstream, tmp_path) as second, httpx.Client(base_url=second.url) as http:
        late = read_events(http, run_id, after=early[-1]["id"])  # live: follows to the end
        wait_for(http, run_id, "done")
        everything = read_events(http, run_id)
    assert early + late == everything


def test_a_chat_in_progress_finishes_within_the_grace_period(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    answers: list[httpx.Response] = []
    body = {"model": "slow", "messages": [{"role": "user", "content": "{}"}]}
    with serving(upstream, tmp_path, shutdown_grace=5.0) as server:
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
            )
        )
        asking.start()
        assert gate.entered.wait(5)
        stopping = _stop_in_background(server)
        time.sleep(0.2)
        gate.release.set()
        asking.join(30)
        stopping.join(30)
    assert answers[0].status_code == 200
    assert answers[0].json()["choices"][0]["message"]["content"] == '["slow", "quick", "quick"]'


def test_a_chat_past_the_grace_period_is_checkpointed_and_finished_later(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    answers: list[httpx.Response] = []
    body = {"model": "slow", "messages": [{"role": "user", "content": "{}"}]}
    with serving(upstream, tmp_path, shutdown_grace=0.1) as server:
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
            )
        )
        asking.start()
        assert gate.entered.wait(5)
        stopping = _stop_in_background(server)
        time.sleep(0.4)
        gate.release.set()
        asking.join(30)
        stopping.join(30)
    refused = answers[0]
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    run_id = refused.headers["x-run-id"]
    with serving(upstream, tmp_path) as second, httpx.Client(base_url=second.url) as http:
        done = wait_for(http, run_id, "done")
    assert done["output"] == {"answer": ["slow", "quick", "quick"]} and gate.calls == 1


def test_runs_of_a_workflow_no_longer_served_are_left_alone(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    with serving(upstream, tmp_path) as first, httpx.Client(base_url=first.url) as http:
        run_id = http.post("/v1/runs", json={"workflow": "approve", "inputs": {"request": "r"}})
        wait_for(http, run_id.json()["id"], "waiting")
    graphs = [g for g in all_graphs() if g.name != "approve"]
    app = create_app(
        graphs, config=ServerConfig(database=tmp_path / "server.db"), provider=provider_of(upstream)
    )
    with BackgroundServer(app) as second, httpx.Client(base_url=second.url) as http:
        answer = http.post(f"/v1/runs/{run_id.json()['id']}/answer", json={"answer": "yes"})
    assert answer.status_code == 404 and "approve" in answer.json()["error"]["message"]


def _starts(events: list[dict]) -> list[bool]:
    return [e["data"]["resumed"] for e in events if e["event"] == "run_started"]


def _run(coroutine):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(coroutine)


def test_a_run_left_by_a_crashed_process_is_resumed_once_its_lease_expires(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    from server_helpers import three_step_graph

    upstream.responder = ["sorted", "drafted", "the answer"]
    db = tmp_path / "server.db"

    async def crash_after_one_step() -> str:
        async with (
            upstream.async_client() as client,
            SQLiteCheckpointer(db, lease_ttl=0.5) as store,
        ):
            run = three_step_graph().start({"question": "q"}, provider=client, checkpointer=store)
            await run.step()  # step 1 is committed; then the process "dies" holding the lease
            return run.id

    run_id = _run(crash_after_one_step())
    with (
        serving(upstream, tmp_path, lease_ttl=0.5) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        done = wait_for(http, run_id, "done")  # resumed once the dead process's lease expired
    assert done["output"] == {"answer": "the answer"}
    assert len(upstream.requests) == 3  # the committed step's model call was not made again
