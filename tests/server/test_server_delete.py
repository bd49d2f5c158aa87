"""``DELETE /v1/runs/{id}`` over real HTTP: a stopped run's checkpoints and events go (checked
in the SQLite files), a running one is refused until cancelled, forks outlive their parent, and
the server's keys guard it like every other endpoint."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
from server_helpers import Gate, read_events, serving, three_step_graph, wait_for

from atdak_agents.graph.sqlite_checkpoint import SQLiteCheckpointer
from atdak_agents.testing import LocalAtdakServer

KEY = "server-key-delete-0123456789"


def _start(http: httpx.Client, workflow: str, inputs: dict[str, Any]) -> str:
    response = http.post("/v1/runs", json={"workflow": workflow, "inputs": inputs})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _rows(db: Path, run_id: str) -> dict[str, int]:
    """How many rows of the run each table of the checkpoint and event files holds."""
    counts: dict[str, int] = {}
    with sqlite3.connect(db) as conn:
        key = conn.execute("SELECT id FROM checkpoint_runs WHERE run_id = ?", (run_id,)).fetchone()
        counts["runs"] = 0 if key is None else 1
        for table in ("checkpoint_steps", "checkpoint_calls"):
            sql = f"SELECT COUNT(*) FROM {table} WHERE run = ?"
            counts[table] = conn.execute(sql, (key[0] if key else -1,)).fetchone()[0]
    conn.close()
    with sqlite3.connect(db.with_name("server.events.db")) as conn:
        for table in ("server_events", "server_runs"):
            sql = f"SELECT COUNT(*) FROM {table} WHERE run_id = ?"
            counts[table] = conn.execute(sql, (run_id,)).fetchone()[0]
    conn.close()
    return counts


def test_delete_a_done_run(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "three", {"question": "where is my parcel?"})
        other = _start(http, "three", {"question": "and my refund?"})
        done = wait_for(http, run_id, "done")
        wait_for(http, other, "done")
        before = _rows(db, run_id)
        deleted = http.delete(f"/v1/runs/{run_id}")
        after = _rows(db, run_id)
        gone = http.get(f"/v1/runs/{run_id}")
        events = http.get(f"/v1/runs/{run_id}/events")
        again = http.delete(f"/v1/runs/{run_id}")
        listed = [r["id"] for r in http.get("/v1/runs").json()["data"]]
        kept = http.get(f"/v1/runs/{other}").json()
        kept_rows = _rows(db, other)
    assert before["runs"] == 1 and before["checkpoint_steps"] == 3
    assert before["checkpoint_calls"] == 3 and before["server_events"] == done["last_event_id"]
    assert deleted.status_code == 200
    assert deleted.json() == {
        "id": run_id,
        "object": "run.deleted",
        "deleted": True,
        "workflow": "three",
        "status": "done",
        "step": 3,
        "events": done["last_event_id"],
    }
    assert set(after.values()) == {0}  # steps, journaled calls, events and options all went
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "run_not_found"
    assert events.status_code == 404
    assert again.status_code == 404 and again.json()["error"]["code"] == "run_not_found"
    assert listed == [other]
    assert kept["status"] == "done" and kept_rows["checkpoint_steps"] == 3


def test_delete_an_unknown_run(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path) as server:
        response = httpx.delete(f"{server.url}/v1/runs/no-such-run")
        refused = httpx.delete(f"{server.url}/v1/runs/no-such-run?force=true")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "message": "no run 'no-such-run' here (GET /v1/runs lists the runs)",
            "type": "not_found_error",
            "code": "run_not_found",
            "param": None,
        }
    }
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "force"


def test_a_running_run_is_refused_until_cancelled(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "slow", {})
        assert gate.entered.wait(5)
        refused = http.delete(f"/v1/runs/{run_id}")
        still = http.get(f"/v1/runs/{run_id}").json()
        cancelled = http.post(f"/v1/runs/{run_id}/cancel").json()
        gate.release.set()
        deleted = http.delete(f"/v1/runs/{run_id}")
        resumed = http.post(f"/v1/runs/{run_id}/resume")
    error = refused.json()["error"]
    assert refused.status_code == 409 and error["code"] == "run_running"
    assert error["type"] == "conflict_error"
    assert "cancel it first" in error["message"] and f"/v1/runs/{run_id}/cancel" in error["message"]
    assert still["status"] == "running" and still["live"]
    assert cancelled["status"] == "interrupted"
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "interrupted" and deleted.json()["step"] == 0
    assert resumed.status_code == 404


def test_a_waiting_run_can_be_deleted(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    upstream.responder = ["Dear Bo"]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "approve", {"request": "r"})
        waiting = wait_for(http, run_id, "waiting")
        deleted = http.delete(f"/v1/runs/{run_id}")
        answer = http.post(f"/v1/runs/{run_id}/answer", json={"answer": "yes"})
        cancel = http.post(f"/v1/runs/{run_id}/cancel")
    assert deleted.status_code == 200
    body = deleted.json()
    assert body["status"] == "waiting" and body["step"] == waiting["step"] == 2
    assert body["events"] == waiting["last_event_id"] > 0
    assert answer.status_code == 404 and cancel.status_code == 404


async def _hold(db: Path, run_id: str, owner: str) -> None:
    async with SQLiteCheckpointer(db) as store:
        await store.acquire(run_id, owner, ttl=60)


async def _release(db: Path, run_id: str, owner: str) -> None:
    async with SQLiteCheckpointer(db) as store:
        await store.release(run_id, owner)


async def _mark(db: Path, run_id: str, status: str) -> None:
    async with SQLiteCheckpointer(db) as store:
        await store.update_run(run_id, status=status)


def test_a_run_held_or_left_running_elsewhere_is_refused(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    """Another process holding the lease (a CLI resume, a second server) and a run a crashed
    server left ``running``: both refused; the second, once cancelled here, can go."""
    db = tmp_path / "server.db"
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        held = _start(http, "echo", {"question": "q"})
        left = _start(http, "echo", {"question": "q"})
        wait_for(http, held, "done")
        wait_for(http, left, "done")
        asyncio.run(_hold(db, held, "another-process"))
        asyncio.run(_mark(db, left, "running"))  # as a server that died mid-run leaves it
        refused_held = http.delete(f"/v1/runs/{held}")
        refused_left = http.delete(f"/v1/runs/{left}")
        asyncio.run(_release(db, held, "another-process"))
        deleted_held = http.delete(f"/v1/runs/{held}")
        cancelled = http.post(f"/v1/runs/{left}/cancel")
        deleted_left = http.delete(f"/v1/runs/{left}")
    held_error = refused_held.json()["error"]
    left_error = refused_left.json()["error"]
    assert refused_held.status_code == 409 and "another runner" in held_error["message"]
    assert refused_left.status_code == 409 and f"{left} is running" in left_error["message"]
    assert "cancel it first" in held_error["message"] and "cancel it first" in left_error["message"]
    assert deleted_held.status_code == 200 and deleted_held.json()["status"] == "done"
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "interrupted"
    assert deleted_left.status_code == 200 and deleted_left.json()["status"] == "interrupted"


async def _fork(db: Path, run_id: str, step: int) -> str:
    async with SQLiteCheckpointer(db) as store:
        return await three_step_graph().fork(run_id, step, checkpointer=store)


def test_a_fork_outlives_the_run_it_came_from(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    upstream.responder = ["billing", "a draft", "the answer", "a new answer"]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        parent = _start(http, "three", {"question": "q"})
        wait_for(http, parent, "done")
        child = asyncio.run(_fork(db, parent, 2))
        deleted = http.delete(f"/v1/runs/{parent}")
        resumed = http.post(f"/v1/runs/{child}/resume")
        done = wait_for(http, child, "done")
    assert deleted.status_code == 200
    assert resumed.status_code == 202
    assert done["output"] == {"answer": "a new answer"} and done["step"] == 3


def test_in_memory_stores_forget_the_run_too(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path, database=None) as server:
        with httpx.Client(base_url=server.url) as http:
            run_id = _start(http, "echo", {"question": "q"})
            wait_for(http, run_id, "done")
            events = read_events(http, run_id)
            deleted = http.delete(f"/v1/runs/{run_id}").json()
        manager = server.app.service.manager
        remembered = asyncio.run(_remembered(manager.events, run_id))
    assert deleted["events"] == len(events) > 0
    assert remembered == (0, None, [])
    assert not (tmp_path / "server.db").exists()


async def _remembered(store: Any, run_id: str) -> tuple[int, Any, list[Any]]:
    return await store.last_seq(run_id), await store.get_meta(run_id), await store.load(run_id, 0)


def test_delete_needs_a_server_key(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    with serving(upstream, tmp_path, keys=[KEY]) as server:
        with httpx.Client(base_url=server.url, headers=auth) as http:
            run_id = _start(http, "echo", {"question": "q"})
            wait_for(http, run_id, "done")
        url = f"{server.url}/v1/runs/{run_id}"
        missing = httpx.delete(url)
        wrong = httpx.delete(url, headers={"Authorization": "Bearer " + "x" * 30})
        still = httpx.get(url, headers=auth)
        deleted = httpx.delete(url, headers=auth)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_key"
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_key"
    assert still.status_code == 200
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True


async def _race(url: str, run_ids: list[str]) -> list[tuple[int, int]]:
    """Answer each waiting run and DELETE it a little later (0, 3, 6, … ms: from "the delete
    comes first" through "they cross" to "the answer has won"): their status codes. A delete
    after an accepted answer must have found the run done (checked here)."""
    async with httpx.AsyncClient(base_url=url) as http:

        async def delete(run_id: str, delay: float) -> httpx.Response:
            await asyncio.sleep(delay)
            return await http.delete(f"/v1/runs/{run_id}")

        async def both(run_id: str, delay: float) -> tuple[int, int]:
            answered, deleted = await asyncio.gather(
                http.post(f"/v1/runs/{run_id}/answer", json={"answer": "yes"}),
                delete(run_id, delay),
            )
            if deleted.status_code == 200 and answered.status_code == 202:
                assert deleted.json()["status"] == "done", deleted.json()
            return deleted.status_code, answered.status_code

        return list(await asyncio.gather(*(both(r, i * 0.003) for i, r in enumerate(run_ids))))


def test_a_delete_racing_an_answer_never_breaks_the_run(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    """Whichever comes first wins; the other is refused (404/409), never a server error, and
    the run ends up either gone or answered and done."""
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_ids = [_start(http, "approve", {"request": f"r{i}"}) for i in range(8)]
        for run_id in run_ids:
            wait_for(http, run_id, "waiting")
        outcomes = asyncio.run(_race(server.url, run_ids))
        finals = []
        for run_id, (deleted, _) in zip(run_ids, outcomes, strict=True):
            if deleted != 200:
                finals.append(wait_for(http, run_id, "done")["status"])
        # every run that was answered has finished: a deleted one must still be gone (a run
        # going on after its delete would have written it back)
        for run_id, (deleted, _) in zip(run_ids, outcomes, strict=True):
            if deleted == 200:
                finals.append(http.get(f"/v1/runs/{run_id}").status_code)
    # (200, 202): the answer won and the run finished before the delete came (a done run may
    # be deleted) - on a fast machine within the few milliseconds between the two
    allowed = {(200, 404), (200, 409), (409, 202), (200, 202)}
    assert all(pair in allowed for pair in outcomes), outcomes
    assert sorted(map(str, finals)) == sorted(
        "404" if deleted == 200 else "done" for deleted, _ in outcomes
    ), (outcomes, finals)
