"""The run API over real HTTP: start, status, events (with reconnection), answer, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import Gate, read_events, serving, wait_for

from atdak_agents.testing import LocalAtdakServer, Reply


def _start(http: httpx.Client, workflow: str, inputs: dict, **extra: object) -> str:
    response = http.post("/v1/runs", json={"workflow": workflow, "inputs": inputs, **extra})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/runs/{response.json()['id']}"
    return str(response.json()["id"])


def test_start_a_run_then_read_its_status_result_and_events(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    upstream.responder = ["sorted", "a draft", "the answer"]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "three", {"question": "where is my parcel?"})
        info = wait_for(http, run_id, "done")
        events = read_events(http, run_id)
        listed = http.get("/v1/runs", params={"workflow": "three", "status": "done"}).json()
    assert info["output"] == {"answer": "the answer"}
    assert info["step"] == 3 and info["usage"]["requests"] == 3
    assert info["usage"]["input_tokens"] > 0 and info["last_event_id"] == len(events)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    assert all(e["data"]["seq"] == e["id"] and e["data"]["type"] == e["event"] for e in events)
    assert [e["data"]["node"] for e in events if e["event"] == "node_started"] == [
        "classify",
        "draft",
        "polish",
    ]
    assert [r["id"] for r in listed["data"]] == [run_id]


def test_token_events_when_asked(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    upstream.responder = [Reply(text="streamed reply", chunk_size=3)]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "echo", {"question": "q"}, tokens=True)
        wait_for(http, run_id, "done")
        events = read_events(http, run_id)
    tokens = [e["data"]["text"] for e in events if e["event"] == "token"]
    assert "".join(tokens) == "streamed reply" and len(tokens) == 5


def test_reconnecting_with_last_event_id_loses_and_repeats_nothing(
    upstream: LocalAtdakServer, tmp_path: Path
) -> None:
    upstream.responder = [Reply(text="x" * 120, chunk_size=2)] * 3
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "three", {"question": "q"}, tokens=True)
        wait_for(http, run_id, "done")
        everything = read_events(http, run_id)
        total = len(everything)

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(st.integers(1, 40), min_size=1, max_size=6))
        def pieces_add_up(sizes: list[int]) -> None:
            got: list[dict] = []
            after: int | None = None
            for size in sizes:
                got += read_events(http, run_id, after=after, limit=size)
                after = got[-1]["id"] if got else after
            got += read_events(http, run_id, after=after)
            assert got == everything

        pieces_add_up()
        assert (
            http.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(total)}).status_code
            == 204
        )
        beyond = http.get(f"/v1/runs/{run_id}/events", params={"after": total + 1})
    assert total > 180  # tokens of three answers, so reads cross the in-memory buffer
    assert beyond.status_code == 400 and beyond.json()["error"]["code"] == "unknown_event_id"


def test_reconnecting_to_a_live_run(upstream: LocalAtdakServer, tmp_path: Path, gate: Gate) -> None:
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "slow", {})
        first = read_events(http, run_id, limit=2)  # run_started, node_started: then hang up
        assert gate.entered.wait(5)
        gate.release.set()
        rest = read_events(http, run_id, after=first[-1]["id"])  # live until the run ends
        stored = read_events(http, run_id)
    assert first + rest == stored
    assert stored[-1]["event"] == "run_finished"


def test_a_disconnecting_reader_does_not_cancel_the_run(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "slow", {})
        read_events(http, run_id, limit=1)
        assert gate.entered.wait(5)
        time.sleep(0.05)
        gate.release.set()
        info = wait_for(http, run_id, "done")
    assert info["output"] == {"answer": ["slow", "quick", "quick"]}


def test_cancel_on_disconnect_when_asked(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "slow", {})
        with http.stream(
            "GET", f"/v1/runs/{run_id}/events", params={"cancel_on_disconnect": "true"}
        ) as response:
            lines = response.iter_lines()
            while "node_started" not in next(lines):
                pass
        info = wait_for(http, run_id, "interrupted")
    assert info["reason"] == "cancelled" and info["step"] == 0


def test_answer_a_waiting_human_node(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    upstream.responder = ["Hello Ann"]
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "approve", {"request": "greet Ann"})
        waiting = wait_for(http, run_id, "waiting")
        wrong = http.post(f"/v1/runs/{run_id}/answer", json={"answer": "perhaps"})
        missing = http.post(f"/v1/runs/{run_id}/answer", json={})
        answered = http.post(f"/v1/runs/{run_id}/answer", json={"answer": "no"})
        done = wait_for(http, run_id, "done")
        again = http.post(f"/v1/runs/{run_id}/answer", json={"answer": "yes"})
        events = read_events(http, run_id)
    assert waiting["question"] == "Send Hello Ann?"
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_answer"
    assert missing.status_code == 400
    assert answered.status_code == 202
    assert done["output"] == {"answer": "dropped: Hello Ann"}
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_ended"
    pause = [e for e in events if e["event"] == "run_interrupted"]
    assert [p["data"]["question"] for p in pause] == ["Send Hello Ann?"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))  # one numbering


def test_cancel_a_live_run_then_resume_it(
    upstream: LocalAtdakServer, tmp_path: Path, gate: Gate
) -> None:
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "slow", {})
        assert gate.entered.wait(5)
        cancelled = http.post(f"/v1/runs/{run_id}/cancel")
        gate.release.set()
        resumed = http.post(f"/v1/runs/{run_id}/resume")
        done = wait_for(http, run_id, "done")
        twice = http.post(f"/v1/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "interrupted" and cancelled.json()["reason"] == "cancelled"
    assert cancelled.json()["step"] == 0  # the abandoned step left nothing behind
    assert resumed.status_code == 202
    assert done["output"] == {"answer": ["slow", "quick", "quick"]} and gate.calls == 2
    assert twice.status_code == 409


def test_cancel_a_waiting_run(upstream: LocalAtdakServer, tmp_path: Path) -> None:
    with serving(upstream, tmp_path) as server, httpx.Client(base_url=server.url) as http:
        run_id = _start(http, "approve", {"request": "r"})
        wait_for(http, run_id, "waiting")
        cancelled = http.post(f"/v1/runs/{run_id}/cancel").json()
        answer = http.post(f"/v1/runs/{run_id}/answer", json={"answer": "yes"})
        events = read_events(http, run_id)
    assert cancelled["status"] == "interrupted" and cancelled["reason"] == "cancelled"
    assert answer.status_code == 409
    assert events[-1]["event"] == "run_interrupted" and events[-1]["data"]["reason"] == "cancelled"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/runs/unknown", None, 404),
        ("GET", "/v1/runs/unknown/events", None, 404),
        ("POST", "/v1/runs/unknown/answer", {"answer": 1}, 404),
        ("POST", "/v1/runs/unknown/cancel", None, 404),
        ("DELETE", "/v1/runs/unknown", None, 404),
        ("POST", "/v1/runs", {"workflow": "echo", "inputs": {"question": 3}}, 400),
        ("POST", "/v1/runs", {"workflow": "echo", "inputs": {}}, 400),
        ("POST", "/v1/runs", {"workflow": "nope"}, 404),
        ("GET", "/v1/runs?status=bogus", None, 400),
        ("GET", "/v1/runs?limit=0", None, 400),
        ("GET", "/v1/runs?limit=", None, 400),
        ("GET", "/v1/runs?stauts=done", None, 400),
        ("GET", "/v1/models?x=1", None, 400),
        ("DELETE", "/v1/runs", None, 405),
        ("GET", "/v2/nothing", None, 404),
    ],
)
def test_mistakes_are_answered_with_an_error_body(
    upstream: LocalAtdakServer,
    tmp_path: Path,
    method: str,
    path: str,
    body: dict | None,
    status: int,
) -> None:
    with serving(upstream, tmp_path) as server:
        response = httpx.request(method, f"{server.url}{path}", json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"]
